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

        var name: String {
            switch self {
            case .finished(let status): "\(status)"
            case .parked: "parked"
            case .suspended: "suspended"
            case .stopped: "stopped"
            case .left: "left"
            case .rerun: "rerun"
            }
        }
    }

    /// Drives the launched workflow until its body finishes, parks, suspends or is stopped.
    func drive(_ launch: Launch) async {
        let id = launch.id
        // Claimed once; the workflow is then loaded fresh, so a second launch finds what the first did.
        guard launch.reserved || state.withLock({ $0.claimDrive(id) }) else { return }
        /// The deadlines a parked workflow left with.
        var parkedDues: [Int64] = []
        defer {
            for sender in state.withLock({ $0.driveEnded(id) }) { sender.resume(returning: nil) }
            // Only now: a wake-up that fired while the body was still unwinding found the
            // workflow in memory and was dropped, and the loader has passed it.
            for due in parkedDues { timers.wakeIfLoaded(id, at: due) }
        }
        var logger = self.logger
        logger[metadataKey: WorkflowRuntime.LogKey.workflowID] = "\(id)"

        var held = launch.claim
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
            let end = await run(id, claim: claim, logger: &logger)
            switch end {
            case .parked(let dues):
                parkedDues = dues
                return
            case .rerun(let key, let reason):
                // Reset to the changed step under the same claim, then run again from there.
                do {
                    try await resetForRerun(id, claim: claim, to: key, reason: reason)
                    held = claim
                } catch {
                    logger.error("Could not reset the workflow to its changed step: \(error.message)")
                    suspendInMemory(id, error, logger: logger)
                    return
                }
            default:
                return
            }
        }
    }

    /// Loads the workflow under `claim` and runs it once.
    private func run(_ id: String, claim: Claim, logger: inout Logger) async -> RunEnd {
        let stored: StoredWorkflow
        let history: WorkflowState
        do {
            guard let loaded = try await store.load(id: id) else { return .left }
            stored = loaded
        } catch {
            await suspendDamaged(id, claim: claim, error, logger: logger)
            return .suspended
        }
        do {
            history = try WorkflowState(replaying: stored.events)
        } catch {
            await suspendDamaged(id, claim: claim, error, logger: logger)
            return .suspended
        }
        if let outcome = history.outcome {
            try? await store.release(claim, id: id)
            state.resolve(id, with: Self.result(of: outcome, id: id))
            return .finished(stored.summary.status)
        }
        if stored.summary.status == .suspended {
            // Suspended workflows wait for someone to resume, reset or cancel them.
            try? await store.release(claim, id: id)
            return .left
        }
        logger[metadataKey: WorkflowRuntime.LogKey.workflowType] = "\(stored.summary.type)"
        guard let workflow = workflows[stored.summary.type] else {
            let error = ContinuumError(
                .unknownWorkflowType,
                "Workflow '\(id)' has type '\(stored.summary.type)', which this runtime does not register. "
                    + "Register the type and resume the workflow, or cancel it.",
                workflowID: id)
            await suspendDurably(
                id, claim: claim, sequence: history.nextSequence, SuspensionRecord(code: error.code.name, message: error.message, build: build),
                error, logger: logger)
            return .suspended
        }

        let instance = WorkflowInstance(
            id: id, stream: stored.stream, mode: .live(store: store, claim: claim), timers: timers, metrics: metrics, tracer: tracer,
            logger: logger, maxPayloadSize: maxPayloadSize, parking: parking, feed: feed, codeChange: codeChange, build: build,
            state: history)
        for sender in state.withLock({ $0.loaded(id, instance) }) { sender.resume(returning: instance) }
        var parent = InstrumentationContext.topLevel
        tracer?.extract(history.traceContext, into: &parent, using: TraceCarrier())
        let logger = logger
        return await withOptionalSpan(tracer, "workflow \(stored.summary.type)", context: parent, ofKind: .consumer) { span in
            span?.attributes[TraceAttribute.workflowID] = id
            span?.attributes[TraceAttribute.workflowType] = stored.summary.type
            span?.attributes[TraceAttribute.replayedEvents] = stored.events.count
            let end = await body(workflow, in: instance, input: history.input, logger: logger)
            span?.attributes[TraceAttribute.runOutcome] = end.name
            switch end {
            case .finished(.failed), .suspended: span?.setStatus(SpanStatus(code: .error))
            default: break
            }
            return end
        }
    }

    /// Runs the body of a loaded workflow and commits how it ended.
    private func body(_ workflow: AnyWorkflow, in instance: WorkflowInstance, input: [UInt8], logger: Logger) async -> RunEnd {
        let id = instance.id
        let context = WorkflowContext(instance: instance)
        let outcome: WorkflowState.Outcome
        do {
            let output = try await workflow.execute(context, input)
            try PayloadCoder.check(output, limit: maxPayloadSize, what: "The output of workflow '\(id)'")
            outcome = .completed(output)
        } catch {
            if let end = await departed(instance, logger: logger) { return end }
            if let suspension = await instance.suspension {
                await suspend(instance, suspension, logger: logger)
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
        case .failure(let error):
            if Task.isCancelled && error.code == .storeClosed { return .stopped }
            // The body caught the departure and returned.
            if let end = await departed(instance, logger: logger) { return end }
            await suspend(instance, error, logger: logger)
            return .suspended
        }
    }

    /// How the run ended when the instance left memory while its body ran.
    private func departed(_ instance: WorkflowInstance, logger: Logger) async -> RunEnd? {
        switch await instance.departure {
        case .parked?:
            logger.debug("Workflow parked while it waits")
            return .parked(await instance.parkedDues)
        case .rerun(let key, let reason)?:
            return .rerun(key, reason)
        case .ownershipLost?, .replayEnded?, .superseded?:
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
        case .storageFull, .storeClosed, .storageFailure, .ownershipLost, .notRunning: false
        default: true
        }
    }

    // MARK: Rerunning a changed step

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
        case .failed(let failure):
            return .failure(
                ContinuumError(.workflowFailed, "Workflow '\(id)' failed: \(failure.type): \(failure.message)", workflowID: id))
        case .cancelled(let reason):
            return .failure(ContinuumError(.cancelled, "Workflow '\(id)' was cancelled: \(reason)", workflowID: id))
        }
    }
}
