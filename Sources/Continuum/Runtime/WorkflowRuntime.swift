import Logging
public import ServiceLifecycle
import CoreMetrics
import Tracing
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

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
/// drives each workflow started with ``start(_:id:input:timeout:queue:)``. A workflow started while the
/// runtime is not running is stored and begins at the next `run()`. Cancelling `run()` stops
/// every workflow where it is; nothing that was not committed is acknowledged, handles still
/// waiting for a result get ``ContinuumError/Code/storeClosed``, and the next `run()`
/// continues the workflows.
///
/// The runtime is a façade over small parts, each in a file of its own: the decisions live in
/// `RuntimeStateMachine` (a value type), one workflow is driven by a `WorkflowDriver`, and the
/// loops run as services of ``run()``: the `Supervisor` (lanes and admission), the
/// `TimerHorizonLoader`, the `ParkingService`, the `StorageRetrier` and the `LeaseKeeper`.
public final class WorkflowRuntime: Service, Sendable {
    /// The store holding every workflow's history.
    public let store: any EventStore
    let configuration: Configuration
    let workflows: [String: AnyWorkflow]
    let state = RuntimeState()
    /// Every timer of the workflows in memory, and the wake-ups of parked ones.
    let timers: TimerService
    /// Workflows whose body only waits, for the parking service.
    let parking = ParkingQueue()
    /// Instances that only wait, for the service that makes them dormant.
    let dormancy = ParkingQueue()
    /// Room in memory for `maxResidentWorkflows`.
    let admission: Admission
    /// How many workflows recovery starts at once (`recoveryConcurrency`).
    let pacer: RecoveryPacer
    /// Claims taken in batches for workflows not driven yet (shared stores).
    let pendingClaims = PendingClaims()
    /// Where committed changes go to ``changes(of:)``.
    let feed = ChangeFeed()
    let metrics: RuntimeMetrics
    /// `nil` when tracing is off.
    let tracer: (any Tracer)?
    let logger: Logger
    /// The largest payload accepted: the configured size, within the store's limit.
    let maxPayloadSize: Int
    /// Admission to the named queues.
    let queueGate: QueueGate

    /// Creates a runtime. Nothing runs until ``run()``.
    ///
    /// - Parameters:
    ///   - store: Where histories are kept, such as `LMDBStore`.
    ///   - workflows: Every workflow type this process may run or resume, each with its dependencies.
    ///   - configuration: Logging and tuning.
    public init(store: any EventStore, workflows: [any Workflow], configuration: Configuration = .init()) {
        self.store = store
        self.configuration = configuration
        self.logger = configuration.logger ?? Logger.current
        self.timers = TimerService(clock: configuration.clock)
        self.admission = Admission(limit: configuration.maxResidentWorkflows)
        self.pacer = RecoveryPacer(limit: configuration.recoveryConcurrency, hold: configuration.recoveryHold)
        self.metrics = RuntimeMetrics(factory: configuration.metricsFactory ?? MetricsSystem.factory)
        self.tracer = activeTracer(configuration.tracer)
        self.maxPayloadSize = min(configuration.maxPayloadSize, store.limits.maxPayloadBytes)
        let logger = self.logger
        self.queueGate = QueueGate(
            limits: configuration.queues, clock: configuration.clock, factory: configuration.metricsFactory ?? MetricsSystem.factory,
            shared: configuration.queues.isEmpty ? nil : store.sharedQueues.map { ($0, configuration.owner, logger) })
        // The runtime's own workflows (schedules), which none of the user's can stand in for.
        var registry: [String: AnyWorkflow] = [:]
        for workflow in workflows {
            let erased = AnyWorkflow(workflow)
            registry[erased.name] = erased
        }
        for builtIn in Self.builtIns { registry[builtIn.name] = builtIn }
        self.workflows = registry
    }

