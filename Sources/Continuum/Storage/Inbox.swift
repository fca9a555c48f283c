/// A request for a workflow that another process may be running: an event or a cancellation,
/// kept durably in the workflow's inbox until a process running the workflow takes it.
///
/// Stores shared by several processes (``StoreLimits/leaseDuration`` is set) carry messages
/// between them: the sender posts (``EventStore/post(_:to:)``) and waits for the outcome; the
/// owner takes what is pending (``EventStore/pendingInbox(for:limit:)``), applies it to the
/// workflow and settles it (``EventStore/settle(_:with:)``). Events always carry a dedup key
/// (the sender's, or `continuum.inbox.<number>`), so a message taken twice — its owner died
/// between applying and settling it — is recorded once.
public struct InboxMessage: Sendable, Hashable {
    /// What the sender asks.
    public enum Kind: Sendable, Hashable {
        /// Deliver an event, as ``WorkflowRuntime/send(_:to:json:dedupKey:)`` does.
        case event(name: String, payload: [UInt8], dedupKey: String?)
        /// Cancel the workflow, as ``WorkflowRuntime/cancel(_:by:reason:)`` does.
        case cancel(by: String?, reason: String)
    }

    /// The store's number for the message; numbers grow in posting order.
    public var number: UInt64
    /// The workflow it is for.
    public var workflowID: String
    /// What it asks.
    public var kind: Kind

    /// Creates a message.
    public init(number: UInt64, workflowID: String, kind: Kind) {
        self.number = number
        self.workflowID = workflowID
        self.kind = kind
    }

    /// The dedup key the event is recorded with: the sender's, or one derived from the number.
    public var dedupKey: String? {
        guard case .event(_, _, let key) = kind else { return nil }
        return key ?? "continuum.inbox.\(number)"
    }
}

/// What became of an inbox message, as its owner settled it.
public struct InboxOutcome: Sendable, Hashable {
    /// Where the event was recorded (`nil` for a cancellation or a refusal).
    public var sequence: UInt32?
    /// Whether the event repeated a dedup key, so nothing new was recorded.
    public var duplicate: Bool
    /// The refusal's code, when the workflow refused the message (finished, say).
    public var errorCode: String?
    /// The refusal's message.
    public var errorMessage: String?

    /// Creates an outcome.
    public init(sequence: UInt32? = nil, duplicate: Bool = false, errorCode: String? = nil, errorMessage: String? = nil) {
        self.sequence = sequence
        self.duplicate = duplicate
        self.errorCode = errorCode
        self.errorMessage = errorMessage
    }

    /// The outcome of a refusal.
    public init(refusal error: ContinuumError) {
        self.init(errorCode: error.code.name, errorMessage: error.message)
    }

    /// The refusal as an error, or `nil` when the message was applied.
    public var error: ContinuumError? {
        errorCode.map { ContinuumError(.named($0), errorMessage ?? "refused") }
    }
}

extension EventStore {
    // Stores one process owns need no inbox: that process runs every workflow, and its runtime
    // never posts. These defaults say so if one is asked anyway.

    public func post(_ kind: InboxMessage.Kind, to id: String) async throws(ContinuumError) -> UInt64 {
        throw ContinuumError(.invalidArgument, "This store is owned by one process and has no inbox; send through the runtime that runs the workflow.")
    }

    public func pendingInbox(for owner: OwnerID, limit: Int) async throws(ContinuumError) -> [InboxMessage] { [] }

    public func settle(_ number: UInt64, with outcome: InboxOutcome) async throws(ContinuumError) {
        throw ContinuumError(.invalidArgument, "This store is owned by one process and has no inbox.")
    }

    public func outcome(of number: UInt64) async throws(ContinuumError) -> InboxOutcome? {
        throw ContinuumError(.invalidArgument, "This store is owned by one process and has no inbox.")
    }

    /// No notices: a stream that ends at once (runtimes then look on their own schedule).
    public func inboxNotices() -> AsyncStream<Void> {
        AsyncStream { $0.finish() }
    }
}
