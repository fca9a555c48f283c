/// The ways out for a workflow whose code changed: resume, reset, fork, and cancelling a
/// suspended workflow. Each is one append (or one create) recorded in history with who asked and
/// why, so a crash in the middle leaves the workflow either as it was or changed, never between.
extension WorkflowRuntime {
    /// Lets a suspended workflow run again with the code deployed now. It replays from the start;
    /// if the code still does not match, it is suspended again with the new difference.
    ///
    /// - Parameters:
    ///   - id: The workflow's id.
    ///   - by: Who asks (recorded in history).
    ///   - reason: Why (recorded in history).
    /// - Returns: The `workflowResumed` event, as appended.
    /// - Throws: ``ContinuumError/Code/notSuspended`` when the workflow is not suspended;
    ///   ``ContinuumError/Code/unknownWorkflow``; a storage error.
    @discardableResult
    public func resume(_ id: String, by: String = "api", reason: String = "resumed") async throws -> HistoryEvent {
        let appended = try await amend(id) { stored, state throws(ContinuumError) in
            guard stored.summary.status == .suspended else {
                throw ContinuumError(
                    .notSuspended, "Workflow '\(id)' is \(stored.summary.status), not suspended; there is nothing to resume.", workflowID: id)
            }
            var state = state
            let event = state.resume(ActionRecord(by: by, reason: reason), timestamp: configuration.clock.now())
            return Amendment(events: [event], status: .running, run: true)
        }
        metrics.suspended.decrement()
        _ = state.withLock { $0.clearSuspension(id) }
        logger.notice("Workflow resumed: \(reason)", metadata: [LogKey.workflowID: "\(id)"])
        return appended[0]
    }

    /// Runs the workflow again from step `step` with the code deployed now: the history before
    /// the step is kept, the rest is superseded (kept readable, never deleted: see
    /// ``history(of:includingSuperseded:)``), and external events received after it are delivered
    /// again. Works on running, suspended and finished workflows.
    ///
    /// Steps that run again after a reset get new idempotency keys
    /// (``StepContext/idempotencyKey`` gains the reset generation), so external APIs see new
    /// requests: the reset is a deliberate re-execution.
    ///
    /// - Parameters:
    ///   - id: The workflow's id.
    ///   - step: The step (or wait) to run again, by name; `occurrence` picks a repeated one.
    ///   - occurrence: Which call of a repeated step (0 for the first).
    ///   - by: Who asks (recorded in history).
    ///   - reason: Why (recorded in history).
    /// - Returns: The `workflowReset` event, as appended (the event it reset to, the generation).
    /// - Throws: ``ContinuumError/Code/invalidArgument`` when history holds no such step.
    @discardableResult
    public func reset(_ id: String, toStep step: String, occurrence: UInt32 = 0, by: String = "api", reason: String = "reset") async throws -> HistoryEvent {
        try await reset(id, by: by, reason: reason) { events throws(ContinuumError) in
            try HistoryEdits.target(of: StepKey(name: step, occurrence: occurrence), in: events)
        }
    }

    /// Resets the workflow to its event `sequence` (everything from it on is superseded); see
    /// ``reset(_:toStep:occurrence:by:reason:)``.
    @discardableResult
    public func reset(_ id: String, toEvent sequence: UInt32, by: String = "api", reason: String = "reset") async throws -> HistoryEvent {
        try await reset(id, by: by, reason: reason) { _ throws(ContinuumError) in sequence }
    }

    private func reset(
        _ id: String, by: String, reason: String, target: @escaping ([HistoryEvent]) throws(ContinuumError) -> UInt32
    ) async throws -> HistoryEvent {
        var wasSuspended = false
        let appended = try await amend(id) { stored, _ throws(ContinuumError) in
            let reset = try HistoryEdits.reset(
                stored.events, to: try target(stored.events), action: ActionRecord(by: by, reason: reason), timestamp: configuration.clock.now())
            wasSuspended = stored.summary.status == .suspended
            return Amendment(events: [reset.event], status: reset.status, timers: reset.timers, run: true)
        }
        if wasSuspended { metrics.suspended.decrement() }
        _ = state.withLock { $0.clearSuspension(id) }
        logger.notice("Workflow reset: \(reason)", metadata: [LogKey.workflowID: "\(id)"])
        return appended[0]
    }

