import Logging
import Tracing

/// Drives one workflow at a time for the runtime: claims it, loads and folds its history, runs
/// its body on a ``WorkflowInstance`` (completed steps return their recorded results) and
/// commits how the body ended.
struct WorkflowDriver: Sendable {
    let store: any EventStore
    let workflows: [String: AnyWorkflow]
    let state: RuntimeState
    let timers: TimerService
    let metrics: RuntimeMetrics
    let tracer: (any Tracer)?
    let logger: Logger
    let owner: OwnerID
    let maxPayloadSize: Int
    /// Where instances report that they only wait; `nil` when the runtime parks nothing.
    let parking: ParkingQueue?
    /// Where committed changes are reported.
    let feed: ChangeFeed
    let codeChange: WorkflowRuntime.CodeChangePolicy
    let build: String?
    /// Batch-taken claims the lease keeper renews until their drivers end.
    let pendingClaims: PendingClaims
    /// The runtime, which workflows start their children through.
    let runtime: WorkflowRuntime
    /// How many events a workflow's history grows by before its next snapshot; `nil`: never.
    let snapshotEvery: Int?
    /// What the instances it makes share.
    let environment: WorkflowInstance.Environment

    /// How one run of a workflow body in this process ended.
    enum RunEnd {
        case finished(WorkflowStatus)
        /// Parked in the store while it waits, with the deadlines it left.
        case parked([Int64])
        case suspended
        /// Stopped by shutdown; it resumes on the next run.
        case stopped
        /// Another owner claimed it, or someone took it over; this run left it.
        case left
        /// A recorded step's code changed: reset to it and run again (with the reason).
        case rerun(StepKey, String)
        /// The body continued as new: run it again from the new run, under the same claim.
        case continued
        /// Dormant in memory while it waits, with the deadlines its timers must wake it at.
        case dormant(WorkflowInstance, dues: [Int64], sleeps: [Int64])

        var name: String {
            switch self {
            case .finished(let status): "\(status)"
            case .parked: "parked"
            case .suspended: "suspended"
            case .stopped: "stopped"
            case .left: "left"
            case .rerun: "rerun"
            case .continued: "continued"
            case .dormant: "dormant"
            }
        }
    }

    /// Drives the launched workflow until its body finishes, parks, suspends or is stopped.
    func drive(_ launch: Launch) async {
        let id = launch.id
        defer { if launch.pending { pendingClaims.remove(id) } }
        // Claimed once; the workflow is then loaded fresh, so a second launch finds what the first did.
        guard launch.reserved || state.withLock({ $0.claimDrive(id) }) else { return }
        // Only the driver that runs it ends a recovered workflow's turn, not a second launch.
        defer { runtime.pacer.end(id) }
        /// The deadlines a parked or dormant workflow left with.
        var parkedDues: [Int64] = []
        /// The instance, when it is left dormant in memory, and the deadlines of the timed waits
        /// its body rested in.
        var rested: WorkflowInstance?
        var restedSleeps: [Int64] = []
        defer {
            if let rested {
                let (senders, relaunch) = state.withLock { $0.driveRested(id, rested, sleeps: restedSleeps) }
                for sender in senders { sender.resume(returning: nil) }
                // Something reached it while this driver ended: it runs again at once.
                relaunch?.yield(Launch(id: id, wake: true, reserved: true))
            } else {
                // The instance, when the slot held its last reference, goes after the lock.
                let (senders, _) = state.withLock { $0.endDrive(id) }
                for sender in senders { sender.resume(returning: nil) }
            }
            // Only now: a wake-up that fired while the body was still unwinding found the
            // workflow in memory and was dropped, and the loader has passed it.
            for due in parkedDues { timers.wakeIfLoaded(id, at: due) }
        }
        var logger = self.logger
        logger[metadataKey: WorkflowRuntime.LogKey.workflowID] = .string(id)

        // A dormant instance is woken under the claim it kept, from the state it kept, also by a
        // launch that brings a claim (recovery's, on a shared store): loading a second instance
        // beside it would leave it appending under the same claim. (A workflow this runtime just
        // created has none: its slot was reserved when it was created.)
        var resting = launch.created == nil ? state.withLock({ $0.dormant(id) }) : nil
        var held = resting?.claim ?? launch.claim
        var created = launch.created
        while true {
            let claim: Claim
            do {
                if let held {
                    claim = held
                } else {
                    // Nil: no such workflow, or another owner holds it.
                    guard let claimed = try await store.claim(id, owner: owner) else { return }
                    claim = claimed
                }
            } catch {
                suspendInMemory(id, error, logger: logger)
                return
            }
            held = nil
            let end = await run(id, claim: claim, created: created, resting: resting, logger: &logger)
            created = nil
            resting = nil
            switch end {
            case .parked(let dues):
                parkedDues = dues
                return
            case .dormant(let instance, let dues, let sleeps):
                (rested, parkedDues, restedSleeps) = (instance, dues, sleeps)
                return
            case .rerun(let key, let reason):
                // Reset to the changed step under the same claim, then run again from there.
                guard await resetForRerun(id, claim: claim, to: key, reason: reason, logger: logger) else { return }
                held = claim
            case .continued:
                held = claim
            default:
                return
            }
        }
    }

