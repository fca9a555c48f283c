import CoreMetrics
import Logging
import ServiceLifecycle
import Synchronization
import Tracing

/// Runs durable workflows on an ``EventStore``: starts them, recovers them after a restart,
/// and answers questions about them.
///
/// ```swift
/// let runtime = WorkflowRuntime(store: try LMDBStore(path: "./state"), workflows: [OnboardUser(...)])
/// try await runtime.withRunning { runtime in
///     let handle = try await runtime.start(OnboardUser.self, id: "user-42", input: .init(...))
///     print(try await handle.result())
/// }
/// ```
///
/// Work happens only while ``run()`` runs (directly, in a task group, or through
/// ``withRunning(_:)``): it first resumes every unfinished workflow from its history, then
/// drives each workflow started with ``start(_:id:input:)``. A workflow started while the
/// runtime is not running is stored and begins at the next `run()`. Cancelling `run()` stops
/// every workflow where it is; nothing that was not committed is acknowledged, handles still
/// waiting for a result get ``ContinuumError/Code/storeClosed``, and the next `run()`
/// continues the workflows.
public final class WorkflowRuntime: Service, Sendable {
    /// How the runtime behaves.
    public struct Configuration: Sendable {
        /// Where the runtime logs; metadata keys are in ``LogKey``.
        public var logger: Logger
        /// How many unfinished workflows recovery reads from the store per page.
        public var recoveryPageSize: Int
        /// The wall clock for timestamps, sleeps and timeouts.
        public var clock: any WorkflowClock
        /// How long a workflow that only waits (sleeps, waits for an event) stays in memory before
        /// it is parked in the store and leaves memory; `nil` keeps every workflow in memory.
        /// A parked workflow is rebuilt by replay when its timer comes due or an event arrives.
        public var idleTimeout: Duration?
        /// How far ahead the timers of parked workflows are read from the store's due-time index
        /// into the in-memory timer wheel. Timers further out cost disk only; the runtime reads
        /// the next stretch when half of this has passed.
        public var timerHorizon: Duration
        /// How many workflows may be in memory at once. A workflow started, recovered or woken
        /// beyond this waits in the store until another finishes or is parked, so a burst of
        /// starts costs disk, not memory (a sleeping workflow in memory takes about 16 KB).
        /// A step that waits for another workflow (sends it an event and waits for its result,
        /// say) keeps its own place meanwhile: keep the limit well above how many do that at once.
        public var maxResidentWorkflows: Int
        /// Where the runtime reports its metrics; `nil` uses the process's `MetricsSystem`
        /// factory. It reports `continuum_workflows_started_total`,
        /// `continuum_workflows_finished_total{status}`, `continuum_step_duration_seconds`,
        /// `continuum_step_retries_total`, `continuum_timer_lateness_seconds`,
        /// `continuum_events_received_total` and `continuum_workflows_resident`.
        public var metricsFactory: (any MetricsFactory)?
        /// The largest workflow input, step result, event payload or workflow output, in bytes
        /// of JSON. Larger ones fail with ``ContinuumError/Code/payloadTooLarge``: a start or
        /// send is refused with nothing stored, a step result or output fails that step or the
        /// workflow once. Default 2 MiB.
        public var maxPayloadSize: Int
        /// How often workflows stopped by a full disk or map (``ContinuumError/Code/storageFull``)
        /// are tried again. The write that failed was never acknowledged, so a retry continues
        /// from what is committed; once space is freed they go on by themselves.
        public var storageRetryInterval: Duration
        /// Where the runtime reports its spans; `nil` uses the process's `InstrumentationSystem`
        /// tracer. The spans and their attributes are listed in ``TraceAttribute``. With the
        /// no-op tracer (the default when nothing is bootstrapped) tracing costs nothing.
        public var tracer: (any Tracer)?

        /// The defaults: log to a logger labelled `continuum`, recover in pages of 1,000, the
        /// system clock, park workflows idle for 10 seconds, hold parked timers due within a
        /// minute in memory, at most 100,000 workflows in memory.
        public init(
            logger: Logger = Logger(label: "continuum"), recoveryPageSize: Int = 1000, clock: any WorkflowClock = SystemClock(),
            idleTimeout: Duration? = .seconds(10), timerHorizon: Duration = .seconds(60), maxResidentWorkflows: Int = 100_000
        ) {
            self.logger = logger
            self.recoveryPageSize = recoveryPageSize
            self.clock = clock
            self.idleTimeout = idleTimeout
            self.timerHorizon = timerHorizon
            self.maxResidentWorkflows = maxResidentWorkflows
            self.metricsFactory = nil
            self.tracer = nil
            self.storageRetryInterval = .seconds(1)
            self.maxPayloadSize = 2 << 20
        }
    }