    /// Starts a new workflow `newID` whose history is a copy of workflow `id`'s up to step
    /// `step` (as a reset there would leave it), then runs it with the code deployed now: for
    /// trying new code on a production run without touching it. The copy's first events are
    /// the original's; a `workflowForked` event says where it came from. Its steps run for real,
    /// with the new workflow's own idempotency keys.
    ///
    /// - Throws: ``ContinuumError/Code/workflowIDConflict`` when `newID` exists;
    ///   ``ContinuumError/Code/invalidArgument`` when history holds no such step.
    @discardableResult
    public func fork(
        _ id: String, toStep step: String, occurrence: UInt32 = 0, as newID: String, by: String = "api", reason: String = "fork"
    ) async throws -> StartReceipt {
        try validate(id: newID)
        guard let stored = try await store.load(id: id) else {
            throw ContinuumError(.unknownWorkflow, "No workflow has id '\(id)'.", workflowID: id)
        }
        let now = configuration.clock.now()
        let target = try HistoryEdits.target(of: StepKey(name: step, occurrence: occurrence), in: stored.events)
        let fork = try HistoryEdits.fork(stored.events, at: target, from: id, action: ActionRecord(by: by, reason: reason), timestamp: now)
        var started = fork.events[0]
        started.timestamp = now
        let request = CreateRequest(
            id: newID, type: stored.summary.type, started: started, owner: configuration.owner, history: Array(fork.events.dropFirst()),
            timers: fork.timers)
        switch try await store.create(request) {
        case .created(let claim):
            feed.publish(WorkflowChange(workflowID: newID, events: [started] + request.history, status: .running))
            metrics.started.increment()
            state.launch(Launch(id: newID, claim: claim))
            logger.notice("Workflow forked from '\(id)': \(reason)", metadata: [LogKey.workflowID: "\(newID)"])
            return StartReceipt(id: newID, type: stored.summary.type, created: true)
        case .existing(_, let summary):
            throw ContinuumError(
                .workflowIDConflict, "Workflow id '\(newID)' is taken (a \(summary.type) workflow); fork under a new id.", workflowID: newID)
        }
    }

    /// Ends a suspended workflow cancelled, at once: its code does not match its history, so
    /// the runtime cannot replay it to where compensation would run. To run compensating steps,
    /// resume or reset it with matching code first, then cancel it.
    func cancelSuspended(_ id: String, by: String?, reason: String) async throws {
        let error = ContinuumError(.cancelled, "Workflow '\(id)' was cancelled: \(reason)", workflowID: id)
        // As a workflow that ends does, first tell its parent and cancel its children (both
        // idempotent): its end never passes through a running instance.
        if let stored = try await store.load(id: id), stored.summary.status == .suspended,
            let state = try? WorkflowState(replaying: stored.events)
        {
            let children = state.openChildren.filter { $0.onParentClose == .cancel }
            if state.parent != nil || !children.isEmpty {
                try await settle(FamilySettlement(id: id, outcome: .cancelled(reason: reason), parent: state.parent, children: children))
            }
        }
        try await amend(id) { stored, state throws(ContinuumError) in
            guard stored.summary.status == .suspended else { throw Self.retry }
            var state = state
            // Taken before the cancellation ends the waits, which would leave none to remove.
            let dues = state.pendingDues
            let now = configuration.clock.now()
            let events = state.requestCancellation(reason: reason, by: by, timestamp: now) + [state.endCancelled(reason: reason, timestamp: now)]
            let timers = dues.sorted().map(TimerChange.remove)
            return Amendment(events: events, status: .cancelled, timers: timers, run: false)
        }
        metrics.suspended.decrement()
        metrics.finished(.cancelled)
        state.resolve(id, with: .failure(error))
    }

    /// Buffers an event for a suspended workflow: it is delivered once the workflow runs again.
    func deliverToSuspended(_ name: String, to id: String, json payload: [UInt8], dedupKey: String?) async throws -> EventReceipt {
        var receipt: EventReceipt?
        try await amend(id) { stored, state throws(ContinuumError) in
            guard stored.summary.status == .suspended else { throw Self.retry }
            var state = state
            switch state.receive(name: name, payload: payload, dedupKey: dedupKey, timestamp: configuration.clock.now()) {
            case .failure(let duplicate):
                receipt = EventReceipt(workflowID: id, sequence: duplicate.sequence, duplicate: true)
                return Amendment(events: [], status: nil, run: false)
            case .success(let event):
                receipt = EventReceipt(workflowID: id, sequence: event.sequence, duplicate: false)
                return Amendment(events: [event], status: nil, run: false)
            }
        }
        guard let receipt else { throw ContinuumError(.storageFailure, "The event was not recorded.", workflowID: id) }
        if !receipt.duplicate { metrics.eventsReceived.increment() }
        return receipt
    }

