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

    /// How one run of a workflow body in this process ended.
    enum RunEnd {
        case finished(WorkflowStatus)
        /// Parked in the store while it waits, with the deadlines it left.
        case parked([Int64])
        case suspended
        /// Stopped by shutdown; it resumes on the next run.
        case stopped
        /// Another owner claimed it; this process left it.
        case ownershipLost

        var name: String {
            switch self {
            case .finished(let status): "\(status)"
            case .parked: "parked"
            case .suspended: "suspended"
            case .stopped: "stopped"
            case .ownershipLost: "ownershipLost"
            }
        }
    }

    /// Drives the launched workflow until its body finishes, parks, suspends or is stopped.
    func drive(_ launch: Launch) async {
        let id = launch.id
        // Claimed once; the workflow is then loaded fresh, so a second launch finds what the first did.
        guard state.withLock({ $0.claimDrive(id) }) else { return }
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

        let claim: Claim
        let stored: StoredWorkflow
        var history = WorkflowState()
        do {
            if let held = launch.claim {
                claim = held
            } else {
                // Nil: it finished, or another owner holds it.
                guard let claimed = try await store.claim(id, owner: owner) else { return }
                claim = claimed
            }
            guard let loaded = try await store.load(id: id) else { return }
            stored = loaded
            for event in stored.events { try history.apply(event) }
        } catch {
            suspend(id, ContinuumError.wrap(error), logger: logger)
            return
        }
        if let outcome = history.outcome {
            state.resolve(id, with: Self.result(of: outcome, id: id))
            return
        }
        logger[metadataKey: WorkflowRuntime.LogKey.workflowType] = "\(stored.summary.type)"
        guard let workflow = workflows[stored.summary.type] else {
            suspend(
                id,
                ContinuumError(
                    .unknownWorkflowType,
                    "Workflow '\(id)' has type '\(stored.summary.type)', which this runtime does not register. "
                        + "It is suspended; register the type and restart the runtime to resume it.",
                    workflowID: id),
                logger: logger)
            return
        }

        let instance = WorkflowInstance(
            id: id, stream: stored.stream, mode: .live(store: store, claim: claim), timers: timers, metrics: metrics, tracer: tracer,
            logger: logger, maxPayloadSize: maxPayloadSize, parking: parking, feed: feed, state: history)
        for sender in state.withLock({ $0.loaded(id, instance) }) { sender.resume(returning: instance) }
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

    /// Runs the body of a loaded workflow and commits how it ended.
    private func run(_ workflow: AnyWorkflow, in instance: WorkflowInstance, input: [UInt8], logger: Logger) async -> RunEnd {
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
                suspend(id, suspension, logger: logger)
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
            suspend(id, error, logger: logger)
            return .suspended
        }
    }

    /// How the run ended when the instance left memory while its body ran.
    private func departed(_ instance: WorkflowInstance, logger: Logger) async -> RunEnd? {
        switch await instance.departure {
        case .parked?:
            logger.debug("Workflow parked while it waits")
            return .parked(await instance.parkedDues)
        case .ownershipLost?, .replayEnded?:
            return .ownershipLost
        case nil:
            return nil
        }
    }

    private func suspend(_ id: String, _ error: ContinuumError, logger: Logger) {
        logger.error("Workflow suspended: \(error.message)", metadata: [WorkflowRuntime.LogKey.errorCode: "\(error.code)"])
        state.suspend(id, error)
        feed.publish(WorkflowChange(workflowID: id, status: .suspended))
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