    /// Loads the workflow under `claim` (unless it was just `created`) and runs it once.
    @inline(never)
    private func run(_ id: String, claim: Claim, created: CreatedHistory?, resting: WorkflowInstance?, logger: inout Logger) async -> RunEnd {
        // Read, folded and handed to the instance in a call of its own, over before the body
        // starts: the history, the instance's state and their temporaries never live in this
        // frame, which lives as long as the body (every waiting workflow holds one).
        let result =
            if let resting { await awaken(resting, logger: &logger) } else { await prepare(id, claim: claim, created: created, logger: &logger) }
        guard case .ready(let loaded) = result else { return await notRun(result, id: id, claim: claim, logger: logger) }
        for sender in state.withLock({ $0.loaded(id, loaded.instance) }) { sender.resume(returning: loaded.instance) }
        let logger = logger
        // A workflow on a queue runs its body only while it holds one of the queue's slots.
        var permit: QueueGate.Permit?
        if let entry = loaded.queue {
            // Waiting for the queue is not starting: recovery may start the next.
            runtime.pacer.end(id)
            do {
                permit = try await slot(on: entry, since: loaded.queuedAt, for: loaded.instance)
            } catch let error as ContinuumError where error.code == .ownershipLost {
                return .left  // a shared queue found the claim taken while the workflow waited
            } catch {
                return .stopped  // the runtime is stopping
            }
        }
        defer { runtime.queueGate.release(permit) }
        return await run(loaded, id: id, logger: logger)
    }

    /// Runs the body of a loaded workflow, in its span when tracing is on.
    @inline(never)
    private func run(_ loaded: Loaded, id: String, logger: Logger) async -> RunEnd {
        // Without a tracer the body is called directly: no span's frames under every waiting body.
        guard let tracer else { return await body(loaded.workflow, in: loaded.instance, input: loaded.input, logger: logger) }
        return await traced(loaded, id: id, tracer: tracer, logger: logger)
    }

    @inline(never)
    private func traced(_ loaded: Loaded, id: String, tracer: any Tracer, logger: Logger) async -> RunEnd {
        await withOptionalSpan(tracer, "workflow \(loaded.type)", context: loaded.parent, ofKind: .consumer) { span in
            span?.attributes[TraceAttribute.workflowID] = id
            span?.attributes[TraceAttribute.workflowType] = loaded.type
            span?.attributes[TraceAttribute.replayedEvents] = loaded.replayedEvents
            let end = await body(loaded.workflow, in: loaded.instance, input: loaded.input, logger: logger)
            span?.attributes[TraceAttribute.runOutcome] = end.name
            switch end {
            case .finished(.failed), .suspended: span?.setStatus(SpanStatus(code: .error))
            default: break
            }
            return end
        }
    }

