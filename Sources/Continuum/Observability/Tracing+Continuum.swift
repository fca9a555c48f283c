import Tracing

/// How the runtime names its spans and their attributes (the same keys its logs use).
///
/// | Span | Kind | When |
/// |---|---|---|
/// | `start <type>` | producer | `start` stores a workflow (also when the id existed: `continuum.workflow.created` is false) |
/// | `workflow <type>` | consumer | one run of the body in this process: from start, recovery or wake-up until it finishes, parks or suspends |
/// | `step <name>` | internal | one live attempt of a step's body (replayed steps have no span) |
/// | `send <event>` | producer | `send` delivers an event |
///
/// `start` stores the start span's context in the workflow's `workflowStarted` event, and every
/// `workflow` span is its child: a workflow that sleeps for a week and resumes in another
/// process after a deploy stays in the trace of the request that started it.
public enum TraceAttribute {
    /// The workflow's id.
    public static let workflowID = WorkflowRuntime.LogKey.workflowID
    /// The workflow's type name.
    public static let workflowType = WorkflowRuntime.LogKey.workflowType
    /// Whether `start` created the workflow (`false`: it existed already).
    public static let created = "continuum.workflow.created"
    /// How many stored events the run replayed before it went on.
    public static let replayedEvents = "continuum.workflow.replayed_events"
    /// How the run ended: `completed`, `failed`, `cancelled`, `parked`, `suspended` or `stopped`.
    public static let runOutcome = "continuum.workflow.run_outcome"
    /// The step's name.
    public static let stepName = WorkflowRuntime.LogKey.stepName
    /// The attempt, from 1.
    public static let stepAttempt = WorkflowRuntime.LogKey.attempt
    /// The event's name.
    public static let eventName = WorkflowRuntime.LogKey.eventName
}

/// Writes and reads a tracing context as the string map stored in `workflowStarted`.
struct TraceCarrier: Injector, Extractor {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        carrier[key] = value
    }

    func extract(key: String, from carrier: [String: String]) -> String? {
        carrier[key]
    }
}

/// The tracer the runtime reports to, or `nil` when tracing is off (the process's tracer is the
/// no-op one), so an untraced runtime pays nothing per step.
func activeTracer(_ configured: (any Tracer)?) -> (any Tracer)? {
    let tracer = configured ?? InstrumentationSystem.tracer
    return tracer is NoOpTracer ? nil : tracer
}

/// Runs `operation` in a span of `tracer`, or just runs it when there is no tracer.
func withOptionalSpan<T>(
    _ tracer: (any Tracer)?,
    _ name: @autoclosure () -> String,
    context: @autoclosure () -> InstrumentationContext = .current ?? .topLevel,
    ofKind kind: SpanKind = .internal,
    isolation: isolated (any Actor)? = #isolation,
    _ operation: ((any Span)?) async throws -> T
) async rethrows -> T {
    guard let tracer else { return try await operation(nil) }
    return try await tracer.withAnySpan(name(), context: context(), ofKind: kind, isolation: isolation) { span in
        try await operation(span)
    }
}
