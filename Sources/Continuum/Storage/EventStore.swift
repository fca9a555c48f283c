/// Where workflows' histories live: the contract between the runtime and a store.
///
/// Continuum ships three stores that meet it: `LMDBStore` (embedded, the default),
/// `InMemoryStore` (in `ContinuumTesting`, for fast tests) and a PostgreSQL store for several
/// processes; `EventStoreConformance` (in `ContinuumTesting`) checks any store against it.
///
/// ## Durability
/// `create` and `append` return only once what they wrote is durable, so the runtime never
/// acknowledges anything that a crash could lose. A store may commit many submissions in one
/// transaction (group commit).
///
/// ## Order
/// `create` and `append` are `nonisolated(nonsending)`: they start on the caller's actor and
/// must take the request (queue it, give it its place) before they first suspend. An actor that
/// submits one append after another without awaiting in between therefore has them applied in
/// the order it submitted them, while they still share commits with every other workflow's.
///
/// ## Ownership
/// A runtime works on a workflow only while it holds a *claim* on it: ``create(_:)`` claims a
/// new workflow for its owner, ``claim(_:owner:)`` claims an existing one (taking it out of the
/// parked set), and an append with ``AppendRequest/release`` gives the claim up (the workflow
/// parks, or it finished). Every claim carries a ``FencingToken`` whose epoch grows with each
/// claim of that workflow; every append carries the token it was made under, and the store
/// refuses (``ContinuumError/Code/ownershipLost``) one whose token is no longer current, in the
/// same transaction that would have written it. A process that lost its claim — paused past its
/// lease and taken over, partitioned, or superseded by a newer claim — therefore cannot write.
/// Stores shared by several processes give claims a lease (``StoreLimits/leaseDuration``) that
/// the owner renews with ``renew(_:)``: a lease that ran out lets another owner take the
/// workflow (``claim(_:owner:)``, ``claimAvailable(owner:overdue:limit:)``), and only that
/// taking ends the old claim. Safety rests on the token, liveness on the lease. A store that one
/// process owns (LMDB) declares no lease.
///
/// ## Reads
/// Reads are `async`: a store over a network answers them without blocking a thread. A store
/// whose reads are memory accesses (LMDB maps its file) may answer inline.
public protocol EventStore: AnyObject, Sendable {
    /// What the store accepts and how it shares workflows between processes.
    var limits: StoreLimits { get }

    // MARK: Writes

    /// Creates a workflow unless one with the same id exists; returns once the start is durable.
    ///
    /// A new workflow is claimed for ``CreateRequest/owner``; an existing one is left as it is.
    ///
    /// - Throws: ``ContinuumError/Code/storageFull``, ``ContinuumError/Code/storeClosed`` or
    ///   another storage error; nothing was created.
    nonisolated(nonsending) func create(_ request: CreateRequest) async throws(ContinuumError) -> CreateOutcome

    /// Appends events to a workflow's stream under its claim; returns once they are durable.
    ///
    /// The request is `consuming`: the runtime hands over its only copy, so a store that queues
    /// it (as the LMDB store's writer does) moves it instead of retaining every reference it
    /// holds. An implementation may leave the parameter plain.
    ///
    /// - Throws: ``ContinuumError/Code/ownershipLost`` when ``AppendRequest/fence`` is not the
    ///   workflow's current claim; ``ContinuumError/Code/storageFailure`` when the first event does
    ///   not follow the last stored one; a storage error. Nothing of the request was written.
    nonisolated(nonsending) func append(_ request: consuming AppendRequest) async throws(ContinuumError)

    // MARK: Ownership

    /// Claims the workflow with id `id` for `owner` and, when it is running, takes it out of the
    /// parked set: from now on only appends under the returned claim are accepted. A finished or
    /// suspended workflow can be claimed too (to reset or resume it); its status stays. Returns
    /// `nil` when no workflow has the id, or when another owner holds a claim whose lease has not
    /// run out.
    ///
    /// Claiming again (by the same owner too) supersedes the earlier claim: its token is refused.
    func claim(_ id: String, owner: OwnerID) async throws(ContinuumError) -> Claim?

    /// Extends the leases of `claims` by ``StoreLimits/leaseDuration`` and returns those that
    /// were lost (superseded, released, or taken by another owner), in one round trip however
    /// many there are. A claim whose lease ran out but that nobody took since is still current:
    /// it is renewed.
    func renew(_ claims: [Claim]) async throws(ContinuumError) -> [Claim]

    /// Claims for `owner`, in one round trip, up to `limit` workflows that need a process and
    /// have none:
    ///
    /// - running workflows that are not parked and whose claim's lease ran out (their owner died,
    ///   or paused past its lease), or that nobody holds;
    /// - parked workflows with a timer that came due at least `overdue` ago, by the store's
    ///   clock: the process that parked them would have woken them, had it lived.
    ///
    /// A workflow `owner` holds under a lapsed lease is returned with the token it has, its lease
    /// extended: a new epoch would fence off the run `owner`'s runtime may still be making of it.
    /// Several runtimes may call this at once; each workflow goes to one of them (a shared store
    /// skips rows another caller is claiming instead of waiting for them).
    ///
    /// The default lists ``runnable(after:limit:)`` and claims each in turn, without the parked
    /// ones; a store with leases should answer it in one statement.
    func claimAvailable(owner: OwnerID, overdue: Duration, limit: Int) async throws(ContinuumError) -> [ClaimedWorkflow]

    // MARK: Inbox (stores shared by several processes)