    /// Reads the workflow's history (unless it was just `created`), folds it, and makes its instance.
    @inline(never)
    private func prepare(_ id: String, claim: Claim, created: CreatedHistory?, logger: inout Logger) async -> LoadResult {
        let stored: StoredWorkflow
        var folded: WorkflowState?
        do {
            if let created = created?.take() {
                stored = created
            } else {
                guard let loaded = try await store.loadForWake(id: id, snapshots: snapshotEvery != nil, logger: logger) else { return .gone }
                (stored, folded) = loaded
            }
        } catch {
            return .damaged(error)
        }
        // Folded in a synchronous step: the fold's temporaries never live in an async frame.
        return load(stored, folded: folded, id: id, claim: claim, logger: &logger)
    }

    /// Wakes a dormant instance: its body runs again from the state it kept.
    @inline(never)
    private func awaken(_ instance: WorkflowInstance, logger: inout Logger) async -> LoadResult {
        guard let awake = await instance.awaken(), let workflow = workflows[awake.type] else { return .gone }
        logger[metadataKey: WorkflowRuntime.LogKey.workflowType] = .string(awake.type)
        var parent = InstrumentationContext.topLevel
        tracer?.extract(awake.traceContext, into: &parent, using: TraceCarrier())
        return .ready(
            Loaded(
                instance: instance, workflow: workflow, type: awake.type, input: awake.input, replayedEvents: awake.events, parent: parent,
                queue: awake.queue, queuedAt: awake.queuedAt))
    }

    /// A workflow ready to run: its instance, holding its folded history, and what its run needs.
    /// A class, so that the frames that live as long as the body hold a reference, not a copy.
    private final class Loaded {
        let instance: WorkflowInstance
        let workflow: AnyWorkflow
        let type: String
        let input: [UInt8]
        let replayedEvents: Int
        let parent: InstrumentationContext
        /// The queue whose slot the body needs, if any, and when the workflow was put on it.
        let queue: QueueEntry?
        let queuedAt: Int64

        init(
            instance: WorkflowInstance, workflow: AnyWorkflow, type: String, input: [UInt8], replayedEvents: Int,
            parent: InstrumentationContext, queue: QueueEntry?, queuedAt: Int64
        ) {
            self.instance = instance
            self.workflow = workflow
            self.type = type
            self.input = input
            self.replayedEvents = replayedEvents
            self.parent = parent
            self.queue = queue
            self.queuedAt = queuedAt
        }
    }

    /// What loading a stored workflow came to (indirect: a reference in the frame that runs the body).
    private indirect enum LoadResult {
        case ready(Loaded)
        /// History holds its outcome (its waiters were answered).
        case finished(WorkflowStatus)
        /// There is no such workflow any more.
        case gone
        /// It is suspended and waits for an operator.
        case waitsForOperator
        /// Its history cannot be read.
        case damaged(ContinuumError)
        /// This runtime does not register its type; `sequence` is the next event's.
        case unknownType(ContinuumError, sequence: UInt32)
    }

    /// Ends a run whose workflow was loaded but is not to run.
    @inline(never)
    private func notRun(_ result: LoadResult, id: String, claim: Claim, logger: Logger) async -> RunEnd {
        switch result {
        case .ready:
            preconditionFailure("a ready workflow runs")
        case .gone:
            return .left
        case .finished(let status):
            try? await store.release(claim, id: id)
            return .finished(status)
        case .waitsForOperator:
            // Suspended workflows wait for someone to resume, reset or cancel them.
            try? await store.release(claim, id: id)
            return .left
        case .damaged(let error):
            await suspendDamaged(id, claim: claim, error, logger: logger)
            return .suspended
        case .unknownType(let error, let sequence):
            await suspendDurably(
                id, claim: claim, sequence: sequence, SuspensionRecord(code: error.code.name, message: error.message, build: build), error,
                logger: logger)
            return .suspended
        }
    }