    /// Metadata keys the runtime logs with.
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
    }

    private struct Launch: Sendable {
        var id: String
        /// Whether a timer or an event wakes it from the store (it may be parked).
        var wake = false
    }

    private struct State: ~Copyable {
        /// Where `start` hands new workflows to the running `run()`; `nil` while not running.
        var launches: AsyncStream<Launch>.Continuation?
        /// Workflows being driven, with their instance once it is loaded.
        var active: [String: Slot] = [:]
        var suspended: [String: ContinuumError] = [:]
        var waiters: [String: [UInt64: CheckedContinuation<[UInt8], any Error>]] = [:]
        var nextWaiterID: UInt64 = 0
        /// Whether `run()` finished recovery and is serving.
        var ready = false
    }

    /// A workflow being driven: its instance once loaded, and senders waiting for it.
    private struct Slot {
        /// Whether a `drive` task owns the workflow (a sender may create the slot first).
        var driving = false
        var instance: WorkflowInstance?
        var waiting: [CheckedContinuation<WorkflowInstance?, Never>] = []
    }

    /// The store holding every workflow's history.
    public let store: any EventStore
    private let configuration: Configuration
    private let workflows: [String: AnyWorkflow]
    private let state = Mutex(State())
    /// Every timer of the workflows in memory, and the wake-ups of parked ones.
    let timers: TimerService
    /// Workflows that became idle, for the reaper.
    private let idleQueue = IdleQueue()
    /// Room in memory for `maxResidentWorkflows`.
    private let admission: Admission
    let metrics: RuntimeMetrics
    /// `nil` when tracing is off.
    let tracer: (any Tracer)?

    /// Creates a runtime. Nothing runs until ``run()``.
    ///
    /// - Parameters:
    ///   - store: Where histories are kept, such as `LMDBStore`.
    ///   - workflows: Every workflow type this process may run or resume, each with its dependencies.
    ///   - configuration: Logging and tuning.
    public init(store: any EventStore, workflows: [any Workflow], configuration: Configuration = .init()) {
        self.store = store
        self.configuration = configuration
        self.timers = TimerService(clock: configuration.clock)
        self.admission = Admission(limit: configuration.maxResidentWorkflows)
        self.metrics = RuntimeMetrics(factory: configuration.metricsFactory ?? MetricsSystem.factory)
        self.tracer = activeTracer(configuration.tracer)
        var registry: [String: AnyWorkflow] = [:]
        for workflow in workflows {
            let erased = Self.erase(workflow)
            registry[erased.name] = erased
        }
        self.workflows = registry
    }

    private static func erase<W: Workflow>(_ workflow: W) -> AnyWorkflow { AnyWorkflow(workflow) }

    private var logger: Logger { configuration.logger }

    // MARK: Lifecycle

    /// Recovers every unfinished workflow, then drives started workflows until cancelled or,
    /// run in a swift-service-lifecycle `ServiceGroup`, until a graceful shutdown.
    ///
    /// A graceful shutdown stops taking new work (workflows started from then on are stored and
    /// begin at the next run), stops every workflow where it is, lets the appends already
    /// submitted commit, and closes the store: the process is about to end.
    ///
    /// ```swift
    /// let group = ServiceGroup(services: [runtime, httpServer], gracefulShutdownSignals: [.sigterm], logger: logger)
    /// try await group.run()
    /// ```
    ///
    /// - Throws: ``ContinuumError`` when the store cannot list unfinished workflows, or when
    ///   the runtime is already running.
    public func run() async throws {
        let launches = try begin()
        try await cancelWhenGracefulShutdown { try await self.serve(launches) }
        if Task.isShuttingDownGracefully {
            // Every workflow task has ended, so nothing more is submitted; closing lets the
            // writer commit what is queued, then releases the directory.
            store.close()
            logger.info("Continuum runtime shut down gracefully")
        }
    }

    /// Creates a runtime on `store`, runs it for the duration of `body`, then stops it; a
    /// scoped form for scripts and tests. The store stays open.
    ///
    /// ```swift
    /// let total = try await WorkflowRuntime.withRuntime(store: store, workflows: [Checkout()]) { runtime in
    ///     try await runtime.start(Checkout.self, id: "order-7", input: order).result()
    /// }
    /// ```
    public static func withRuntime<R>(
        store: any EventStore, workflows: [any Workflow], configuration: Configuration = .init(),
        _ body: (WorkflowRuntime) async throws -> R
    ) async throws -> R {
        try await WorkflowRuntime(store: store, workflows: workflows, configuration: configuration).withRunning(body)
    }

    /// Marks the runtime running and opens the queue `start` hands new workflows to.
    /// How many task groups drive workflows.
    private static let laneCount = 64

    private func begin() throws(ContinuumError) -> AsyncStream<Launch> {
        let (launches, launchQueue) = AsyncStream.makeStream(of: Launch.self)
        try state.withLock { state throws(ContinuumError) in
            guard state.launches == nil else {
                throw ContinuumError(.invalidArgument, "The runtime is already running; call run() once at a time.")
            }
            state.launches = launchQueue
        }
        return launches
    }

    private func serve(_ launches: AsyncStream<Launch>) async throws {
        defer {
            // Whoever still waits for a result learns that nothing will produce it now.
            let waiters = state.withLock { state in
                state.launches = nil
                state.ready = false
                defer { state.waiters = [:] }
                return state.waiters
            }
            let stopped = ContinuumError(
                .storeClosed, "The runtime stopped before the workflow finished; it continues when the runtime runs again.")
            for waiter in waiters.values.flatMap(\.values) { waiter.resume(throwing: stopped) }
            // Every drive task has ended: what is left are senders waiting and claims made by
            // `launch` for workflows this run never got to (the next run recovers them).
            let senders = state.withLock { state in
                defer { state.active = [:] }
                return state.active.values.flatMap(\.waiting)
            }
            for sender in senders { sender.resume(returning: nil) }
        }
        try await withThrowingDiscardingTaskGroup { group in
            // Workflows are driven in several task groups: removing a finished child from a task
            // group walks its list of children, which with 100,000 sleeping workflows in one group
            // took a third of the CPU.
            let lanes = (0..<Self.laneCount).map { _ in AsyncStream.makeStream(of: Launch.self) }
            for lane in lanes {
                group.addTask {
                    await withDiscardingTaskGroup { workflows in
                        for await launch in lane.stream {
                            // Stopping: what is still queued is recovered by the next run.
                            if Task.isCancelled { break }
                            await self.admission.enter()
                            self.metrics.resident.record(self.admission.inside)
                            workflows.addTask {
                                defer {
                                    self.admission.leave()
                                    self.metrics.resident.record(self.admission.inside)
                                }
                                await self.drive(id: launch.id, wake: launch.wake)
                            }
                        }
                    }
                }
            }
            defer { for lane in lanes { lane.continuation.finish() } }
            var nextLane = 0
            func assign(_ launch: Launch) {
                lanes[nextLane].continuation.yield(launch)
                nextLane = (nextLane + 1) % lanes.count
            }
            var after: StreamID?
            var recovered = 0
            while true {
                // Parked workflows wait in the store for their timer or event; only active ones resume now.
                let page = try store.listActive(after: after, limit: configuration.recoveryPageSize)
                for (_, summary) in page {
                    assign(Launch(id: summary.id))
                }
                recovered += page.count
                guard page.count == configuration.recoveryPageSize, let last = page.last else { break }
                after = last.0
            }
            // Everything overdue is read now, in due order, so it fires first.
            let horizon = try loadParkedTimers(after: nil)
            group.addTask { try await self.moveTimerHorizon(after: horizon) }
            state.withLock { $0.ready = true }
            logger.info("Continuum runtime started", metadata: [LogKey.recovered: "\(recovered)"])
            // Timers fire from a thread of their own, so they keep time however busy the pool is.
            let timerThread = ThreadExecutor(name: "continuum.timers")
            defer { timerThread.shutdown() }
            group.addTask(executorPreference: timerThread) { await self.timers.run(on: timerThread, wake: { self.wakeParked($0) }) }
            if let idleTimeout = configuration.idleTimeout {
                group.addTask { await self.evictIdleWorkflows(after: idleTimeout) }
            }
            group.addTask { await self.retryAfterStorageFull() }
            for await launch in launches {
                assign(launch)
            }
        }
    }

    /// Runs the runtime for the duration of `body`, then stops it.
    ///
    /// ```swift
    /// let total = try await runtime.withRunning { runtime in
    ///     try await runtime.start(Checkout.self, id: "order-7", input: order).result()
    /// }
    /// ```
    public func withRunning<R>(_ body: (WorkflowRuntime) async throws -> R) async throws -> R {
        // Running before `body` starts, so a result it waits for cannot look "not running".
        let launches = try begin()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.serve(launches) }
            let result: Result<R, any Error>
            do {
                result = .success(try await body(self))
            } catch {
                result = .failure(error)
            }
            group.cancelAll()
            // Surfaces an error that ended run() early (a store that cannot be read, say).
            try await group.waitForAll()
            return try result.get()
        }
    }

    // MARK: Starting

    /// Starts a workflow, or finds the one already started with this id.
    ///
    /// Returns once the start is committed. Starting an id that exists returns a handle to that
    /// run (its input is not replaced), so a retried request starts one workflow.
    ///
    /// - Parameters:
    ///   - type: The workflow's type; it must be among those the runtime was created with.
    ///   - id: The workflow's id, unique in the store (1–511 bytes of UTF-8, in Unicode NFC).
    ///   - input: The workflow's input.
    /// - Throws: ``ContinuumError/Code/unknownWorkflowType``, ``ContinuumError/Code/workflowIDConflict``
    ///   when the id belongs to a workflow of another type, ``ContinuumError/Code/invalidArgument``,
    ///   or a storage error.
    @discardableResult
    public func start<W: Workflow>(_ type: W.Type, id: String, input: W.Input) async throws -> WorkflowHandle<W> {
        try Self.validate(id: id)
        guard workflows[W.name] != nil else { throw Self.unregistered(W.name, id: id) }
        let inputBytes = try PayloadCoder.encode(input, what: "the input of workflow '\(id)'")
        try PayloadCoder.check(inputBytes, limit: configuration.maxPayloadSize, what: "The input of workflow '\(id)'")
        _ = try await create(type: W.name, id: id, input: inputBytes)
        return WorkflowHandle(runtime: self, id: id)
    }

    /// Starts a workflow by its registered type name with input that is already JSON, as an
    /// HTTP edge receives it; otherwise like ``start(_:id:input:)``.
    ///
    /// - Returns: Whether this call created the workflow (`false`: it existed with this input).
    /// - Throws: ``ContinuumError/Code/unknownWorkflowType``; ``ContinuumError/Code/payloadCoding``
    ///   when the JSON does not decode as the type's input; ``ContinuumError/Code/workflowIDConflict``
    ///   when the id exists with another type or another input; ``ContinuumError/Code/invalidArgument``.
    ///   Nothing is stored when it throws.
    public func start(type: String, id: String, json input: [UInt8]) async throws -> StartReceipt {
        try Self.validate(id: id)
        guard let workflow = workflows[type] else { throw Self.unregistered(type, id: id) }
        try PayloadCoder.check(input, limit: configuration.maxPayloadSize, what: "The input of workflow '\(id)'")
        try workflow.checkInput(input)
        let created = try await create(type: type, id: id, input: input)
        if !created, let first = try store.load(id: id)?.events.first, case .workflowStarted(_, let stored, _) = first.kind, stored != input {
            throw ContinuumError(
                .workflowIDConflict,
                "Workflow '\(id)' was started before with another input; starting it again must repeat the same input, or use a new id.",
                workflowID: id)
        }
        return StartReceipt(id: id, type: type, created: created)
    }

    /// The names of the workflow types this runtime runs.
    public var workflowTypes: [String] { workflows.keys.sorted() }

    private static func unregistered(_ type: String, id: String) -> ContinuumError {
        ContinuumError(
            .unknownWorkflowType,
            "Workflow type '\(type)' is not registered; pass an instance of it in `workflows:` when creating the runtime.",
            workflowID: id)
    }

    /// Stores the start (unless the id exists) and hands the workflow to `run()`; returns
    /// whether it was created.
    private func create(type: String, id: String, input: [UInt8]) async throws -> Bool {
        try await withOptionalSpan(tracer, "start \(type)", ofKind: .producer) { span in
            span?.attributes[TraceAttribute.workflowID] = id
            span?.attributes[TraceAttribute.workflowType] = type
            var traceContext: [String: String] = [:]
            if let tracer, let span { tracer.inject(span.context, into: &traceContext, using: TraceCarrier()) }
            let started = HistoryEvent(
                sequence: 0, timestamp: configuration.clock.now(),
                kind: .workflowStarted(type: type, input: input, traceContext: traceContext))
            switch try await store.create(CreateRequest(id: id, type: type, started: started)) {
            case .created:
                span?.attributes[TraceAttribute.created] = true
                logger.debug("Workflow started", metadata: [LogKey.workflowID: "\(id)", LogKey.workflowType: "\(type)"])
                metrics.started.increment()
                launch(id)
                return true
            case .existing(_, let summary):
                span?.attributes[TraceAttribute.created] = false
                guard summary.type == type else {
                    throw ContinuumError(
                        .workflowIDConflict,
                        "Workflow id '\(id)' belongs to a workflow of type '\(summary.type)', not '\(type)'; choose another id.",
                        workflowID: id)
                }
                if summary.status == .running { launch(id) }
                return false
            }
        }
    }

    /// Hands a workflow to the running `run()`; when not running, the next `run()` recovers it.
    private func launch(_ id: String, wake: Bool = false) {
        _ = state.withLock { $0.launches }?.yield(Launch(id: id, wake: wake))
    }

    static func validate(id: String) throws(ContinuumError) {
        // 511: LMDB's largest key.
        guard !id.isEmpty, id.utf8.count <= 511 else {
            throw ContinuumError(.invalidArgument, "A workflow id must be 1 to 511 bytes of UTF-8; got \(id.utf8.count) bytes.")
        }
        // Swift compares strings by canonical equivalence, the store by bytes: only one
        // spelling of each id (NFC) is accepted, so the two always agree.
        guard id.utf8.elementsEqual(id.precomposedStringWithCanonicalMapping.utf8) else {
            throw ContinuumError(
                .invalidArgument, "A workflow id must be in Unicode normalization form C (NFC); normalize '\(id)' before using it.")
        }
    }

    // MARK: Driving

    /// Reads the timers of parked workflows from the store's due-time index into the wheel, up
    /// to one horizon ahead, starting after `after`; returns where it stopped. Timers further
    /// out are not read.
    private func loadParkedTimers(after: DueTimer?) throws(ContinuumError) -> DueTimer? {
        let until = configuration.clock.now() + max(configuration.timerHorizon.wholeNanoseconds, 2_000_000)
        // Claimed before reading: a workflow parked from now on with a timer due by `until`
        // schedules its own wake-up, so none falls between the read and the claim.
        timers.claimHorizon(until)
        var after = after
        while true {
            let page = try store.timers(after: after, limit: 1024)
            for timer in page {
                if timer.due > until { return after }
                timers.scheduleWake(timer.id, at: timer.due)
                after = timer
            }
            if page.count < 1024 { return after }
        }
    }

    /// Reads the next stretch of parked timers whenever half a horizon has passed.
    private func moveTimerHorizon(after start: DueTimer?) async throws {
        let clock = configuration.clock
        let half = max(configuration.timerHorizon.wholeNanoseconds, 2_000_000) / 2
        var after = start
        while !Task.isCancelled {
            do {
                // On the clock, not the wheel: the wheel's timers are the workflows'.
                try await clock.sleep(until: timers.loadedHorizon - half)
            } catch {
                return  // the runtime is stopping
            }
            after = try loadParkedTimers(after: after)
        }
    }

    /// Relaunches, every ``Configuration/storageRetryInterval``, the workflows a full disk or
    /// map stopped; one that fails again is stopped again until the next try.
    private func retryAfterStorageFull() async {
        let clock = configuration.clock
        let interval = configuration.storageRetryInterval
        var delay = interval
        var retried: Set<String> = []
        while !Task.isCancelled {
            do {
                try await clock.sleep(until: clock.now() + delay.wholeNanoseconds)
            } catch {
                return  // the runtime is stopping
            }
            let blocked = state.withLock { state in
                // Not one whose drive task is still unwinding: its relaunch would find it claimed.
                let ids = state.suspended.filter { $0.value.code == .storageFull && state.active[$0.key] == nil }.map(\.key)
                for id in ids { state.suspended[id] = nil }
                return Set(ids)
            }
            // Stopped again after the last try: the store is still full, so try less often (up to 30 s).
            delay = blocked.isDisjoint(with: retried) ? interval : min(delay * 2, max(interval, .seconds(30)))
            retried = blocked
            guard !blocked.isEmpty else { continue }
            logger.notice("Retrying workflows stopped by a full store", metadata: ["continuum.workflows": "\(blocked.count)"])
            for id in blocked { launch(id, wake: true) }
        }
    }

    /// Whether ``run()`` is serving: it has relaunched every workflow that was running and read
    /// the first horizon of parked workflows' timers. A readiness probe can report this.
    public var isReady: Bool { state.withLock { $0.ready } }

    /// A parked workflow's timer came due: rebuild it, unless it is in memory (then it fires its own).
    private func wakeParked(_ id: String) {
        if state.withLock({ $0.active[id] == nil }) { launch(id, wake: true) }
    }

    /// How many sleeps, event timeouts and retry backoffs of workflows in memory wait on the
    /// timer wheel, their start committed and their deadline still ahead by the clock. Parked
    /// workflows' timers are not counted. It walks every timer: meant for tests and diagnostics.
    public var pendingTimers: Int { timers.sleeping }

    /// How many workflows are in memory now (running, or waiting and not yet parked).
    public var residentWorkflows: Int {
        state.withLock { $0.active.values.filter { $0.instance != nil }.count }
    }

    /// What the runtime holds in memory: for diagnosing a process that seems stuck (a test
    /// harness prints it on a signal). The text is for people and changes without notice.
    @_spi(Diagnostics)
    public var diagnostics: String {
        let (running, ready, active, loaded, suspended, waiters) = state.withLock { state in
            (
                state.launches != nil, state.ready, state.active.count, state.active.values.count { $0.instance != nil },
                state.suspended.count, state.waiters.values.reduce(0) { $0 + $1.count }
            )
        }
        return "runtime: running \(running), ready \(ready); \(active) claimed (\(loaded) loaded), \(suspended) suspended, "
            + "\(waiters) result waiters; admission \(admission.inside) inside, \(admission.queued) queued\n\(timers.diagnostics)"
    }

    /// What the runtime holds in memory for workflow `id`; see ``diagnostics``.
    @_spi(Diagnostics)
    public func diagnostics(of id: String) async -> String {
        let (slot, suspended, waiters) = state.withLock { state in (state.active[id], state.suspended[id], state.waiters[id]?.count ?? 0) }
        var text = "\(id): \(waiters) result waiters"
        if let suspended { text += ", suspended (\(suspended.code))" }
        guard let slot else { return text + ", not claimed" }
        text += ", claimed (driving \(slot.driving), \(slot.waiting.count) senders waiting for the instance)"
        guard let instance = slot.instance else { return text + ", not loaded" }
        return text + "; " + (await instance.diagnostics)
    }

    private func drive(id: String, wake: Bool = false) async {
        // Claimed once; the workflow is then loaded fresh, so a second launch finds what the first did.
        let claimed = state.withLock { state in
            guard state.active[id]?.driving != true else { return false }
            state.active[id, default: Slot()].driving = true
            return true
        }
        guard claimed else { return }
        /// The deadlines a parked workflow left with.
        var parkedDues: [Int64] = []
        defer {
            let waiting = state.withLock { $0.active.removeValue(forKey: id)?.waiting } ?? []
            for sender in waiting { sender.resume(returning: nil) }
            // Only now: a wake-up that fired while the body was still unwinding found the
            // workflow in memory and was dropped, and the loader has passed it.
            for due in parkedDues { timers.wakeIfLoaded(id, at: due) }
        }
        var logger = self.logger
        logger[metadataKey: LogKey.workflowID] = "\(id)"

        let stored: StoredWorkflow
        var history = WorkflowState()
        do {
            guard let loaded = try store.load(id: id) else { return }
            stored = loaded
            for event in stored.events { try history.apply(event) }
        } catch {
            suspend(id: id, ContinuumError.wrap(error), logger: logger)
            return
        }
        if let outcome = history.outcome {
            resolveWaiters(id: id, with: Self.result(of: outcome, id: id))
            return
        }
        logger[metadataKey: LogKey.workflowType] = "\(stored.summary.type)"
        guard let workflow = workflows[stored.summary.type] else {
            suspend(
                id: id,
                ContinuumError(
                    .unknownWorkflowType,
                    "Workflow '\(id)' has type '\(stored.summary.type)', which this runtime does not register. "
                        + "It is suspended; register the type and restart the runtime to resume it.",
                    workflowID: id),
                logger: logger)
            return
        }

        let instance = WorkflowInstance(
            id: id, stream: stored.stream, store: store, timers: timers, metrics: metrics, tracer: tracer, logger: logger, maxPayloadSize: configuration.maxPayloadSize,
            idleQueue: configuration.idleTimeout == nil ? nil : idleQueue,
            state: history)
        let senders = state.withLock { state in
            state.active[id]?.instance = instance
            defer { state.active[id]?.waiting = [] }
            return state.active[id]?.waiting ?? []
        }
        for sender in senders { sender.resume(returning: instance) }
        if wake {
            // Back in memory: no longer parked, so a crash from now on recovers it at once.
            do {
                try await store.append(AppendRequest(stream: stored.stream, id: id, events: [], parked: false))
            } catch {
                suspend(id: id, ContinuumError.wrap(error), logger: logger)
                return
            }
        }
        var parent = InstrumentationContext.topLevel
        tracer?.extract(history.traceContext, into: &parent, using: TraceCarrier())
        parkedDues = await withOptionalSpan(tracer, "workflow \(stored.summary.type)", context: parent, ofKind: .consumer) { span in
            span?.attributes[TraceAttribute.workflowID] = id
            span?.attributes[TraceAttribute.workflowType] = stored.summary.type
            span?.attributes[TraceAttribute.replayedEvents] = stored.events.count
            let end = await run(workflow, in: instance, input: history.input, logger: logger)
            span?.attributes[TraceAttribute.runOutcome] = end.name
            switch end {
            case .finished(.failed), .suspended: span?.setStatus(SpanStatus(code: .error))
            default: break
            }
            if case .parked(let dues) = end { return dues }
            return []
        }
    }

    /// How one run of a workflow body in this process ended.
    private enum RunEnd {
        case finished(WorkflowStatus)
        /// Parked in the store while it waits, with the deadlines it left.
        case parked([Int64])
        case suspended
        /// Stopped by shutdown; it resumes on the next run.
        case stopped

        var name: String {
            switch self {
            case .finished(let status): "\(status)"
            case .parked: "parked"
            case .suspended: "suspended"
            case .stopped: "stopped"
            }
        }
    }

    /// Runs the body of a loaded workflow and commits how it ended.
    private func run(_ workflow: AnyWorkflow, in instance: WorkflowInstance, input: [UInt8], logger: Logger) async -> RunEnd {
        let id = instance.id
        let context = WorkflowContext(instance: instance)
        let outcome: WorkflowState.Outcome
        do {
            let output = try await workflow.execute(context, input)
            try PayloadCoder.check(output, limit: configuration.maxPayloadSize, what: "The output of workflow '\(id)'")
            outcome = .completed(output)
        } catch {
            if await instance.evicted {
                logger.debug("Workflow parked while it waits")
                return .parked(await instance.parkedDues)
            }
            if let suspension = await instance.suspension {
                suspend(id: id, suspension, logger: logger)
                return .suspended
            }
            if Task.isCancelled {
                logger.debug("Workflow stopped by shutdown; it resumes on the next run")
                return .stopped
            }
            outcome = .failed(FailureRecord(error))
        }
        switch await instance.finish(outcome) {
        case .success(let outcome):
            let status: WorkflowStatus
            switch outcome {
            case .completed:
                status = .completed
                logger.debug("Workflow completed", metadata: [LogKey.status: "completed"])
            case .failed(let failure):
                status = .failed
                logger.info("Workflow failed: \(failure.message)", metadata: [LogKey.status: "failed"])
            case .cancelled:
                status = .cancelled
                logger.info("Workflow cancelled", metadata: [LogKey.status: "cancelled"])
            }
            metrics.finished(status)
            resolveWaiters(id: id, with: Self.result(of: outcome, id: id))
            return .finished(status)
        case .failure(let error):
            if Task.isCancelled && error.code == .storeClosed { return .stopped }
            if await instance.evicted {  // the body caught the eviction and returned
                return .parked(await instance.parkedDues)
            }
            suspend(id: id, error, logger: logger)
            return .suspended
        }
    }

    /// Parks the workflows that have only waited for `idleTimeout`, checking a few times per
    /// timeout (at least every quarter second).
    private func evictIdleWorkflows(after idleTimeout: Duration) async {
        // A wait due this soon keeps its workflow in memory: parking it would cost a replay at once.
        let margin: Int64 = 1_000_000_000
        let period = min(max(idleTimeout / 4, .milliseconds(5)), .milliseconds(250))
        while true {
            do {
                try await Task.sleep(for: period)
            } catch {
                return  // the runtime is stopping
            }
            let idleSince = ContinuousClock.now - idleTimeout
            let instances = idleQueue.take(idleSince: idleSince)
            // Many at once, so their parking appends share commits: one by one, parking fell
            // behind 25,000 sleepers started per second and memory grew without bound.
            for batch in stride(from: 0, to: instances.count, by: 1024) {
                await withDiscardingTaskGroup { group in
                    for instance in instances[batch..<min(batch + 1024, instances.count)] {
                        group.addTask { await instance.evictIfIdle(since: idleSince, margin: margin) }
                    }
                }
            }
        }
    }

    private func suspend(id: String, _ error: ContinuumError, logger: Logger) {
        logger.error(
            "Workflow suspended: \(error.message)", metadata: [LogKey.errorCode: "\(error.code)"])
        state.withLock { $0.suspended[id] = error }
        resolveWaiters(id: id, with: .failure(error))
    }

    private static func result(of outcome: WorkflowState.Outcome, id: String) -> Result<[UInt8], ContinuumError> {
        switch outcome {
        case .completed(let output):
            return .success(output)
        case .failed(let failure):
            return .failure(
                ContinuumError(
                    .workflowFailed, "Workflow '\(id)' failed: \(failure.type): \(failure.message)", workflowID: id))
        case .cancelled(let reason):
            return .failure(ContinuumError(.cancelled, "Workflow '\(id)' was cancelled: \(reason)", workflowID: id))
        }
    }

    // MARK: External events

    /// Sends an external event to a workflow; returns once it is committed.
    ///
    /// The event goes to the workflow's oldest `waitForEvent` for `name`, or waits in its inbox
    /// (durably, first in first out per name) until the workflow asks for it.
    ///
    /// ```swift
    /// try await runtime.send("approval", to: "order-7", payload: Approval(by: "ops"), dedupKey: request.id)
    /// ```
    ///
    /// - Parameters:
    ///   - name: The event's name, as the workflow waits for it.
    ///   - id: The workflow's id.
    ///   - payload: The event's payload, stored as JSON.
    ///   - dedupKey: When given, a second send with the same key (to the same workflow) appends
    ///     nothing and returns the first receipt, also when both race.
    /// - Throws: ``ContinuumError/Code/unknownWorkflow``, ``ContinuumError/Code/workflowFinished``,
    ///   the suspension's error for a suspended workflow, ``ContinuumError/Code/notRunning``.
    @discardableResult
    public func send<P: Encodable & Sendable>(_ name: String, to id: String, payload: P, dedupKey: String? = nil) async throws -> EventReceipt {
        guard !name.isEmpty, name.utf8.count <= 256 else {
            throw ContinuumError(.invalidArgument, "An event name must be 1 to 256 bytes of UTF-8; got \(name.utf8.count) bytes.")
        }
        return try await send(name, to: id, json: try PayloadCoder.encode(payload, what: "event '\(name)' for workflow '\(id)'"), dedupKey: dedupKey)
    }

    /// Sends an event whose payload is already JSON, as an HTTP edge receives it; otherwise
    /// like ``send(_:to:payload:dedupKey:)``.
    ///
    /// - Throws: also ``ContinuumError/Code/dedupKeyConflict`` when `dedupKey` was used before
    ///   for an event with another name or payload (nothing is appended).
    @discardableResult
    public func send(_ name: String, to id: String, json payload: [UInt8], dedupKey: String? = nil) async throws -> EventReceipt {
        guard !name.isEmpty, name.utf8.count <= 256 else {
            throw ContinuumError(.invalidArgument, "An event name must be 1 to 256 bytes of UTF-8; got \(name.utf8.count) bytes.")
        }
        if let dedupKey, dedupKey.isEmpty || dedupKey.utf8.count > 256 {
            throw ContinuumError(.invalidArgument, "A dedup key must be 1 to 256 bytes of UTF-8; got \(dedupKey.utf8.count) bytes.")
        }
        try PayloadCoder.check(payload, limit: configuration.maxPayloadSize, what: "Event '\(name)' for workflow '\(id)'")
        return try await withOptionalSpan(tracer, "send \(name)", ofKind: .producer) { span in
            span?.attributes[TraceAttribute.workflowID] = id
            span?.attributes[TraceAttribute.eventName] = name
            let receipt = try await deliver(name, to: id, json: payload, dedupKey: dedupKey)
            logger.trace(
                "Event \(receipt.duplicate ? "was a duplicate" : "received")",
                metadata: [LogKey.workflowID: "\(id)", LogKey.eventName: "\(name)"])
            return receipt
        }
    }

    private func deliver(_ name: String, to id: String, json payload: [UInt8], dedupKey: String?) async throws -> EventReceipt {
        let receipt: EventReceipt
        do {
            receipt = try await withInstance(id) { instance throws(ContinuumError) in
                try await instance.receive(name: name, payload: payload, dedupKey: dedupKey)
            }
        } catch let error as ContinuumError where error.code == .workflowFinished && dedupKey != nil {
            // A redelivery after the workflow finished still gets its first receipt.
            guard let first = try history(of: id).first(where: { if case .eventReceived(_, _, dedupKey) = $0.kind { true } else { false } })
            else { throw error }
            receipt = EventReceipt(workflowID: id, sequence: first.sequence, duplicate: true)
        }
        if receipt.duplicate, let dedupKey {
            let first = try history(of: id).first { $0.sequence == receipt.sequence }
            guard case .eventReceived(name, payload, _)? = first?.kind else {
                throw ContinuumError(
                    .dedupKeyConflict,
                    "Dedup key '\(dedupKey)' was already used for another event of workflow '\(id)'; "
                        + "use a new key for a new event, or resend the same event unchanged.",
                    workflowID: id)
            }
        }
        return receipt
    }

    /// Asks a workflow to stop; returns once the request is committed.
    ///
    /// The workflow's pending sleep, event wait or retry backoff throws a
    /// ``ContinuumError/Code/cancelled`` error, as does every later one. The workflow may catch
    /// it and run compensating steps (durable, like any step); however its body ends, the
    /// workflow ends ``WorkflowStatus/cancelled``. Cancelling twice is the same as once.
    ///
    /// - Throws: ``ContinuumError/Code/unknownWorkflow``, ``ContinuumError/Code/workflowFinished``,
    ///   the suspension's error for a suspended workflow, ``ContinuumError/Code/notRunning``.
    public func cancel(_ id: String, reason: String = "cancelled by request") async throws {
        try await withInstance(id) { instance throws(ContinuumError) in try await instance.cancel(reason: reason) }
        logger.info("Cancellation requested: \(reason)", metadata: [LogKey.workflowID: "\(id)"])
    }

    /// Runs `body` on the instance driving `id`, loading it first if it is parked; when the
    /// instance leaves memory meanwhile, waits for it to go and tries again on a fresh one.
    private func withInstance<R: Sendable>(
        _ id: String, _ body: (WorkflowInstance) async throws(ContinuumError) -> R
    ) async throws -> R {
        while true {
            guard let instance = try await instance(for: id) else { throw try unavailable(id) }
            do {
                return try await body(instance)
            } catch {
                guard await instance.evicted else { throw error }
                await released(id, instance)
            }
        }
    }

    /// Returns once `instance` no longer drives `id`.
    private func released(_ id: String, _ instance: WorkflowInstance) async {
        _ = await withCheckedContinuation { (continuation: CheckedContinuation<WorkflowInstance?, Never>) in
            let gone = state.withLock { state in
                guard let slot = state.active[id], slot.instance === instance else { return true }
                state.active[id]?.waiting.append(continuation)
                return false
            }
            if gone { continuation.resume(returning: nil) }
        }
    }

    /// Why no instance could be had for `id`.
    private func unavailable(_ id: String) throws -> ContinuumError {
        if let suspension = suspension(of: id) { return suspension }
        guard let summary = try store.summary(id: id) else {
            return ContinuumError(.unknownWorkflow, "No workflow has id '\(id)'; check the id or start the workflow first.", workflowID: id)
        }
        if summary.status.isFinished {
            return ContinuumError(.workflowFinished, "Workflow '\(id)' has \(summary.status); it takes no more events.", workflowID: id)
        }
        return ContinuumError(.notRunning, "Workflow '\(id)' is not being run; send events while the runtime runs.", workflowID: id)
    }

    /// The instance driving `id`, loading it if the workflow is unfinished and the runtime runs.
    private func instance(for id: String) async throws -> WorkflowInstance? {
        if let instance = state.withLock({ $0.active[id]?.instance }) { return instance }
        let running = try store.summary(id: id)?.status == .running
        let wakeable = running && state.withLock { $0.suspended[id] == nil }
        return await withCheckedContinuation { (continuation: CheckedContinuation<WorkflowInstance?, Never>) in
            // One decision under one lock: use the instance, wait for the driver loading it, or
            // create the slot and launch a driver, which takes the slot over with its waiters.
            let (ready, launchNeeded): (WorkflowInstance??, Bool) = state.withLock { state in
                if let instance = state.active[id]?.instance { return (.some(instance), false) }
                if state.active[id] != nil {
                    state.active[id]?.waiting.append(continuation)
                    return (nil, false)
                }
                guard state.launches != nil, wakeable else { return (.some(nil), false) }
                state.active[id] = Slot(waiting: [continuation])
                return (nil, true)
            }
            if let ready { continuation.resume(returning: ready) }
            if launchNeeded { launch(id, wake: true) }
        }
    }

    // MARK: Results

    private func resolveWaiters(id: String, with result: Result<[UInt8], ContinuumError>) {
        let waiters = state.withLock { $0.waiters.removeValue(forKey: id) } ?? [:]
        for waiter in waiters.values { waiter.resume(with: result.mapError { $0 }) }
    }

    /// Waits for the workflow's JSON output.
    func output(of id: String) async throws -> [UInt8] {
        let waiterID = state.withLock { state in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[UInt8], any Error>) in
                state.withLock { $0.waiters[id, default: [:]][waiterID] = continuation }
                // Registered first, checked second: an outcome committed after this check resolves the waiter.
                let settled: Result<[UInt8], ContinuumError>?
                do {
                    settled = try settledResult(of: id)
                } catch {
                    settled = .failure(ContinuumError.wrap(error))
                }
                if let settled, let waiter = removeWaiter(id: id, waiterID: waiterID) {
                    waiter.resume(with: settled.mapError { $0 })
                }
            }
        } onCancel: {
            removeWaiter(id: id, waiterID: waiterID)?.resume(throwing: CancellationError())
        }
    }

    private func removeWaiter(id: String, waiterID: UInt64) -> CheckedContinuation<[UInt8], any Error>? {
        state.withLock { state in
            let waiter = state.waiters[id]?.removeValue(forKey: waiterID)
            if state.waiters[id]?.isEmpty == true { state.waiters[id] = nil }
            return waiter
        }
    }

    private func settledResult(of id: String) throws(ContinuumError) -> Result<[UInt8], ContinuumError>? {
        if let suspension = state.withLock({ $0.suspended[id] }) { return .failure(suspension) }
        guard let summary = try store.summary(id: id) else {
            throw ContinuumError(.unknownWorkflow, "No workflow has id '\(id)'.", workflowID: id)
        }
        guard summary.status.isFinished, let stored = try store.load(id: id) else {
            if state.withLock({ $0.launches == nil }) {
                return .failure(
                    ContinuumError(
                        .notRunning,
                        "Workflow '\(id)' is unfinished and the runtime is not running, so it cannot finish; "
                            + "wait for its result while run() (or withRunning) runs.",
                        workflowID: id))
            }
            return nil
        }
        var history = WorkflowState()
        for event in stored.events { try history.apply(event) }
        return history.outcome.map { Self.result(of: $0, id: id) }
    }

    // MARK: Inspection

    /// The workflow's summary, with ``WorkflowStatus/suspended`` when this runtime suspended it,
    /// or `nil` when no workflow has this id.
    public func status(of id: String) throws(ContinuumError) -> WorkflowSummary? {
        guard var summary = try store.summary(id: id) else { return nil }
        if summary.status == .running, state.withLock({ $0.suspended[id] != nil }) { summary.status = .suspended }
        return summary
    }

    /// Why the runtime suspended this workflow, or `nil` when it is not suspended.
    public func suspension(of id: String) -> ContinuumError? {
        state.withLock { $0.suspended[id] }
    }

    /// Every event of the workflow's history, in order.
    ///
    /// - Throws: ``ContinuumError/Code/unknownWorkflow`` when no workflow has this id.
    public func history(of id: String) throws(ContinuumError) -> [HistoryEvent] {
        guard let stored = try store.load(id: id) else {
            throw ContinuumError(.unknownWorkflow, "No workflow has id '\(id)'.", workflowID: id)
        }
        return stored.events
    }

    /// Workflows with the given status (all when `nil`), oldest first, at most `limit`.
    public func list(status: WorkflowStatus? = nil, limit: Int = 100) throws(ContinuumError) -> [WorkflowSummary] {
        try list(status: status, after: nil, limit: limit).workflows
    }

    /// One page of workflows, oldest first; pass the page's `next` as `after` for the next one.
    ///
    /// - Throws: ``ContinuumError/Code/invalidArgument`` for a cursor this runtime did not hand out.
    public func list(status: WorkflowStatus?, after cursor: String?, limit: Int) throws(ContinuumError) -> WorkflowPage {
        let limit = max(1, limit)
        let suspended = state.withLock { $0.suspended }
        if status == .suspended {
            let ids = suspended.keys.sorted().filter { cursor == nil || $0 > cursor! }
            let page = ids.prefix(limit).compactMap { try? self.status(of: $0) }
            return WorkflowPage(workflows: page, next: ids.count > limit ? page.last?.id : nil)
        }
        var after: StreamID?
        if let cursor {
            guard let raw = UInt64(cursor) else {
                throw ContinuumError(.invalidArgument, "'\(cursor)' is not a list cursor; pass the `next` of a previous page.")
            }
            after = StreamID(rawValue: raw)
        }
        var result: [WorkflowSummary] = []
        while true {
            let page = try store.list(status: status, after: after, limit: limit)
            for (stream, summary) in page {
                after = stream
                var summary = summary
                if summary.status == .running, suspended[summary.id] != nil {
                    summary.status = .suspended
                    if status == .running { continue }
                }
                result.append(summary)
                if result.count == limit { return WorkflowPage(workflows: result, next: String(stream.rawValue)) }
            }
            guard page.count == limit else { return WorkflowPage(workflows: result, next: nil) }
        }
    }
}