    /// Thrown by an amendment that found the workflow in another state than it expected (it
    /// was resumed meanwhile, say): the caller goes the usual way instead.
    static let retry = ContinuumError(.notRunning, "The workflow changed state; try again.")

    /// What an amendment appends.
    struct Amendment: Sendable {
        var events: [HistoryEvent]
        var status: WorkflowStatus?
        var timers: [TimerChange] = []
        /// Whether the workflow runs once the amendment is committed (else its claim is released).
        var run: Bool
    }

    /// Takes workflow `id` over in this process (stopping a run of it in memory and waiting for
    /// it to unwind), claims it in the store, and appends what `change` computes from its stored
    /// history, in one append. Then either drives it, or releases it.
    @discardableResult
    func amend(
        _ id: String, _ change: (StoredWorkflow, WorkflowState) throws(ContinuumError) -> Amendment
    ) async throws -> [HistoryEvent] {
        try await reserveSlot(id)
        var handedOver = false
        defer {
            if !handedOver { for sender in state.withLock({ $0.driveEnded(id) }) { sender.resume(returning: nil) } }
        }
        guard let claim = try await store.claim(id, owner: configuration.owner) else {
            if try await store.summary(id: id) == nil {
                throw ContinuumError(.unknownWorkflow, "No workflow has id '\(id)'.", workflowID: id)
            }
            throw ContinuumError(
                .ownershipLost, "Workflow '\(id)' is held by another process; ask the process running it, or wait for its lease to run out.",
                workflowID: id)
        }
        guard let stored = try await store.load(id: id) else {
            throw ContinuumError(.unknownWorkflow, "No workflow has id '\(id)'.", workflowID: id)
        }
        let amendment: Amendment
        do {
            amendment = try change(stored, try WorkflowState(replaying: stored.events))
            try await store.append(
                AppendRequest(
                    fence: claim, id: id, events: amendment.events, status: amendment.status, timers: amendment.timers, release: !amendment.run))
        } catch {
            // Refused (a resume of a workflow that is not suspended, a reset to a step not in
            // effect) or not stored: the workflow is as it was. reserveSlot may have stopped a run
            // of it in this process, so one that was running runs on, or it would stay in the
            // store undriven until a restart.
            if stored.summary.status == .running, let launcher = state.withLock({ $0.launcher }) {
                handedOver = true
                launcher.yield(Launch(id: id, claim: claim, reserved: true))
            }
            throw error
        }
        if !amendment.events.isEmpty || amendment.status != nil {
            feed.publish(WorkflowChange(workflowID: id, events: amendment.events, status: amendment.status))
        }
        guard amendment.run, let launcher = state.withLock({ $0.launcher }) else { return amendment.events }
        // The reserved slot and the claim pass to the driver.
        handedOver = true
        launcher.yield(Launch(id: id, claim: claim, reserved: true))
        return amendment.events
    }

    /// Takes the slot of `id` in this process: when a driver holds it, stops its instance and
    /// waits until it is gone.
    private func reserveSlot(_ id: String) async throws {
        while true {
            let (reserved, instance) = state.withLock { machine -> (Bool, WorkflowInstance?) in
                // A dormant instance leaves the slot with it: taken over, it appends nothing more.
                machine.claimDrive(id) ? (true, machine.takeDormant(id)) : (false, machine.instance(id))
            }
            if reserved {
                await instance?.supersede()
                return
            }
            try Task.checkCancellation()
            if let instance {
                await instance.supersede()
                await released(id, instance)
            } else {
                // A driver is loading it: wait until it has loaded it (then stop that) or gone.
                _ = await withCheckedContinuation { (continuation: RuntimeState.Sender) in
                    switch state.withLock({ $0.requestInstance(id, sender: continuation, wakeable: false) }) {
                    case .use(let instance): continuation.resume(returning: instance)
                    case .wait: break
                    case .launch, .reserved, .unavailable: continuation.resume(returning: nil)
                    }
                }
            }
        }
    }
}
