/// The store's handle on one workflow's stream, returned when the workflow is created or loaded.
public struct StreamID: Hashable, Sendable, CustomStringConvertible {
    /// The store's own number for the stream; stores assign them in creation order so that the
    /// streams of workflows started together sit together on disk.
    public var rawValue: UInt64

    /// Wraps a store's stream number.
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public var description: String { "#\(rawValue)" }
}

/// What ``EventStore/create(_:completion:)`` found.
public enum CreateOutcome: Sendable, Equatable {
    /// A new workflow was created; its `workflowStarted` event is durable.
    case created(StreamID)
    /// A workflow with that id existed already; nothing was written.
    case existing(StreamID, WorkflowSummary)
}

/// A request to create a workflow.
public struct CreateRequest: Sendable {
    /// The workflow's id.
    public var id: String
    /// Its registered type name.
    public var type: String
    /// Its `workflowStarted` event (sequence 0).
    public var started: HistoryEvent

    /// Creates a request.
    public init(id: String, type: String, started: HistoryEvent) {
        self.id = id
        self.type = type
        self.started = started
    }
}

/// A batch of events for one workflow, appended atomically.
public struct AppendRequest: Sendable {
    /// The workflow's stream.
    public var stream: StreamID
    /// The workflow's id (for the summary record and error messages).
    public var id: String
    /// The events, with consecutive sequence numbers following the last stored one.
    public var events: [HistoryEvent]
    /// The workflow's new status, when these events change it (a terminal event).
    public var status: WorkflowStatus?
    /// Timers to add to or remove from the due-time index (a sleep's deadline, a wait's timeout).
    public var timers: [TimerChange]
    /// `true` when the workflow leaves memory to wait (recovery then leaves it alone until a
    /// timer or an event wakes it), `false` when it is running again.
    public var parked: Bool?

    /// Creates a request.
    public init(
        stream: StreamID, id: String, events: [HistoryEvent], status: WorkflowStatus? = nil, timers: [TimerChange] = [],
        parked: Bool? = nil
    ) {
        self.stream = stream
        self.id = id
        self.events = events
        self.status = status
        self.timers = timers
        self.parked = parked
    }
}

/// A change to the due-time index of timers.
public enum TimerChange: Sendable, Hashable {
    /// A timer of the workflow is due at this time (nanoseconds since 1970).
    case add(Int64)
    /// The timer due at this time is no longer needed.
    case remove(Int64)
}

/// A timer from the store's due-time index.
public struct DueTimer: Sendable, Hashable, Comparable {
    /// When it is due, in nanoseconds since 1970.
    public var due: Int64
    /// The workflow's stream.
    public var stream: StreamID
    /// The workflow's id.
    public var id: String

    /// Creates a timer entry.
    public init(due: Int64, stream: StreamID, id: String) {
        self.due = due
        self.stream = stream
        self.id = id
    }

    public static func < (lhs: DueTimer, rhs: DueTimer) -> Bool {
        (lhs.due, lhs.stream.rawValue) < (rhs.due, rhs.stream.rawValue)
    }
}

/// A workflow as loaded from the store: where its stream is, its summary and its events.
public struct StoredWorkflow: Sendable {
    /// The workflow's stream.
    public var stream: StreamID
    /// Its summary record.
    public var summary: WorkflowSummary
    /// Its events, in sequence order.
    public var events: [HistoryEvent]

    /// Creates a stored workflow.
    public init(stream: StreamID, summary: WorkflowSummary, events: [HistoryEvent]) {
        self.stream = stream
        self.summary = summary
        self.events = events
    }
}

/// Where workflows' event streams live.
///
/// Writes are submitted with a completion callback and acknowledged only after they are
/// durable; a store is free to commit many submissions in one transaction (group commit).
/// Submissions made from one thread or actor are applied in the order they were made, so
/// an actor that submits without suspending in between keeps its stream in order. Reads are
/// synchronous and short.
///
/// The runtime uses the async forms in the extension below; the callback forms exist so that
/// an actor can submit in order without suspending between submissions.
public protocol EventStore: AnyObject, Sendable {
    /// Creates a workflow unless one with the same id exists; `completion` runs after commit.
    func create(_ request: CreateRequest, completion: @escaping @Sendable (Result<CreateOutcome, ContinuumError>) -> Void)

    /// Appends events to a workflow's stream; `completion` runs after commit.
    func append(_ request: AppendRequest, completion: @escaping @Sendable (Result<Void, ContinuumError>) -> Void)

    /// The workflow with this id: its stream, summary and every event.
    ///
    /// - Throws: ``ContinuumError/Code/corruptedData`` when a stored value is damaged.
    func load(id: String) throws(ContinuumError) -> StoredWorkflow?

    /// The summary of the workflow with this id, without its events.
    func summary(id: String) throws(ContinuumError) -> WorkflowSummary?

    /// Workflows with the given status (all when `nil`), in creation order, starting after
    /// the stream `after` and returning at most `limit`. Parked workflows count as running.
    func list(status: WorkflowStatus?, after: StreamID?, limit: Int) throws(ContinuumError) -> [(StreamID, WorkflowSummary)]

    /// Running workflows that are not parked: those recovery must resume at once.
    func listActive(after: StreamID?, limit: Int) throws(ContinuumError) -> [(StreamID, WorkflowSummary)]

    /// Timers from the due-time index, in due order, strictly after `after`, at most `limit`.
    func timers(after: DueTimer?, limit: Int) throws(ContinuumError) -> [DueTimer]

    /// Stops taking writes, waits for submitted ones to finish, and releases the store.
    func close()
}

extension EventStore {
    /// Creates a workflow unless one with the same id exists, returning after commit.
    ///
    /// The request is submitted before the caller suspends, so submissions from one actor keep
    /// their order.
    public func create(_ request: CreateRequest, isolation: isolated (any Actor)? = #isolation) async throws(ContinuumError) -> CreateOutcome {
        let result = await withCheckedContinuation(isolation: isolation) { continuation in
            create(request) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Appends events, returning after commit.
    ///
    /// The request is submitted before the caller suspends, so submissions from one actor keep
    /// their order.
    public func append(_ request: AppendRequest, isolation: isolated (any Actor)? = #isolation) async throws(ContinuumError) {
        let result = await withCheckedContinuation(isolation: isolation) { continuation in
            append(request) { continuation.resume(returning: $0) }
        }
        try result.get()
    }
}
