/// Queue slots kept in a store that several processes share, so that a queue's
/// ``QueueLimits`` hold across all of them rather than in each process on its own.
///
/// A store offers it through ``EventStore/sharedQueues``; a store one process owns (LMDB, the
/// in-memory store without leases) offers none, and the runtime then keeps its queues in memory.
///
/// ## The contract
/// - **Entries.** Work asks for a slot with an *entry* (``QueuePass/joining``) naming the claim
///   of the workflow it belongs to. An entry counts while that claim is current (the
///   workflow's owner and epoch are the claim's): a takeover, a park or a finish ends it at
///   once, and a dead process's slots come back when its workflows are claimed by others. A
///   lapsed lease alone does not end an entry, since its owner may still renew it under the
///   same token; a waiting entry whose lease lapsed is passed over (it neither goes nor holds
///   others back) until its owner renews it.
/// - **Passes.** A pass (``admit(_:)``) takes ``QueuePass/leaving`` off the queue, puts
///   ``QueuePass/joining`` on it, then walks the waiting entries in order — higher
///   ``QueueEntry/priority`` first, then earlier ``QueueRequest/since``, then earlier ticket —
///   skipping those whose partition is full, and admits the caller's while the limits let them
///   go. It stops at the first entry that could go but belongs to another owner, and tells that
///   owner (``queueNotices()``): no process jumps the queue of another. Passes on one queue are
///   serialized, one transaction each; time is read once the pass holds the queue.
/// - **Within a held slot.** Admitting an entry that asks within a slot its workflow already
///   holds takes no slot (the entry leaves the queue as it is admitted); it counts only
///   against the rate.
/// - **Rate.** Each admission on a queue with a ``QueueLimits/rate`` is recorded as a start; a
///   pass admits nothing more once the window holds `count` starts, and says when the oldest
///   leaves it (``QueueAdmission/retryAfter``).
/// - **Retried passes.** A pass whose answer was lost may have committed: joining again with
///   the same ``QueueRequest/key`` returns the entry already made, and the caller's entries it
///   no longer has are reported (``QueueAdmission/gone``), so nothing is counted twice or left
///   behind.
public protocol SharedQueueStore: Sendable {
    /// Makes one pass over a queue (see the contract above), in one transaction.
    ///
    /// - Throws: ``ContinuumError/Code/invalidArgument`` when an entry of
    ///   ``QueuePass/joining`` names another queue; a storage error. An error may come after
    ///   the pass committed (its answer lost): retry it with the same keys.
    func admit(_ pass: QueuePass) async throws(ContinuumError) -> QueueAdmission

    /// How many entries hold a slot and how many wait, per queue, across every process
    /// (entries whose claim is current and whose lease runs).
    func queueLoad() async throws(ContinuumError) -> [String: QueueLoad]

    /// Each time a pass stopped at an entry that could go, which queue and whose entry, so that
    /// its owner looks at once rather than at its next poll. A hint: runtimes also look on
    /// their own. The stream ends when the store closes.
    func queueNotices() -> AsyncStream<QueueNotice>
}

/// One pass over a shared queue (``SharedQueueStore/admit(_:)``).
public struct QueuePass: Sendable, Hashable {
    /// The queue.
    public var queue: String
    /// Its limits, as the caller's runtime is configured (every process should agree).
    public var limits: QueueLimits
    /// Whose entries the pass may admit.
    public var owner: OwnerID
    /// Entries to put on the queue, in order (their tickets grow with it).
    public var joining: [QueueRequest]
    /// Tickets to take off: slots handed back, or waits withdrawn.
    public var leaving: [UInt64]
    /// Tickets the caller still waits on: those the store no longer has are reported gone.
    public var waiting: [UInt64]
    /// Whether this is the first pass of a new runtime under ``owner``: entries under that
    /// name that an earlier process left (it died, and the name was reused) are dropped first.
    public var firstOfOwner: Bool

    /// Creates a pass.
    public init(
        queue: String, limits: QueueLimits, owner: OwnerID, joining: [QueueRequest] = [], leaving: [UInt64] = [], waiting: [UInt64] = [],
        firstOfOwner: Bool = false
    ) {
        self.queue = queue
        self.limits = limits
        self.owner = owner
        self.joining = joining
        self.leaving = leaving
        self.waiting = waiting
        self.firstOfOwner = firstOfOwner
    }
}

/// Work that asks a shared queue for a slot (``SharedQueueStore``).
public struct QueueRequest: Sendable, Hashable {
    /// Unique to this request, and the same when its pass is retried: joining twice with one
    /// key makes one entry.
    public var key: String
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
    public init(key: String, entry: QueueEntry, since: Int64, within: Bool, claim: Claim) {
        self.key = key
        self.entry = entry
        self.since = since
        self.within = within
        self.claim = claim
    }
}

/// What a pass over a shared queue did (``SharedQueueStore/admit(_:)``).
public struct QueueAdmission: Sendable, Hashable {
    /// The tickets of the entries of ``QueuePass/joining``, in its order.
    public var tickets: [UInt64]
    /// The caller's entries admitted by this pass (an entry admitted within a slot already held
    /// is taken off the queue at once; any other holds a slot until it leaves).
    public var admitted: [UInt64]
    /// Tickets of ``QueuePass/waiting`` the store no longer has: their claim ended.
    public var gone: [UInt64]
    /// When the rate held the next entry back: how long until the window lets one more through.
    public var retryAfter: Duration?

    /// Creates an admission.
    public init(tickets: [UInt64], admitted: [UInt64], gone: [UInt64] = [], retryAfter: Duration?) {
        self.tickets = tickets
        self.admitted = admitted
        self.gone = gone
        self.retryAfter = retryAfter
    }
}

/// A pass stopped at an entry of `owner` that could go (``SharedQueueStore/queueNotices()``).
public struct QueueNotice: Sendable, Hashable {
    /// The queue.
    public var queue: String
    /// Whose entry could go.
    public var owner: OwnerID

    /// Creates a notice.
    public init(queue: String, owner: OwnerID) {
        self.queue = queue
        self.owner = owner
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