    /// Folds `stored`'s history and, when the workflow is to run, makes its instance.
    @inline(never)
    private func load(_ stored: StoredWorkflow, folded: WorkflowState?, id: String, claim: Claim, logger: inout Logger) -> LoadResult {
        let history: WorkflowState
        do {
            history = try folded ?? WorkflowState(replaying: stored.events)
        } catch {
            return .damaged(ContinuumError.wrap(error))
        }
        if let outcome = history.outcome {
            state.resolve(id, with: Self.result(of: outcome, id: id))
            return .finished(stored.summary.status)
        }
        if stored.summary.status == .suspended { return .waitsForOperator }
        let type = stored.summary.type
        logger[metadataKey: WorkflowRuntime.LogKey.workflowType] = .string(type)
        guard let workflow = workflows[type] else {
            let error = ContinuumError(
                .unknownWorkflowType,
                "Workflow '\(id)' has type '\(type)', which this runtime does not register. Register the type and resume the workflow, or cancel it.",
                workflowID: id)
            return .unknownType(error, sequence: history.nextSequence)
        }
        var parent = InstrumentationContext.topLevel
        tracer?.extract(history.traceContext, into: &parent, using: TraceCarrier())
        let input = history.input
        let (queue, queuedAt) = (history.queue, history.queuedAt)
        // The history's last use: it moves into the instance.
        let instance = WorkflowInstance(
            id: id, stream: stored.stream, mode: .live(store: store, claim: claim), environment: environment, logger: logger, state: consume history,
            snapshotThrough: stored.snapshot?.through ?? 0)
        return .ready(
            Loaded(
                instance: instance, workflow: workflow, type: type, input: input, replayedEvents: stored.events.count, parent: parent,
                queue: queue, queuedAt: queuedAt))
    }

    /// Runs the body of a loaded workflow and commits how it ended.
    private func body(_ workflow: AnyWorkflow, in instance: WorkflowInstance, input: [UInt8], logger: Logger) async -> RunEnd {
        // Only the call stays in this frame, which lives as long as the body runs; how the run
        // ended is worked out in a frame of its own.
        let ended = await execute(workflow, in: instance, input: input)
        return await ending(instance, workflow, ended, logger: logger)
    }

    /// Runs the body, within its deadline when it has one.
    @inline(never)
    private func execute(_ workflow: AnyWorkflow, in instance: WorkflowInstance, input: [UInt8]) async -> Result<[UInt8], any Error> {
        if let deadline = instance.deadline { return await run(workflow, in: instance, input: input, until: deadline) }
        do {
            return .success(try await workflow.execute(WorkflowContext(instance: instance), input))
        } catch {
            return .failure(error)
        }
    }

    /// Commits how the body ended: a new run, or the workflow's end.
    @inline(never)
    private func ending(_ instance: WorkflowInstance, _ workflow: AnyWorkflow, _ ended: Result<[UInt8], any Error>, logger: Logger) async -> RunEnd {
        if case .failure(let error) = ended, let next = error as? ContinueAsNew, await !instance.isCancellationRequested {
            return await continueAsNew(instance, workflow, next, logger: logger)
        }
        return await finish(instance, ended, logger: logger)
    }

    /// Waits for a slot of the workflow's queue, recording the workflow's deadline if it passes
    /// meanwhile: the workflow is timed out on time, and its body (compensation included) still
    /// runs only once it holds a slot, so a queue's limit holds for timed-out work too.
    @inline(never)
    private func slot(on entry: QueueEntry, since: Int64, for instance: WorkflowInstance) async throws -> QueueGate.Permit? {
        let gate = runtime.queueGate
        let claim = instance.claim
        guard let deadline = instance.deadline else { return try await gate.acquire(entry, since: since, claim: claim) }
        let timers = self.timers
        return try await withThrowingTaskGroup(of: QueueGate.Permit??.self) { group in
            group.addTask { .some(try await gate.acquire(entry, since: since, claim: claim)) }
            group.addTask {
                let timer = timers.arm(until: deadline)
                _ = try await timers.wait(for: timer)
                return .none
            }
            defer { group.cancelAll() }
            let first = try await group.next()
            if case .some(.some(let permit))? = first { return permit }
            // The deadline came first: it is recorded now, and the slot is still waited for.
            await instance.passDeadline()
            while let next = try await group.next() {
                if case .some(let permit) = next { return permit }
            }
            return nil
        }
    }