/// What ``WorkflowRuntime/start(type:id:json:)`` did.
public struct StartReceipt: Sendable, Hashable {
    /// The workflow's id.
    public var id: String
    /// Its registered type name.
    public var type: String
    /// Whether this call created it (`false`: it existed, started with the same input).
    public var created: Bool
}

/// A page of ``WorkflowRuntime/list(status:after:limit:)``.
public struct WorkflowPage: Sendable, Hashable {
    /// The workflows, oldest first.
    public var workflows: [WorkflowSummary]
    /// Pass as `after` for the next page; `nil` on the last page.
    public var next: String?
}

/// A started workflow: its id, and a way to wait for its result.
public struct WorkflowHandle<W: Workflow>: Sendable {
    let runtime: WorkflowRuntime
    /// The workflow's id.
    public let id: String

    /// Waits until the workflow finishes and returns its output.
    ///
    /// Works across restarts: a handle made for an id that finished earlier returns the stored output.
    ///
    /// - Throws: ``ContinuumError/Code/workflowFailed`` when the workflow's body threw; the
    ///   suspension's error (``ContinuumError/Code/nondeterminism``, ``ContinuumError/Code/unknownWorkflowType``,
    ///   ``ContinuumError/Code/corruptedData``, …) when it is suspended; ``ContinuumError/Code/notRunning``
    ///   when it is unfinished and the runtime is not running; ``ContinuumError/Code/storeClosed``
    ///   when the runtime stops while waiting; `CancellationError` when the waiting task is cancelled.
    public func result() async throws -> W.Output {
        let bytes = try await runtime.output(of: id)
        return try PayloadCoder.decode(W.Output.self, from: bytes, what: "the output of workflow '\(id)'")
    }
}

extension WorkflowRuntime {
    /// A handle to an existing workflow of type `W`, for example after a restart.
    public func handle<W: Workflow>(_ type: W.Type, id: String) -> WorkflowHandle<W> {
        WorkflowHandle(runtime: self, id: id)
    }
}