    /// What drives one workflow.
    var driver: WorkflowDriver {
        let parking = configuration.parkAfter == nil ? nil : parking
        let dormancy = configuration.dormantAfter == nil ? nil : dormancy
        let snapshotEvery = configuration.snapshotEvery.map { max($0, 1) }
        return WorkflowDriver(
            store: store, workflows: workflows, state: state, timers: timers, metrics: metrics, tracer: tracer, logger: logger,
            owner: configuration.owner, maxPayloadSize: maxPayloadSize, parking: parking,
            feed: feed, codeChange: configuration.codeChange, build: configuration.build, pendingClaims: pendingClaims, runtime: self,
            snapshotEvery: snapshotEvery,
            environment: WorkflowInstance.Environment(
                timers: timers, metrics: metrics, tracer: tracer, maxPayloadSize: maxPayloadSize, parking: parking, dormancy: dormancy,
                feed: feed,
                codeChange: configuration.codeChange, build: configuration.build, runtime: self, snapshotEvery: snapshotEvery,
                submitter: store as? any SubmittingEventStore))
    }

    /// The names of the workflow types this runtime runs.
    public var workflowTypes: [String] { workflows.keys.filter { !Self.isBuiltIn($0) }.sorted() }

    /// The workflows every runtime runs for its own features.
    static let builtIns = [AnyWorkflow(ScheduleWorkflow())]

    /// Whether `type` names one of the runtime's own workflows.
    static func isBuiltIn(_ type: String) -> Bool { type == ScheduleWorkflow.name }

    /// What the store accepts: the longest id and name, the largest payload.
    public var limits: StoreLimits {
        var limits = store.limits
        limits.maxPayloadBytes = maxPayloadSize
        return limits
    }

    // MARK: Starting

    /// Starts a workflow, or finds the one already started with this id.
    ///
    /// Returns once the start is committed. Starting an id that exists with the same input
    /// returns a handle to that run, so a retried request starts one workflow; with another
    /// input it is refused.
    ///
    /// - Parameters:
    ///   - type: The workflow's type; it must be among those the runtime was created with.
    ///   - id: The workflow's id, unique in the store (1 to ``StoreLimits/maxWorkflowIDBytes``
    ///     bytes of UTF-8 — 511 for LMDB — in Unicode NFC).
    ///   - input: The workflow's input.
    ///   - timeout: How long the workflow may take, from now: when it has not ended by then, its
    ///     waits and backoffs throw ``ContinuumError/Code/timedOut`` (it may run compensating
    ///     steps), and it ends ``WorkflowStatus/failed`` with that code. The deadline is recorded
    ///     with the start, so it holds across restarts. `nil`: no deadline.
    ///   - queue: The queue the workflow runs on (``QueueEntry``): its body runs only while it
    ///     holds one of the queue's slots (``Configuration/queues``). Recorded with the start.
    /// - Throws: ``ContinuumError/Code/unknownWorkflowType``, ``ContinuumError/Code/workflowIDConflict``
    ///   when the id belongs to a workflow of another type or was started with another input,
    ///   ``ContinuumError/Code/invalidArgument``, or a storage error.
    @discardableResult
    public func start<W: Workflow>(
        _ type: W.Type, id: String, input: W.Input, timeout: Duration? = nil, queue: QueueEntry? = nil
    ) async throws -> WorkflowHandle<W> {
        try validate(id: id)
        guard let workflow = workflows[W.name] else { throw Self.unregistered(W.name, id: id) }
        let inputBytes = try PayloadCoder.encode(input, what: "the input of workflow '\(id)'")
        try PayloadCoder.check(inputBytes, limit: maxPayloadSize, what: "The input of workflow '\(id)'")
        if try await !create(type: W.name, id: id, input: inputBytes, timeout: timeout, queue: queue) {
            try await refuseOtherInput(id: id, input: inputBytes, workflow: workflow)
        }
        return WorkflowHandle(runtime: self, id: id)
    }