    /// Runs the body beside a timer for the workflow's deadline, which stops it (as a
    /// cancellation does) if it passes first.
    @inline(never)
    private func run(_ workflow: AnyWorkflow, in instance: WorkflowInstance, input: [UInt8], until deadline: Int64) async -> Result<[UInt8], any Error> {
        let timers = self.timers
        return await withTaskGroup(of: Void.self) { group in
            group.addTask {
                let timer = timers.arm(until: deadline)
                guard (try? await timers.wait(for: timer)) != nil else { return }  // the body ended first
                await instance.passDeadline()
            }
            defer { group.cancelAll() }
            do {
                return .success(try await workflow.execute(WorkflowContext(instance: instance), input))
            } catch {
                return .failure(error)
            }
        }
    }

    /// Commits how the body ended.
    @inline(never)
    private func finish(_ instance: WorkflowInstance, _ ended: Result<[UInt8], any Error>, logger: Logger) async -> RunEnd {
        // Every workflow passes here once, so what is rare (a failed body, a failed commit) and
        // what is synchronous (the checks, the log lines) are functions of their own: their
        // temporaries are not part of this frame, which fits the task allocator's slab.
        let id = instance.id
        let outcome: WorkflowState.Outcome
        switch checkedOutput(ended, id: id) {
        case .success(let output):
            outcome = .completed(output)
        case .failure(let error):
            if let end = await notFinished(instance, logger: logger) { return end }
            outcome = .failed(FailureRecord(error))
        }
        switch await instance.finish(outcome) {
        case .success(let outcome):
            return finished(id, outcome, logger: logger)
        case .failure(let error):
            return await finishFailed(instance, error, logger: logger)
        }
    }

    /// The body's output, checked against the payload limit; or what the body threw.
    @inline(never)
    private func checkedOutput(_ ended: Result<[UInt8], any Error>, id: String) -> Result<[UInt8], any Error> {
        do {
            let output = try ended.get()
            try PayloadCoder.check(output, limit: maxPayloadSize, what: "The output of workflow '\(id)'")
            return .success(output)
        } catch {
            return .failure(error)
        }
    }

    /// How a run whose body threw ends instead of failing the workflow: it departed, it is
    /// suspended, or the runtime is stopping. `nil`: the workflow fails.
    @inline(never)
    private func notFinished(_ instance: WorkflowInstance, logger: Logger) async -> RunEnd? {
        if let end = await departed(instance, logger: logger) { return end }
        if let suspension = await instance.suspension {
            await suspend(instance, suspension, logger: logger)
            return .suspended
        }
        if Task.isCancelled {
            logger.debug("Workflow stopped by shutdown; it resumes on the next run")
            return .stopped
        }
        return nil
    }

    /// Reports a committed end: the log line, the metric, the result's waiters.
    @inline(never)
    private func finished(_ id: String, _ outcome: WorkflowState.Outcome, logger: Logger) -> RunEnd {
        let status: WorkflowStatus
        switch outcome {
        case .completed:
            status = .completed
            logger.debug("Workflow completed", metadata: [WorkflowRuntime.LogKey.status: "completed"])
        case .failed(let failure):
            status = .failed
            logger.info("Workflow failed: \(failure.message)", metadata: [WorkflowRuntime.LogKey.status: "failed"])
        case .cancelled:
            status = .cancelled
            logger.info("Workflow cancelled", metadata: [WorkflowRuntime.LogKey.status: "cancelled"])
        }
        metrics.finished(status)
        state.resolve(id, with: Self.result(of: outcome, id: id))
        return .finished(status)
    }

