public import CoreMetrics
public import Logging
public import Tracing

extension WorkflowRuntime {
    /// How the runtime behaves.
    ///
    /// ```swift
    /// var configuration = WorkflowRuntime.Configuration(logger: logger)
    /// configuration.parkAfter = .seconds(30)
    /// configuration.maxPayloadSize = 1 << 20
    /// let runtime = WorkflowRuntime(store: store, workflows: [OnboardUser()], configuration: configuration)
    /// ```
    public struct Configuration: Sendable {
        /// Where the runtime logs; metadata keys are in ``LogKey``. `nil` (the default) uses
        /// the task-local `Logger.current` of the task that creates the runtime.
        public var logger: Logger?
        /// How many unfinished workflows recovery reads from the store per page.
        public var recoveryPageSize: Int
        /// How many of the workflows recovery finds start at once. One counts until its body
        /// first only waits (sleeps, waits for an event), it leaves memory, or a second has
        /// passed; the others wait their turn as a few bytes each (on a shared store, under the
        /// claims recovery took), so that recovering a crash with 100,000 workflows in flight
        /// takes a few hundred megabytes rather than every one's load at once. An event or a
        /// cancellation for one still waiting is recorded at once and starts it. Default 1,000.
        public var recoveryConcurrency: Int = 1000
        /// How long a recovered workflow that neither waits nor finishes counts against
        /// ``recoveryConcurrency``: a long step, or a wait for a workflow still queued behind it,
        /// holds recovery back for no longer.
        @_spi(Testing) public var recoveryHold: Duration = .seconds(1)
        /// The wall clock for timestamps, sleeps, timeouts and the runtime's own periodic work.
        public var clock: any WorkflowClock
        /// How long a workflow that only waits (sleeps, waits for an event) stays in memory before
        /// it is *parked*: it leaves memory and waits in the store. `nil` keeps every workflow in
        /// memory. A parked workflow is rebuilt by replay when its timer comes due or an event arrives.
        public var parkAfter: Duration?
        /// How long a workflow that only waits keeps its task before it becomes *dormant*: it
        /// stays in memory with its claim and its folded history, but gives up the task its
        /// body waited in (most of a waiting workflow's memory: about 2 KB held instead of 10 KB).
        /// An event, a cancellation or its timer wakes it by replaying its body from that state,
        /// with no read from the store: recorded steps return their results, so the cost is
        /// the replay's CPU. `nil` (the default) keeps every waiting workflow's task. A dormant
        /// workflow is still parked after ``parkAfter``, and does not count against
        /// ``maxResidentWorkflows``, which bounds the workflows that hold a task. A workflow on
        /// a queue keeps its task, and with it the queue's slot.
        ///
        /// Bound the tasks alive at once with ``maxResidentWorkflows`` too, and the process's
        /// memory follows: the memory a burst of tasks freed sits between the objects dormant
        /// workflows keep, and the allocator cannot hand it back. Measured with 100,000 dormant
        /// workflows: about 2.1 KB of resident memory each with 2,000 tasks at most at once,
        /// 5.9 KB with all 100,000 started at once.
        public var dormantAfter: Duration?
        /// How far ahead the timers of parked workflows are read from the store's due-time index
        /// into the in-memory timer wheel. Timers further out cost disk only; the runtime reads
        /// the next stretch when half of this has passed.
        public var timerHorizon: Duration
        /// How many workflows may be in memory with a task at once (dormant ones, see
        /// ``dormantAfter``, do not count). A workflow started, recovered or woken
        /// beyond this waits in the store until another finishes, rests or is parked, so a burst of
        /// starts costs disk, not memory (a sleeping workflow in memory takes about 10 KB with its
        /// task, about 2 KB dormant).
        /// An event, update or cancellation for a workflow out of memory (a child's notice to its
        /// parked parent, say) is written to its history in the store without waiting for room.
        /// A step that waits for another workflow (sends it an event and waits for its result,
        /// say) keeps its own place meanwhile: keep the limit well above how many do that at once.
        public var maxResidentWorkflows: Int
        /// Where the runtime reports its metrics; `nil` uses the process's `MetricsSystem`
        /// factory. The metrics are listed in `RuntimeMetrics`.
        public var metricsFactory: (any MetricsFactory)?
        /// The largest workflow input, step result, event payload or workflow output, in bytes
        /// of JSON. Larger ones fail with ``ContinuumError/Code/payloadTooLarge``: a start or
        /// send is refused with nothing stored, a step result or output fails that step or the
        /// workflow once. Default 2 MiB; never more than the store's ``StoreLimits/maxPayloadBytes``.
        public var maxPayloadSize: Int
        /// How often workflows stopped by a full disk or map (``ContinuumError/Code/storageFull``)
        /// or an unreachable store (``ContinuumError/Code/storeUnavailable``) are tried again,
        /// slowing down to every 5 seconds while the store stays full or out of reach. The write
        /// that failed was never acknowledged, so a retry continues from what is committed; once
        /// space is freed, or the database is back, they go on by themselves.
        public var storageRetryInterval: Duration
        /// Where the runtime reports its spans; `nil` uses the process's `InstrumentationSystem`
        /// tracer. The spans and their attributes are listed in ``TraceAttribute``. With the
        /// no-op tracer (the default when nothing is bootstrapped) tracing costs nothing.
        public var tracer: (any Tracer)?
        /// The name this runtime claims workflows under. Processes sharing a store need distinct
        /// names; the default is unique to the process.
        public var owner: OwnerID
        /// What replay does with a recorded step whose code changed since it ran (its
        /// fingerprint, from `#step` or `ctx.step(_:version:)`, differs from the code deployed
        /// now). Default ``CodeChangePolicy/suspend``; ``development`` reruns.
        public var codeChange: CodeChangePolicy
        /// A name for the code this runtime runs (a version, a commit), recorded when a workflow
        /// is suspended so that the diff says which build could not run it.
        public var build: String?
        /// The limits of named queues (``QueueLimits``), which steps (`ctx.step(_:queue:…)`)
        /// and workflows (``WorkflowRuntime/start(_:id:input:timeout:queue:)``) name. A queue
        /// not listed here lets everything through.
        public var queues: [String: QueueLimits] = [:]
        /// How many events a workflow's history grows by before the runtime writes a snapshot
        /// of its folded state with the next append (``WorkflowSnapshot``), so that a wake, a
        /// recovery or a takeover folds the events after the snapshot rather than the whole
        /// history; a larger state waits for more events (half its size), so that snapshots
        /// cost each event a bounded amount however long the history. Default 1,000; `nil`
        /// writes none and folds every event. The events stay stored and readable either way.
        public var snapshotEvery: Int? = 1000

