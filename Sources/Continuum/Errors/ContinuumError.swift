/// An error raised by Continuum: a stable ``Code`` to match on, a message that says what
/// happened and what to do about it, and the underlying cause when there is one.
///
/// ```swift
/// do {
///     _ = try await runtime.start(OnboardUser.self, id: "user-42", input: input)
/// } catch let error as ContinuumError where error.code == .storageFull {
///     // free disk space or raise `maxMapSize`, then retry
/// }
/// ```
public struct ContinuumError: Error, Sendable, CustomStringConvertible {
    /// A stable, extensible identifier for a kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's name, stable across releases (used in logs and HTTP error bodies).
        public let name: String

        private init(_ name: String) { self.name = name }

        /// The code with this name: one of the codes above, or a new one for a name this
        /// release does not know (a code recorded by a later release, say).
        package static func named(_ name: String) -> Code { Code(name) }

        public var description: String { name }

        /// No workflow type with this name is registered with the runtime.
        public static let unknownWorkflowType = Code("unknownWorkflowType")
        /// No workflow with this id exists.
        public static let unknownWorkflow = Code("unknownWorkflow")
        /// The id is already used by a workflow of another type.
        public static let workflowIDConflict = Code("workflowIDConflict")
        /// The workflow code asked for something other than what its history recorded.
        public static let nondeterminism = Code("nondeterminism")
        /// Two steps with the same name were running at once in one workflow.
        public static let ambiguousStep = Code("ambiguousStep")
        /// A step's body threw; the failure is recorded in history.
        public static let stepFailed = Code("stepFailed")
        /// The workflow's body threw; the failure is recorded in history.
        public static let workflowFailed = Code("workflowFailed")
        /// Stored bytes failed their checksum or could not be decoded.
        public static let corruptedData = Code("corruptedData")
        /// The store's map or disk is full.
        public static let storageFull = Code("storageFull")
        /// The data directory is in use by another process.
        public static let storeLocked = Code("storeLocked")
        /// The store is closed or the runtime is shutting down.
        public static let storeClosed = Code("storeClosed")
        /// The workflow was cancelled (`WorkflowRuntime.cancel`).
        public static let cancelled = Code("cancelled")
        /// The workflow has finished and takes no more events.
        public static let workflowFinished = Code("workflowFinished")
        /// The runtime is not running, so an unfinished workflow cannot make progress.
        public static let notRunning = Code("notRunning")
        /// Any other storage failure, with the engine's own message.
        public static let storageFailure = Code("storageFailure")
        /// A payload could not be encoded or decoded with the workflow's Codable types.
        public static let payloadCoding = Code("payloadCoding")
        /// An argument is outside what Continuum accepts (an empty id, a name that is too long, …).
        public static let invalidArgument = Code("invalidArgument")
        /// A dedup key (an `Idempotency-Key`) was used before for a different event.
        public static let dedupKeyConflict = Code("dedupKeyConflict")
        /// A workflow input, step result, event payload or workflow output is larger than
        /// ``WorkflowRuntime/Configuration/maxPayloadSize``. A step result or output over the
        /// limit fails that step or workflow once; it is never retried.
        public static let payloadTooLarge = Code("payloadTooLarge")
        /// The runtime no longer holds its claim on the workflow (another claim superseded it,
        /// or its lease ran out and another process took the workflow over); nothing was
        /// written. The runtime drops the workflow from memory; its new owner continues it.
        public static let ownershipLost = Code("ownershipLost")
        /// The store could not be reached: a store over a network lost its connection, or its
        /// database restarted or failed over. Nothing of the request was acknowledged (a write
        /// may still have committed; a replay reads what did). Workflows stopped by it are
        /// relaunched every ``WorkflowRuntime/Configuration/storageRetryInterval``.
        public static let storeUnavailable = Code("storeUnavailable")
        /// `run()` was called while the runtime was already running.
        public static let alreadyRunning = Code("alreadyRunning")
        /// A recorded step's code changed since it ran (its fingerprint differs from the code
        /// deployed now), and ``WorkflowRuntime/Configuration/codeChange`` says to suspend.
        public static let codeChanged = Code("codeChanged")
        /// The store was opened read-only (to check a live store, say); it takes no writes.
        public static let readOnly = Code("readOnly")
        /// The operation needs a suspended workflow (`resume`), and this one is not.
        public static let notSuspended = Code("notSuspended")
        /// The workflow is suspended; resume, reset or cancel it (``WorkflowRuntime/resume(_:by:reason:)``).
        public static let suspended = Code("suspended")
        /// A child workflow's body threw (``ChildWorkflow/result(isolation:)``); the error's
        /// `workflowID` is the child's and its `cause` the child's ``FailureRecord``.
        public static let childFailed = Code("childFailed")
        /// A child workflow was cancelled (``ChildWorkflow/result(isolation:)``).
        public static let childCancelled = Code("childCancelled")
        /// A deadline passed: the workflow's own (``WorkflowRuntime/start(_:id:input:timeout:queue:)``),
        /// which ends it ``WorkflowStatus/failed`` with this code, or a step attempt's
        /// (`ctx.step(_:timeout:…)`), which its retry policy may try again.
        public static let timedOut = Code("timedOut")
        /// The workflow refused an update: its type's `validateUpdate` threw (nothing was
        /// recorded), or its body rejected it (``UpdateRequest/reject(_:isolation:)``).
        public static let updateRejected = Code("updateRejected")
        /// The workflow has published no value under the queried name (``WorkflowRuntime/query(_:_:)``).
        public static let unknownQuery = Code("unknownQuery")
    }

    /// What kind of failure this is.
    public var code: Code {
        get { storage.fields.code }
        set { change { $0.code = newValue } }
    }
    /// What happened and what to do about it.
    public var message: String {
        get { storage.fields.message }
        set { change { $0.message = newValue } }
    }
    /// The workflow this error concerns, when there is one.
    public var workflowID: String? {
        get { storage.fields.workflowID }
        set { change { $0.workflowID = newValue } }
    }
    /// The underlying error, when there is one.
    public var cause: (any Error & Sendable)? {
        get { storage.fields.cause }
        set { change { $0.cause = newValue } }
    }
    /// Where in Continuum's source the error was raised (`file:line`), for bug reports.
    public var location: String {
        get { storage.fields.location }
        set { change { $0.location = newValue } }
    }

    private struct Fields: Sendable {
        var code: Code
        var message: String
        var workflowID: String?
        var cause: (any Error & Sendable)?
        var location: String
    }

    /// The fields, boxed: an error is one reference wide, and so is the slot that every call
    /// throwing it reserves in its caller's async frame (every step and wait makes several).
    private final class Storage: Sendable {
        let fields: Fields
        init(_ fields: Fields) { self.fields = fields }
    }

    private var storage: Storage

    private mutating func change(_ edit: (inout Fields) -> Void) {
        var fields = storage.fields
        edit(&fields)
        storage = Storage(fields)
    }

    /// Creates an error.
    public init(
        _ code: Code, _ message: String, workflowID: String? = nil, cause: (any Error & Sendable)? = nil,
        file: StaticString = #fileID, line: UInt = #line
    ) {
        storage = Storage(Fields(code: code, message: message, workflowID: workflowID, cause: cause, location: "\(file):\(line)"))
    }

    /// `error` itself when it is a ``ContinuumError``; otherwise a ``Code/storageFailure`` that
    /// keeps it as its cause.
    package static func wrap(_ error: any Error, file: StaticString = #fileID, line: UInt = #line) -> ContinuumError {
        if let error = error as? ContinuumError { return error }
        return ContinuumError(.storageFailure, "Unexpected error: \(error)", cause: error, file: file, line: line)
    }

    public var description: String {
        var text = "\(code): \(message)"
        if let cause { text += " (cause: \(cause))" }
        return text
    }
}