    /// Puts `kind` in the inbox of workflow `id`, durably; returns the message's number.
    ///
    /// - Throws: ``ContinuumError/Code/unknownWorkflow`` when no workflow has the id.
    func post(_ kind: InboxMessage.Kind, to id: String) async throws(ContinuumError) -> UInt64

    /// Unsettled messages, oldest first, for the workflows `owner` holds and those nobody holds
    /// (parked, or whose lease ran out): what `owner` should apply.
    func pendingInbox(for owner: OwnerID, limit: Int) async throws(ContinuumError) -> [InboxMessage]

    /// Records what became of message `number`; the first settlement stands.
    func settle(_ number: UInt64, with outcome: InboxOutcome) async throws(ContinuumError)

    /// What became of message `number`, or `nil` while it waits.
    func outcome(of number: UInt64) async throws(ContinuumError) -> InboxOutcome?

    /// A signal each time any process posts to an inbox, so that runtimes look at once rather
    /// than at their next round. A hint, not a guarantee (a notice can be lost while the store
    /// reconnects): runtimes also look on their own. The stream ends when the store closes.
    func inboxNotices() -> AsyncStream<Void>

    /// Queue slots shared by every process on this store (``SharedQueueStore``), or `nil` for a
    /// store one process owns: the runtime then applies ``QueueLimits`` in memory. The default
    /// is `nil`.
    var sharedQueues: (any SharedQueueStore)? { get }

    // MARK: Reads

    /// The workflow with this id: its stream, summary and every event, or `nil`.
    ///
    /// - Throws: ``ContinuumError/Code/corruptedData`` when a stored value is damaged.
    func load(id: String) async throws(ContinuumError) -> StoredWorkflow?

    /// The workflow with this id as a wake needs it: its latest snapshot
    /// (``AppendRequest/snapshot``) and the events after it, or, without a snapshot, every
    /// event; `nil` when no workflow has the id. One read, however long the history before the
    /// snapshot.
    ///
    /// The default answers ``load(id:)``, without a snapshot: a store that keeps none meets the
    /// contract, its wakes fold every event.
    ///
    /// - Throws: ``ContinuumError/Code/corruptedData`` when a stored event is damaged.
    func loadRecent(id: String) async throws(ContinuumError) -> StoredWorkflow?

    /// The summary of the workflow with this id, without its events, or `nil`.
    func summary(id: String) async throws(ContinuumError) -> WorkflowSummary?

    /// Workflows with the given status (all when `nil`), in creation order, after the stream
    /// `after`, at most `limit`. Parked workflows are running.
    func list(status: WorkflowStatus?, after: StreamID?, limit: Int) async throws(ContinuumError) -> [ListedWorkflow]

    /// Running workflows that are neither parked nor held by a live claim, in creation order:
    /// those recovery must resume at once.
    func runnable(after: StreamID?, limit: Int) async throws(ContinuumError) -> [ListedWorkflow]

    /// Timers from the due-time index, in due order, strictly after `after`, at most `limit`.
    func timers(after: DueTimer?, limit: Int) async throws(ContinuumError) -> [DueTimer]

    /// How many workflows have each status, kept by the store in the transactions that change
    /// them (never counted by scanning).
    func counts() async throws(ContinuumError) -> StatusCounts

    /// Stops taking writes, lets the submitted ones finish, and releases the store. Later
    /// writes fail with ``ContinuumError/Code/storeClosed``. Safe to call more than once.
    func close() async
}

extension EventStore {
    /// Runs `body` with this store, then closes the store, whether `body` returned or threw.
    ///
    /// ```swift
    /// let report = try await store.closing { store in try await store.counts() }
    /// ```
    public func closing<R>(isolation: isolated (any Actor)? = #isolation, _ body: (Self) async throws -> R) async throws -> R {
        let result: Result<R, any Error>
        do {
            result = .success(try await body(self))
        } catch {
            result = .failure(error)
        }
        await close()
        return try result.get()
    }

    public func claimAvailable(owner: OwnerID, overdue: Duration, limit: Int) async throws(ContinuumError) -> [ClaimedWorkflow] {
        var claimed: [ClaimedWorkflow] = []
        for row in try await runnable(after: nil, limit: limit) {
            if let claim = try await claim(row.summary.id, owner: owner) { claimed.append(ClaimedWorkflow(id: row.summary.id, claim: claim)) }
        }
        return claimed
    }

    public func loadRecent(id: String) async throws(ContinuumError) -> StoredWorkflow? {
        try await load(id: id)
    }

    public var sharedQueues: (any SharedQueueStore)? { nil }

    /// Gives up `claim` without appending anything: the workflow parks (when it is running) and
    /// recovery leaves it until a timer or an event wakes it.
    public func release(_ claim: Claim, id: String) async throws(ContinuumError) {
        try await append(AppendRequest(fence: claim, id: id, events: [], release: true))
    }
}

/// A store that takes an append in a synchronous call and finishes it later, as the LMDB
/// store's writer thread does: the runtime submits from inside the workflow's actor and awaits
/// the continuation there.
///
/// Awaited through `any EventStore`, an append is an `async` call of its own: it checks its
/// executor when it starts and again once its continuation resumes, and its caller checks once
/// more on return, each a locked read of the task's status (`swift_task_switch`), with a frame
/// for the call. Submitted through this, only the check after the resumption is left.
package protocol SubmittingEventStore: EventStore {
    /// Queues `request` (taking it out of the optional, so that it moves rather than being
    /// copied) and resumes `completion` exactly once: when it is durable, or with the error
    /// ``EventStore/append(_:)`` would throw. Nothing of a failed request was written.
    func submitAppend(_ request: inout AppendRequest?, _ completion: UnsafeContinuation<Result<Void, ContinuumError>, Never>)
}