        /// The defaults, with ``codeChange`` set to ``CodeChangePolicy/rerun``: while you edit a
        /// workflow, a changed step runs again instead of serving its old recorded result.
        public static var development: Configuration {
            var configuration = Configuration()
            configuration.codeChange = .rerun
            return configuration
        }

        /// The defaults: log to `Logger.current`, recover in pages of 1,000, the system clock,
        /// park workflows that only waited for 10 seconds, hold parked timers due within a
        /// minute in memory, at most 100,000 workflows in memory.
        public init(
            logger: Logger? = nil, recoveryPageSize: Int = 1000, clock: any WorkflowClock = SystemClock(),
            parkAfter: Duration? = .seconds(10), timerHorizon: Duration = .seconds(60), maxResidentWorkflows: Int = 100_000
        ) {
            self.logger = logger
            self.recoveryPageSize = recoveryPageSize
            self.clock = clock
            self.parkAfter = parkAfter
            self.timerHorizon = timerHorizon
            self.maxResidentWorkflows = maxResidentWorkflows
            self.metricsFactory = nil
            self.tracer = nil
            self.storageRetryInterval = .seconds(1)
            self.maxPayloadSize = 2 << 20
            self.owner = .unique()
            self.codeChange = .suspend
            self.build = nil
        }
    }

    /// What replay does with a recorded step whose code changed since it ran.
    public enum CodeChangePolicy: String, Sendable, Hashable, CaseIterable {
        /// Suspend the workflow, naming the step: someone decides (resume keeps the recorded
        /// result, reset reruns from the step, cancel ends it). The production default.
        case suspend
        /// Reset the workflow to the first changed step and run it again with the code now
        /// deployed, as a recorded reset (nothing is deleted; steps that run again get new
        /// idempotency keys). The development default.
        case rerun
        /// Keep the recorded result, as if the code had not changed.
        case accept
    }

    /// Metadata keys the runtime logs with, and the attribute names of its spans.
    public enum LogKey {
        /// The workflow's id.
        public static let workflowID = "continuum.workflow.id"
        /// The workflow's type name.
        public static let workflowType = "continuum.workflow.type"
        /// An error code (``ContinuumError/Code``).
        public static let errorCode = "continuum.error.code"
        /// How a workflow ended: `completed`, `failed` or `cancelled`.
        public static let status = "continuum.workflow.status"
        /// A step's name.
        public static let stepName = "continuum.step.name"
        /// A step's attempt, from 1.
        public static let attempt = "continuum.step.attempt"
        /// An external event's name.
        public static let eventName = "continuum.event.name"
        /// How many unfinished workflows `run()` recovered from the store.
        public static let recovered = "continuum.recovered"
        /// How many workflows a log line is about.
        public static let workflowCount = "continuum.workflows"
    }
}
