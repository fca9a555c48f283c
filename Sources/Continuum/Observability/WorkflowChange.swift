import Synchronization

/// What happened to a workflow, reported by ``WorkflowRuntime/changes(of:)`` once it is committed.
public struct WorkflowChange: Sendable {
    /// The workflow's id.
    public var workflowID: String
    /// The events just committed, in order (empty for a change of state alone).
    public var events: [HistoryEvent]
    /// The workflow's status, when this change set it (it finished, or it was suspended).
    public var status: WorkflowStatus?
    /// Whether the workflow was parked: it left memory to wait in the store.
    public var parked: Bool

    /// Creates a change.
    public init(workflowID: String, events: [HistoryEvent] = [], status: WorkflowStatus? = nil, parked: Bool = false) {
        self.workflowID = workflowID
        self.events = events
        self.status = status
        self.parked = parked
    }
}

/// Hands committed changes to whoever subscribed. With no subscriber (the usual case) publishing
/// costs one atomic load.
final class ChangeFeed: Sendable {
    private struct Subscriber {
        var workflowID: String?
        var continuation: AsyncStream<WorkflowChange>.Continuation
    }

    private let subscribers = Mutex<[UInt64: Subscriber]>([:])
    private let nextID = Atomic<UInt64>(0)
    private let count = Atomic<Int>(0)

    /// Whether anybody listens.
    var isObserved: Bool { count.load(ordering: .relaxed) > 0 }

    /// Reports `change` to the subscribers interested in its workflow.
    func publish(_ change: @autoclosure () -> WorkflowChange) {
        guard isObserved else { return }
        let change = change()
        let targets = subscribers.withLock { subscribers in
            subscribers.values.filter { $0.workflowID == nil || $0.workflowID == change.workflowID }.map(\.continuation)
        }
        for target in targets { target.yield(change) }
    }

    /// A stream of the changes of workflow `id` (of every workflow when `nil`) from now on; it
    /// ends when the consumer stops iterating.
    func subscribe(_ id: String?) -> AsyncStream<WorkflowChange> {
        let (stream, continuation) = AsyncStream.makeStream(of: WorkflowChange.self)
        let key = nextID.add(1, ordering: .relaxed).newValue
        subscribers.withLock { $0[key] = Subscriber(workflowID: id, continuation: continuation) }
        count.add(1, ordering: .relaxed)
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            if self.subscribers.withLock({ $0.removeValue(forKey: key) }) != nil { self.count.subtract(1, ordering: .relaxed) }
        }
        return stream
    }
}
