/// Where a workflow stands.
public enum WorkflowStatus: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Started and not finished: running, waiting, or to be resumed after a restart.
    case running = 1
    /// The workflow returned a result.
    case completed = 2
    /// The workflow's body threw.
    case failed = 3
    /// The runtime stopped driving it and needs an operator: its code no longer matches its
    /// history, its type is not registered, or its stored bytes are damaged. Nothing was
    /// appended when it was suspended; fix the cause and restart the runtime to resume it.
    case suspended = 4
    /// The workflow ended after a cancellation request (compensating steps included).
    case cancelled = 5

    /// Whether the workflow will never run again.
    public var isFinished: Bool { self == .completed || self == .failed || self == .cancelled }

    public var description: String {
        switch self {
        case .running: "running"
        case .completed: "completed"
        case .failed: "failed"
        case .suspended: "suspended"
        case .cancelled: "cancelled"
        }
    }
}

/// A workflow as listed by the store: its id, type and status.
public struct WorkflowSummary: Sendable, Hashable {
    /// The workflow's id, chosen by whoever started it.
    public var id: String
    /// The registered name of the workflow's type.
    public var type: String
    /// Where the workflow stands.
    public var status: WorkflowStatus
    /// When the workflow was started, in nanoseconds since 1970.
    public var createdAt: Int64
    /// When the workflow's status last changed, in nanoseconds since 1970.
    public var updatedAt: Int64

    /// Creates a summary.
    public init(id: String, type: String, status: WorkflowStatus, createdAt: Int64, updatedAt: Int64) {
        self.id = id
        self.type = type
        self.status = status
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}