    /// How a run ends whose end could not be committed.
    @inline(never)
    private func finishFailed(_ instance: WorkflowInstance, _ error: ContinuumError, logger: Logger) async -> RunEnd {
        if Task.isCancelled && error.code == .storeClosed { return .stopped }
        // The body caught the departure and returned.
        if let end = await departed(instance, logger: logger) { return end }
        await suspend(instance, error, logger: logger)
        return .suspended
    }

    /// Records a new run of the body (its input checked first: one that does not decode fails the workflow).
    @inline(never)
    private func continueAsNew(_ instance: WorkflowInstance, _ workflow: AnyWorkflow, _ next: ContinueAsNew, logger: Logger) async -> RunEnd {
        if let end = await departed(instance, logger: logger) { return end }
        let stopped: ContinuumError?
        do {
            try workflow.checkInput(next.input)
            stopped = await instance.continueAsNew(input: next.input)
        } catch {
            return await finish(instance, .failure(error), logger: logger)
        }
        guard let stopped else {
            logger.debug("Workflow continued as new")
            return .continued
        }
        if Task.isCancelled && stopped.code == .storeClosed { return .stopped }
        if let end = await departed(instance, logger: logger) { return end }
        await suspend(instance, stopped, logger: logger)
        return .suspended
    }

    /// How the run ended when the instance left memory while its body ran.
    private func departed(_ instance: WorkflowInstance, logger: Logger) async -> RunEnd? {
        switch await instance.departure {
        case .parked?:
            logger.debug("Workflow parked while it waits")
            return .parked(await instance.parkedDues)
        case .dormant?:
            // Suspended as it went to rest: the suspension is recorded, as for a running body.
            if await instance.keepIfSuspended() { return nil }
            let (dues, sleeps) = await instance.rested()
            return .dormant(instance, dues: dues, sleeps: sleeps)
        case .rerun(let key, let reason)?:
            return .rerun(key, reason)
        case .ownershipLost?, .replayEnded?, .superseded?, .continued?:
            return .left
        case nil:
            return nil
        }
    }

    // MARK: Suspending

    /// Suspends the workflow the instance ran: durably, with a `workflowSuspended` event, unless
    /// the store itself failed (a full store is retried; a lost claim is another owner's business).
    private func suspend(_ instance: WorkflowInstance, _ error: ContinuumError, logger: Logger) async {
        guard Self.isDurable(error) else {
            if error.code != .ownershipLost { suspendInMemory(instance.id, error, logger: logger) }
            return
        }
        logger.error("Workflow suspended: \(error.message)", metadata: [WorkflowRuntime.LogKey.errorCode: "\(error.code)"])
        do {
            try await instance.recordSuspension(error)
        } catch {
            suspendInMemory(instance.id, error, logger: logger)
            return
        }
        suspended(instance.id, error)
    }

    /// Records a suspension the driver found before any instance ran (an unknown type).
    private func suspendDurably(
        _ id: String, claim: Claim, sequence: UInt32, _ record: SuspensionRecord, _ error: ContinuumError, logger: Logger
    ) async {
        logger.error("Workflow suspended: \(error.message)", metadata: [WorkflowRuntime.LogKey.errorCode: "\(error.code)"])
        let event = HistoryEvent(sequence: sequence, timestamp: timers.clock.now(), kind: .workflowSuspended(record))
        do {
            try await store.append(AppendRequest(fence: claim, id: id, events: [event], status: .suspended, release: true))
        } catch {
            suspendInMemory(id, error, logger: logger)
            return
        }
        feed.publish(WorkflowChange(workflowID: id, events: [event], status: .suspended))
        suspended(id, error)
    }