    /// Refuses a start of an existing id whose input differs from the stored one (compared in
    /// canonical form, so key order and spacing do not count).
    private func refuseOtherInput(id: String, input: [UInt8], workflow: AnyWorkflow) async throws {
        guard let first = try await store.load(id: id)?.events.first, case .workflowStarted(_, let stored, _) = first.kind, stored != input else {
            return
        }
        let same = (try? workflow.canonicalInput(stored)).map { $0 == (try? workflow.canonicalInput(input)) } ?? false
        guard !same else { return }
        throw ContinuumError(
            .workflowIDConflict,
            "Workflow '\(id)' was started before with another input; starting it again must repeat the same input, or use a new id.",
            workflowID: id)
    }

    /// Starts a workflow by its registered type name with input that is already JSON, as an
    /// HTTP edge receives it; otherwise like ``start(_:id:input:timeout:queue:)``.
    ///
    /// - Returns: Whether this call created the workflow (`false`: it existed with this input).
    /// - Throws: ``ContinuumError/Code/unknownWorkflowType``; ``ContinuumError/Code/payloadCoding``
    ///   when the JSON does not decode as the type's input; ``ContinuumError/Code/workflowIDConflict``
    ///   when the id exists with another type or another input; ``ContinuumError/Code/invalidArgument``.
    ///   Nothing is stored when it throws.
    public func start(type: String, id: String, json input: [UInt8], timeout: Duration? = nil, queue: QueueEntry? = nil) async throws -> StartReceipt {
        try validate(id: id)
        guard let workflow = workflows[type] else { throw Self.unregistered(type, id: id) }
        try PayloadCoder.check(input, limit: maxPayloadSize, what: "The input of workflow '\(id)'")
        try workflow.checkInput(input)
        let created = try await create(type: type, id: id, input: input, timeout: timeout, queue: queue)
        if !created { try await refuseOtherInput(id: id, input: input, workflow: workflow) }
        return StartReceipt(id: id, type: type, created: created)
    }

    static func unregistered(_ type: String, id: String) -> ContinuumError {
        ContinuumError(
            .unknownWorkflowType,
            "Workflow type '\(type)' is not registered; pass an instance of it in `workflows:` when creating the runtime.",
            workflowID: id)
    }

    /// Stores the start (unless the id exists) and hands the workflow to `run()`; returns
    /// whether it was created. `link` makes it a child (``HistoryEvent/Kind/startedAsChild(parent:key:)``).
    func create(type: String, id: String, input: [UInt8], link: ParentLink? = nil, timeout: Duration? = nil, queue: QueueEntry? = nil) async throws -> Bool {
        if let timeout, timeout <= .zero { throw ContinuumError(.invalidArgument, "A workflow's timeout must be positive; got \(timeout).", workflowID: id) }
        return try await withOptionalSpan(tracer, "start \(type)", ofKind: .producer) { span in
            // Made and handled in synchronous functions: this frame only holds the request.
            var request = createRequest(type: type, id: id, input: input, span: span)
            if link != nil || timeout != nil || queue != nil { Self.addStartEvents(to: &request, link: link, timeout: timeout, queue: queue) }
            // Through the store's `async` `create`, not submitted here as appends are: that saved
            // two executor checks per start and grew this frame from 1,088 to 1,568 bytes.
            return try created(try await store.create(request), request, span: span)
        }
    }

    /// The events a start records after `workflowStarted`: the child's link, the deadline.
    @inline(never)
    private static func addStartEvents(to request: inout CreateRequest, link: ParentLink?, timeout: Duration?, queue: QueueEntry?) {
        let now = request.started.timestamp
        if let link {
            request.history.append(HistoryEvent(sequence: 1, timestamp: now, kind: .startedAsChild(parent: link.id, key: link.key)))
        }
        if let timeout {
            let due = now.adding(timeout)
            request.history.append(HistoryEvent(sequence: UInt32(request.history.count + 1), timestamp: now, kind: .deadlineSet(due: due)))
            request.timers.append(.add(due))
        }
        if let queue {
            request.history.append(HistoryEvent(sequence: UInt32(request.history.count + 1), timestamp: now, kind: .enqueued(queue)))
        }
    }

