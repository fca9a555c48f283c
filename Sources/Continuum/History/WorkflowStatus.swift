/// Where a workflow stands. Its raw value is the name used in logs, the HTTP API and the CLI.
public enum WorkflowStatus: String, Sendable, Hashable, CaseIterable, Codable, CustomStringConvertible {
    /// Started and not finished: running, waiting, or to be resumed after a restart.
    case running
    /// The workflow returned a result.
    case completed
    /// The workflow's body threw.
    case failed
    /// The runtime stopped driving it and needs an operator: its code no longer matches its
    /// history, its type is not registered, or its stored bytes are damaged.
    case suspended
    /// The workflow ended after a cancellation request (compensating steps included).
    case cancelled

    /// Whether the workflow will never run again.
    public var isFinished: Bool { self == .completed || self == .failed || self == .cancelled }

    public var description: String { rawValue }

    /// The status named `name` (`running`, `completed`, …), or `nil`.
    public init?(named name: some StringProtocol) {
        self.init(rawValue: String(name))
    }

    /// Every status's name, for messages: `running, completed, failed, suspended, cancelled`.
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
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