    /// A history that cannot be read cannot take an event: its status alone says suspended, and
    /// the reason is logged and kept in memory.
    private func suspendDamaged(_ id: String, claim: Claim, _ error: ContinuumError, logger: Logger) async {
        guard error.code == .corruptedData else {
            suspendInMemory(id, error, logger: logger)
            return
        }
        logger.error("Workflow suspended: \(error.message)", metadata: [WorkflowRuntime.LogKey.errorCode: "\(error.code)"])
        do {
            try await store.append(AppendRequest(fence: claim, id: id, events: [], status: .suspended, release: true))
            feed.publish(WorkflowChange(workflowID: id, status: .suspended))
        } catch {
            // Not marked: the next run tries again.
        }
        state.suspend(id, error)
    }

    /// Stops the workflow in this process only (a full store, a failed read): retried later.
    private func suspendInMemory(_ id: String, _ error: ContinuumError, logger: Logger) {
        logger.error("Workflow stopped: \(error.message)", metadata: [WorkflowRuntime.LogKey.errorCode: "\(error.code)"])
        state.suspend(id, error)
        feed.publish(WorkflowChange(workflowID: id, status: .suspended))
    }

    private func suspended(_ id: String, _ error: ContinuumError) {
        metrics.suspended.increment()
        state.resolve(id, with: .failure(error))
    }

    /// Whether a suspension is recorded in history (the code, its type, or its data) rather
    /// than kept in memory (the store failed).
    static func isDurable(_ error: ContinuumError) -> Bool {
        switch error.code {
        case .storageFull, .storeClosed, .storageFailure, .storeUnavailable, .ownershipLost, .notRunning: false
        default: true
        }
    }

    // MARK: Rerunning a changed step

    /// Resets the workflow to its changed step; `false` (and stopped in memory) when it could not.
    @inline(never)
    private func resetForRerun(_ id: String, claim: Claim, to key: StepKey, reason: String, logger: Logger) async -> Bool {
        do {
            try await resetForRerun(id, claim: claim, to: key, reason: reason)
            return true
        } catch {
            logger.error("Could not reset the workflow to its changed step: \(error.message)")
            suspendInMemory(id, error, logger: logger)
            return false
        }
    }

    private func resetForRerun(_ id: String, claim: Claim, to key: StepKey, reason: String) async throws(ContinuumError) {
        guard let stored = try await store.load(id: id) else { throw ContinuumError(.unknownWorkflow, "Workflow '\(id)' vanished.") }
        let target = try HistoryEdits.target(of: key, in: stored.events)
        let reset = try HistoryEdits.reset(
            stored.events, to: target, action: ActionRecord(by: "continuum (codeChange: rerun)", reason: reason), timestamp: timers.clock.now())
        try await store.append(AppendRequest(fence: claim, id: id, events: [reset.event], status: reset.status, timers: reset.timers))
        feed.publish(WorkflowChange(workflowID: id, events: [reset.event]))
        logger.notice(
            "Workflow reset to its changed step",
            metadata: [WorkflowRuntime.LogKey.workflowID: "\(id)", WorkflowRuntime.LogKey.stepName: "\(key.name)"])
    }

    /// What a result waiter gets for a finished workflow.
    static func result(of outcome: WorkflowState.Outcome, id: String) -> Result<[UInt8], ContinuumError> {
        switch outcome {
        case .completed(let output):
            return .success(output)
        case .failed(let failure) where failure.type == "ContinuumError.\(ContinuumError.Code.timedOut)":
            return .failure(ContinuumError(.timedOut, "Workflow '\(id)' timed out: \(failure.message)", workflowID: id, cause: failure))
        case .failed(let failure):
            return .failure(
                ContinuumError(.workflowFailed, "Workflow '\(id)' failed: \(failure.type): \(failure.message)", workflowID: id))
        case .cancelled(let reason):
            return .failure(ContinuumError(.cancelled, "Workflow '\(id)' was cancelled: \(reason)", workflowID: id))
        }
    }
}
