#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// One entry of a workflow's event stream: everything that happened to the workflow, in order.
///
/// A workflow's state is a fold of these events (see `WorkflowState`); recovery replays them.
public struct HistoryEvent: Sendable, Equatable {
    /// The event's position in its workflow's stream, from 0 (always ``Kind/workflowStarted(type:input:traceContext:)``).
    public var sequence: UInt32
    /// When the event was appended, in nanoseconds since 1970-01-01 UTC.
    public var timestamp: Int64
    /// What happened.
    public var kind: Kind

    /// Creates an event.
    public init(sequence: UInt32, timestamp: Int64, kind: Kind) {
        self.sequence = sequence
        self.timestamp = timestamp
        self.kind = kind
    }

    /// When the event was appended.
    public var date: Date { Date(timeIntervalSince1970: Double(timestamp) / 1_000_000_000) }

    /// What happened to the workflow.
    public enum Kind: Sendable, Equatable {
        /// The workflow was started with this type name and JSON input. `traceContext` carries
        /// the distributed-tracing context of whoever started it (for example W3C `traceparent`),
        /// so every run of the workflow, in any process, joins the same trace; it is empty when
        /// no tracer was bootstrapped.
        case workflowStarted(type: String, input: [UInt8], traceContext: [String: String] = [:])
        /// A step finished; `result` is its JSON-encoded return value.
        case stepCompleted(StepRecord, result: [UInt8])
        /// A step's body threw.
        case stepFailed(StepRecord, failure: FailureRecord)
        /// The workflow returned; `output` is its JSON-encoded result.
        case workflowCompleted(output: [UInt8])
        /// The workflow's body threw.
        case workflowFailed(FailureRecord)
        /// The body began waiting: for a timer (`sleep`) or for an external event, until `due`
        /// (nanoseconds since 1970; `nil` for an event wait without timeout).
        case waitStarted(StepRecord, wait: WaitKind, due: Int64?)
        /// A wait ended.
        case waitEnded(StepKey, outcome: WaitOutcome)
        /// Attempt `attempt` of a step failed with `failure`; the next attempt runs at `nextAttemptAt`
        /// (nanoseconds since 1970), a durable backoff.
        case stepRetrying(StepRecord, attempt: UInt32, failure: FailureRecord, nextAttemptAt: Int64)
        /// Someone asked the workflow to stop (`WorkflowRuntime.cancel`); its waits end with
        /// ``WaitOutcome/cancelled`` and it may run compensating steps before it ends.
        case cancelRequested(reason: String, by: String? = nil)
        /// The workflow ended after a cancellation request.
        case workflowCancelled(reason: String)
        /// An external event arrived for the workflow (buffered until a wait consumes it).
        case eventReceived(name: String, payload: [UInt8], dedupKey: String?)
        /// The runtime stopped driving the workflow: its code no longer matches its history, its
        /// type is not registered, or a recorded value no longer decodes. It waits, listed as
        /// ``WorkflowStatus/suspended``, until someone resumes, resets or cancels it.
        case workflowSuspended(SuspensionRecord)
        /// Someone let a suspended workflow run again with the code now deployed.
        case workflowResumed(ActionRecord)
        /// Someone reset the workflow to its event `toSequence`: every event from there on is
        /// superseded (kept, never deleted) but for external events, which are delivered again,
        /// and the code now deployed runs from there. `generation` counts the resets so far;
        /// steps that run again get new idempotency keys.
        case workflowReset(toSequence: UInt32, generation: UInt32, ActionRecord)
        /// The workflow was forked from workflow `workflowID` at its event `sequence`: the events
        /// before this one are a copy of that history up to there.
        case workflowForked(from: String, sequence: UInt32, ActionRecord)
        /// The workflow took the new branch of the version marker `id` (`ctx.patched(id)`).
        case markerRecorded(String)
        /// The workflow is child `key` of workflow `parent`, which started it with
        /// ``WorkflowContext/startChild(_:name:input:onParentClose:timeout:isolation:)``: when it ends,
        /// its outcome is delivered to the parent. It follows `workflowStarted` in the same commit.
        case startedAsChild(parent: String, key: String)
        /// The workflow must end by `due` (nanoseconds since 1970): when the deadline passes
        /// first, its waits throw ``ContinuumError/Code/timedOut`` (it may compensate) and it
        /// ends ``WorkflowStatus/failed`` with that code. Recorded with the start.
        case deadlineSet(due: Int64)
        /// The workflow's deadline passed before it ended (see ``deadlineSet(due:)``).
        case deadlinePassed
        /// The workflow's run ended and a new run began with `input`
        /// (``WorkflowContext/continueAsNew(with:)``): the events before this one stay stored
        /// and readable, but the new run replays only what follows, keeping from before it the
        /// events not yet consumed, the dedup keys, a cancellation and the deadline.
        case continuedAsNew(input: [UInt8])
        /// The workflow runs on a queue (``WorkflowRuntime/start(_:id:input:timeout:queue:)``):
        /// its body runs only while it holds one of the queue's slots. Recorded with the start.
        case enqueued(QueueEntry)
    }
}