    @inline(never)
    private func createRequest(type: String, id: String, input: [UInt8], span: (any Span)?) -> CreateRequest {
        span?.attributes[TraceAttribute.workflowID] = id
        span?.attributes[TraceAttribute.workflowType] = type
        var traceContext: [String: String] = [:]
        if let tracer, let span { tracer.inject(span.context, into: &traceContext, using: TraceCarrier()) }
        let started = HistoryEvent(
            sequence: 0, timestamp: configuration.clock.now(), kind: .workflowStarted(type: type, input: input, traceContext: traceContext))
        return CreateRequest(id: id, type: type, started: started, owner: configuration.owner)
    }

    /// Hands a new workflow to a driver; for one that existed, checks it is of the same type.
    @inline(never)
    private func created(_ outcome: CreateOutcome, _ request: CreateRequest, span: (any Span)?) throws -> Bool {
        let (id, type, started) = (request.id, request.type, request.started)
        switch outcome {
        case .created(let claim):
            feed.publish(WorkflowChange(workflowID: id, events: [started], status: .running))
            span?.attributes[TraceAttribute.created] = true
            logger.debug("Workflow started", metadata: [LogKey.workflowID: "\(id)", LogKey.workflowType: "\(type)"])
            metrics.started.increment()
            let summary = WorkflowSummary(id: id, type: type, status: .running, createdAt: started.timestamp, updatedAt: started.timestamp)
            let events = request.history.isEmpty ? [started] : [started] + request.history
            state.launchCreated(id, claim: claim, created: StoredWorkflow(stream: claim.stream, summary: summary, events: events))
            return true
        case .existing(_, let summary):
            span?.attributes[TraceAttribute.created] = false
            guard summary.type == type else {
                throw ContinuumError(
                    .workflowIDConflict,
                    "Workflow id '\(id)' belongs to a workflow of type '\(summary.type)', not '\(type)'; choose another id.",
                    workflowID: id)
            }
            if summary.status == .running { state.launch(Launch(id: id)) }
            return false
        }
    }

    /// Refuses an id the store cannot hold, or one with two spellings.
    func validate(id: String) throws(ContinuumError) {
        let limit = store.limits.maxWorkflowIDBytes
        guard !id.isEmpty, id.utf8.count <= limit else {
            throw ContinuumError(.invalidArgument, "A workflow id must be 1 to \(limit) bytes of UTF-8; got \(id.utf8.count) bytes.")
        }
        // Swift compares strings by canonical equivalence, the store by bytes: only one
        // spelling of each id (NFC) is accepted, so the two always agree.
        // ASCII is NFC already: most ids skip normalizing, which costs a Foundation round trip.
        guard id.utf8.allSatisfy({ $0 < 0x80 }) || id.utf8.elementsEqual(id.precomposedStringWithCanonicalMapping.utf8) else {
            throw ContinuumError(
                .invalidArgument, "A workflow id must be in Unicode normalization form C (NFC); normalize '\(id)' before using it.")
        }
    }

    /// Refuses an event name or dedup key the store cannot hold.
    func validate(name: String, what: String) throws(ContinuumError) {
        let limit = store.limits.maxNameBytes
        guard !name.isEmpty, name.utf8.count <= limit else {
            throw ContinuumError(.invalidArgument, "\(what) must be 1 to \(limit) bytes of UTF-8; got \(name.utf8.count) bytes.")
        }
    }
}

/// What ``WorkflowRuntime/start(type:id:json:timeout:queue:)`` did.
public struct StartReceipt: Sendable, Hashable, Codable {
    /// The workflow's id.
    public var id: String
    /// Its registered type name.
    public var type: String
    /// Whether this call created it (`false`: it existed, started with the same input).
    public var created: Bool
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
