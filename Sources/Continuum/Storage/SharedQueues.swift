/// Queue slots kept in a store that several processes share, so that a queue's
/// ``QueueLimits`` hold across all of them rather than in each process on its own.
///
/// A store offers it through ``EventStore/sharedQueues``; a store one process owns (LMDB, the
/// in-memory store) offers none, and the runtime then keeps its queues in memory.
///
/// ## The contract
/// - Work asks for a slot with an *entry* (``admit(queue:limits:owner:joining:leaving:)`` with
///   `joining`), which names the claim of the workflow it belongs to. The entry lives only as
///   long as that claim is current and its lease has not run out: when the process dies, is
///   fenced off, or its workflow parks, its entries (waiting or holding a slot) stop counting
///   at once, with no clean-up needed.
/// - A pass of ``admit(queue:limits:owner:joining:leaving:)`` walks the queue's waiting entries
///   in order — higher ``QueueEntry/priority`` first, then earlier `since`, then earlier entry —
///   skipping those whose partition is full, and admits `owner`'s while the limits let them go.
///   It stops at the first entry that could go but belongs to another owner: that owner admits
///   it on its own next pass, so no process jumps the queue of another.
/// - Admitting an entry that asks *within* a slot its workflow already holds takes no slot; it
///   counts only against the rate.
/// - Each admission of a queue with a ``QueueLimits/rate`` is recorded as a start; a pass
///   admits nothing more once the window holds `count` starts, and says when the oldest leaves it.
/// - Leaving (``admit(queue:limits:owner:joining:leaving:)`` with `leaving`) gives a slot back or
///   withdraws a wait, in the same transaction as the pass.
/// - Passes on one queue are serialized by the store; time is the store's clock.
public protocol SharedQueueStore: Sendable {
    /// Takes `leaving` off queue `queue`, puts `joining` on it (in that order: the entries'
    /// tickets grow with it), and admits, in the queue's order, as many of `owner`'s waiting
    /// entries as `limits` let go now: one transaction.
    ///
    /// - Throws: ``ContinuumError/Code/invalidArgument`` when an entry of `joining` names
    ///   another queue; a storage error, with nothing changed.
    func admit(
        queue: String, limits: QueueLimits, owner: OwnerID, joining: [QueueRequest], leaving: [UInt64]
    ) async throws(ContinuumError) -> QueueAdmission

    /// How many entries hold a slot and how many wait, per queue, across every process (live
    /// entries only).
    func queueLoad() async throws(ContinuumError) -> [String: QueueLoad]

    /// The name of a queue each time another process may have made room for this one's work
    /// (a pass stopped at an entry of another owner that could go), so that its owner looks at
    /// once rather than at its next poll. A hint: the runtime also looks on its own. The stream
    /// ends when the store closes.
    func queueNotices() -> AsyncStream<String>
}

/// Work that asks a shared queue for a slot (``SharedQueueStore``).
public struct QueueRequest: Sendable, Hashable {
    /// The queue, partition and priority.
    public var entry: QueueEntry
    /// When the work was put on the queue (nanoseconds since 1970): earlier goes first among
    /// equal priorities.
    public var since: Int64
    /// Whether the work runs within a slot its workflow already holds: it waits only for the rate.
    public var within: Bool
    /// The claim of the workflow the work belongs to: the entry counts while it is current.
    public var claim: Claim

    /// Creates a request.
    public init(entry: QueueEntry, since: Int64, within: Bool, claim: Claim) {
        self.entry = entry
        self.since = since
        self.within = within
        self.claim = claim
    }
}

/// What a pass over a shared queue did (``SharedQueueStore/admit(queue:limits:owner:joining:leaving:)``).
public struct QueueAdmission: Sendable, Hashable {
    /// The tickets of the entries of `joining`, in its order.
    public var tickets: [UInt64]
    /// The caller's entries admitted by this pass (an entry admitted within a slot already held
    /// is taken off the queue at once; any other holds a slot until it leaves).
    public var admitted: [UInt64]
    /// When the rate held the next entry back: how long until the window lets one more through.
    public var retryAfter: Duration?

    /// Creates an admission.
    public init(tickets: [UInt64], admitted: [UInt64], retryAfter: Duration?) {
        self.tickets = tickets
        self.admitted = admitted
        self.retryAfter = retryAfter
    }
}

/// How much of a shared queue is used, across every process.
public struct QueueLoad: Sendable, Hashable {
    /// How many entries hold a slot.
    public var running: Int
    /// How many wait.
    public var waiting: Int
    /// How many hold a slot, per partition key that holds any.
    public var partitions: [String: Int]

    /// Creates a load.
    public init(running: Int, waiting: Int, partitions: [String: Int]) {
        self.running = running
        self.waiting = waiting
        self.partitions = partitions
    }
}