/// Why a workflow was suspended, as recorded in its history.
public struct SuspensionRecord: Sendable, Hashable, Codable {
    /// The error code (``ContinuumError/Code``) that suspended it.
    public var code: String
    /// What happened and what to do about it.
    public var message: String
    /// The position among the body's calls where the code stopped matching, if it did.
    public var index: UInt32?
    /// What history recorded there.
    public var recorded: StepKey?
    /// What the code asked for there (`nil`: it finished without asking for a recorded step).
    public var requested: StepKey?
    /// The build that suspended it (``WorkflowRuntime/Configuration/build``), if set.
    public var build: String?

    /// Creates a record.
    public init(code: String, message: String, index: UInt32? = nil, recorded: StepKey? = nil, requested: StepKey? = nil, build: String? = nil) {
        self.code = code
        self.message = message
        self.index = index
        self.recorded = recorded
        self.requested = requested
        self.build = build
    }
}

/// Who did something to a workflow from outside it, and why (the event's time says when).
public struct ActionRecord: Sendable, Hashable, Codable {
    /// Who asked: a user, a service, `continuum` on the command line, the dashboard.
    public var by: String
    /// Why.
    public var reason: String

    /// Creates a record.
    public init(by: String, reason: String) {
        self.by = by
        self.reason = reason
    }
}

/// What a wait waits for.
public enum WaitKind: Sendable, Hashable {
    /// A durable timer (`ctx.sleep`).
    case timer
    /// The next external event with this name (`ctx.waitForEvent`).
    case event(String)
}

/// How a wait ended.
public enum WaitOutcome: Sendable, Hashable {
    /// The timer fired, this many nanoseconds after it was due.
    case fired(latenessNanoseconds: Int64)
    /// The event at this sequence number of the stream was delivered to the wait.
    case received(sequence: UInt32)
    /// The timeout passed before an event arrived.
    case timedOut
    /// The workflow was cancelled while it waited.
    case cancelled
}

/// Which step (or wait) an event is about, and how it was called.
public struct StepRecord: Sendable, Hashable, Codable {
    /// The step's name, as passed to ``WorkflowContext/step(_:version:fingerprint:retry:queue:isolation:_:)-(_,_,_,_,_,_,(StepContext)->T)``.
    public var name: String
    /// How many steps of the same name the workflow called before this one (0 for the first).
    public var occurrence: UInt32
    /// For a step called by the workflow body itself, its position among the body's own step
    /// calls (0 for the first); for a step called from a child task, its position among all
    /// step calls when it was recorded (for reading only: child tasks interleave differently
    /// on replay).
    public var index: UInt32
    /// Whether the step was called from a child task of the workflow body (`async let`, a task
    /// group) rather than by the body itself. Such steps are matched on replay by name and
    /// occurrence alone, since concurrent tasks may call them in another order.
    public var concurrent: Bool
    /// The fingerprint of the step's code when it ran (from `#step` or `ctx.step(_:version:)`),
    /// when it had one: replay compares it with the code now deployed.
    public var fingerprint: String?

    /// Creates a step record.
    public init(name: String, occurrence: UInt32, index: UInt32, concurrent: Bool, fingerprint: String? = nil) {
        self.name = name
        self.occurrence = occurrence
        self.index = index
        self.concurrent = concurrent
        self.fingerprint = fingerprint
    }

    /// The step's identity within its workflow: its name and occurrence.
    public var key: StepKey { StepKey(name: name, occurrence: occurrence) }
}

/// A step's identity within its workflow: its name and how many steps of that name came before.
public struct StepKey: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The step's name.
    public var name: String
    /// How many steps of the same name the workflow called before this one.
    public var occurrence: UInt32

    /// Creates a key.
    public init(name: String, occurrence: UInt32) {
        self.name = name
        self.occurrence = occurrence
    }

    public var description: String { occurrence == 0 ? "'\(name)'" : "'\(name)' (occurrence \(occurrence))" }
}

/// A recorded failure: the Swift type of the error and its description.
public struct FailureRecord: Error, Sendable, Hashable, Codable {
    /// The error's type, as `String(reflecting:)` printed it.
    public var type: String
    /// The error's description.
    public var message: String

    /// Creates a failure record.
    public init(type: String, message: String) {
        self.type = type
        self.message = message
    }

    /// Records `error`.
    public init(_ error: any Error) {
        if let error = error as? ContinuumError {
            self.init(type: "ContinuumError.\(error.code)", message: error.message)
        } else {
            self.init(type: String(reflecting: Swift.type(of: error)), message: String(describing: error))
        }
    }
}
