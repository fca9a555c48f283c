import Logging
import Tracing

extension WorkflowRuntime {
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
    ///   the suspension's error for a suspended workflow, ``ContinuumError/Code/notRunning``;
    ///   ``ContinuumError/Code/ownershipLost`` when another process sharing the store runs the
    ///   workflow (send through that process).
    @discardableResult
    public func send<P: Encodable & Sendable>(_ name: String, to id: String, payload: P, dedupKey: String? = nil) async throws -> EventReceipt {
        try validate(name: name, what: "An event name")
        // With a dedup key, a resend must encode byte for byte as the first send did: keys sorted.
        let json = try PayloadCoder.encode(payload, what: "event '\(name)' for workflow '\(id)'", sortedKeys: dedupKey != nil)
        return try await send(name, to: id, json: json, dedupKey: dedupKey)
    }

    /// Sends an event whose payload is already JSON, as an HTTP edge receives it; otherwise
    /// like ``send(_:to:payload:dedupKey:)``.
    ///
    /// - Throws: also ``ContinuumError/Code/dedupKeyConflict`` when `dedupKey` was used before
    ///   for an event with another name or payload (nothing is appended).
    @discardableResult
    public func send(_ name: String, to id: String, json payload: [UInt8], dedupKey: String? = nil) async throws -> EventReceipt {
        try validate(name: name, what: "An event name")
        if name.hasPrefix(ChildRecord.stepPrefix) || name.hasPrefix(UpdateEnvelope.prefix) {
            let reserved = name.hasPrefix(UpdateEnvelope.prefix) ? UpdateEnvelope.prefix : ChildRecord.stepPrefix
            throw ContinuumError(
                .invalidArgument,
                "Event names beginning with '\(reserved)' are reserved for \(reserved == UpdateEnvelope.prefix ? "updates (send them with update(_:_:…))" : "the outcomes of child workflows").",
                workflowID: id)
        }
        if let dedupKey { try validate(name: dedupKey, what: "A dedup key") }
        try PayloadCoder.check(payload, limit: maxPayloadSize, what: "Event '\(name)' for workflow '\(id)'")
        return try await deliverOrRelay(name, to: id, json: payload, dedupKey: dedupKey)
    }

    /// Delivers an event here, or through the inbox when another process runs the workflow.
    func deliverOrRelay(_ name: String, to id: String, json payload: [UInt8], dedupKey: String?) async throws -> EventReceipt {
        try await withOptionalSpan(tracer, "send \(name)", ofKind: .producer) { span in
            span?.attributes[TraceAttribute.workflowID] = id
            span?.attributes[TraceAttribute.eventName] = name
            let receipt: EventReceipt
            do {
                receipt = try await deliver(name, to: id, json: payload, dedupKey: dedupKey)
            } catch let error as ContinuumError where isHeldElsewhere(error) {
                // Another process runs the workflow: hand the event over through its inbox.
                receipt = try await relay(.event(name: name, payload: payload, dedupKey: dedupKey), to: id)
            }
            logger.trace(
                "Event \(receipt.duplicate ? "was a duplicate" : "received")",
                metadata: [LogKey.workflowID: "\(id)", LogKey.eventName: "\(name)"])
            return receipt
        }
    }

    func deliver(_ name: String, to id: String, json payload: [UInt8], dedupKey: String?) async throws -> EventReceipt {
        var receipt: EventReceipt
        // Whether a duplicate's name and payload were compared with the first event's already.
        var compared = false
        do {
            (receipt, compared) = try await deliverHere(name, to: id, json: payload, dedupKey: dedupKey)
        } catch let error as ContinuumError where error.code == .suspended {
            // A suspended workflow keeps its events until it runs again.
            do {
                receipt = try await deliverToSuspended(name, to: id, json: payload, dedupKey: dedupKey)
            } catch let error as ContinuumError where error.code == Self.retry.code && error.message == Self.retry.message {
                return try await deliver(name, to: id, json: payload, dedupKey: dedupKey)
            }
        } catch let error as ContinuumError where error.code == .workflowFinished && dedupKey != nil {
            // A redelivery after the workflow finished still gets its first receipt.
            guard
                let first = try await history(of: id).first(where: {
                    if case .eventReceived(_, _, dedupKey) = $0.kind { true } else { false }
                })
            else { throw error }
            receipt = EventReceipt(workflowID: id, sequence: first.sequence, duplicate: true)
        }
        if receipt.duplicate, let dedupKey, !compared {
            let first = try await history(of: id).first { $0.sequence == receipt.sequence }
            guard case .eventReceived(name, payload, _)? = first?.kind else { throw Self.dedupKeyConflict(dedupKey, workflowID: id) }
        }
        return receipt
    }

    /// The refusal of a resend whose dedup key came with another event first.
    static func dedupKeyConflict(_ dedupKey: String, workflowID id: String) -> ContinuumError {
        ContinuumError(
            .dedupKeyConflict,
            "Dedup key '\(dedupKey)' was already used for another event of workflow '\(id)'; "
                + "use a new key for a new event, or resend the same event unchanged.",
            workflowID: id)
    }

    /// Asks a workflow to stop; returns once the request is committed.
    ///
    /// The workflow's pending sleep, event wait or retry backoff throws a
    /// ``ContinuumError/Code/cancelled`` error, as does every later one. The workflow may catch
    /// it and run compensating steps (durable, like any step); however its body ends, the
    /// workflow ends ``WorkflowStatus/cancelled``. Cancelling twice is the same as once.
    ///
    /// A **suspended** workflow ends cancelled at once: its code does not match its history, so
    /// it cannot be replayed to where compensation would run, and compensating steps do not
    /// run. To run them, resume or reset it with matching code first, then cancel it.
    ///
    /// - Parameters:
    ///   - id: The workflow's id.
    ///   - by: Who asks (recorded with the request).
    ///   - reason: Why (recorded, and in the error the workflow's waits throw).
    /// - Throws: ``ContinuumError/Code/unknownWorkflow``, ``ContinuumError/Code/workflowFinished``,
    ///   ``ContinuumError/Code/notRunning``.
    public func cancel(_ id: String, by: String? = nil, reason: String = "cancelled by request") async throws {
        do {
            try await cancelHere(id, by: by, reason: reason)
        } catch let error as ContinuumError where isHeldElsewhere(error) {
            _ = try await relay(.cancel(by: by, reason: reason), to: id)
            logger.info("Cancellation requested: \(reason)", metadata: [LogKey.workflowID: "\(id)"])
        }
    }

    /// Cancels `id` in this process (see ``cancel(_:by:reason:)``).
    func cancelHere(_ id: String, by: String?, reason: String) async throws {
        do {
            try await cancelInstance(id, by: by, reason: reason)
        } catch let error as ContinuumError where error.code == .suspended {
            do {
                try await cancelSuspended(id, by: by, reason: reason)
            } catch let error as ContinuumError where error.code == Self.retry.code && error.message == Self.retry.message {
                return try await cancelHere(id, by: by, reason: reason)
            }
        }
        logger.info("Cancellation requested: \(reason)", metadata: [LogKey.workflowID: "\(id)"])
    }

    // MARK: Reaching a workflow

    // An event or a cancellation goes to the workflow's instance when it is in memory. When it
    // is not (parked, or its driver not let in yet), it is appended to the workflow's history in
    // the store and the workflow launched: loading it first would wait for room among
    // `maxResidentWorkflows`, which the sender may be holding itself. A child telling its parked
    // parent how it ended keeps its own place until the notice is committed, so children filling
    // every place would each wait for a parent that none of them lets in.

    /// Delivers an event to the instance of `id`, or to its history in the store; `compared`
    /// tells whether a duplicate was compared with the first event with its key.
    private func deliverHere(
        _ name: String, to id: String, json payload: [UInt8], dedupKey: String?
    ) async throws -> (receipt: EventReceipt, compared: Bool) {
        while true {
            // An instance in memory is found without the async call: it is every delivery's case.
            let reached = if let instance = state.withLock({ $0.instance(id) }) { Reached.instance(instance) } else { try await reach(id) }
            switch reached {
            case .instance(let instance):
                do {
                    return try await instance.receive(name: name, payload: payload, dedupKey: dedupKey)
                } catch {
                    // An instance that is leaving memory (parked, suspended, taken over) is not the
                    // workflow any more: wait until it is gone and ask again.
                    guard await instance.isLeaving else { throw error }
                    await released(id, instance)
                }
            case .reserved:
                return (try await receiveUnloaded(name, to: id, json: payload, dedupKey: dedupKey), false)
            case .unavailable:
                throw try await unavailable(id)
            }
        }
    }

    /// Cancels the instance of `id`, or records the cancellation in its history in the store.
    private func cancelInstance(_ id: String, by: String?, reason: String) async throws {
        while true {
            switch try await reach(id) {
            case .instance(let instance):
                do {
                    return try await instance.cancel(reason: reason, by: by)
                } catch {
                    guard await instance.isLeaving else { throw error }
                    await released(id, instance)
                }
            case .reserved:
                return try await cancelUnloaded(id, by: by, reason: reason)
            case .unavailable:
                throw try await unavailable(id)
            }
        }
    }

    private enum Reached {
        case instance(WorkflowInstance)
        /// No instance holds it, and its slot is the caller's now.
        case reserved
        case unavailable
    }

    /// Finds the instance of `id`, waiting for whoever holds its slot; or takes the slot.
    private func reach(_ id: String) async throws -> Reached {
        while true {
            if let instance = state.withLock({ $0.instance(id) }) { return .instance(instance) }
            let wakeable = try await store.summary(id: id)?.status == .running
            switch state.withLock({ $0.reachInstance(id, wakeable: wakeable) }) {
            case .use(let instance): return .instance(instance)
            case .reserved: return .reserved
            case .unavailable, .launch: return .unavailable
            case .wait:
                let instance = await withCheckedContinuation { (continuation: RuntimeState.Sender) in
                    if !state.withLock({ $0.waitForSlot(id, sender: continuation) }) { continuation.resume(returning: nil) }
                }
                if let instance { return .instance(instance) }
            // Whoever held the slot let it go without loading the workflow (it had finished, or
            // another sender wrote to it in the store): look again.
            }
        }
    }

    /// Appends an event to the history of `id`, whose slot the caller took (``reach(_:)``).
    private func receiveUnloaded(_ name: String, to id: String, json payload: [UInt8], dedupKey: String?) async throws -> EventReceipt {
        var launch = false
        defer { handBack(id, launch: launch) }
        var (claim, history) = try await openUnloaded(id, finished: "it takes no more events")
        switch history.receive(name: name, payload: payload, dedupKey: dedupKey, timestamp: configuration.clock.now()) {
        case .failure(let duplicate):
            // Launched as well: the first delivery's launch may not have run in a process that died since.
            launch = true
            return EventReceipt(workflowID: id, sequence: duplicate.sequence, duplicate: true)
        case .success(let event):
            try await appendUnloaded(id, claim: claim, [event], timers: [])
            metrics.eventsReceived.increment()
            launch = true
            return EventReceipt(workflowID: id, sequence: event.sequence, duplicate: false)
        }
    }

    /// Records a cancellation in the history of `id`, whose slot the caller took (``reach(_:)``):
    /// the request and the end of every pending wait, as the instance would. The workflow
    /// replays them when it is loaded, as after a crash, and compensates.
    private func cancelUnloaded(_ id: String, by: String?, reason: String) async throws {
        var launch = false
        defer { handBack(id, launch: launch) }
        var (claim, history) = try await openUnloaded(id, finished: "there is nothing to cancel")
        let events = history.requestCancellation(reason: reason, by: by, timestamp: configuration.clock.now())
        try await appendUnloaded(id, claim: claim, events, timers: history.timerChanges(for: events))
        launch = true
    }

    /// Claims `id` and folds its history, for a change made in the store; throws (the claim
    /// released) the usual refusal when it is not running any more, and `workflowFinished`,
    /// saying `finished`, when its history holds its end.
    private func openUnloaded(_ id: String, finished: String) async throws -> (Claim, WorkflowState) {
        guard let claim = try await store.claim(id, owner: configuration.owner) else { throw try await unavailable(id) }
        let loaded: (StoredWorkflow, WorkflowState?)?
        do {
            // From its snapshot, as a wake loads it: a long history is not folded on every delivery.
            loaded = try await store.loadForWake(id: id, snapshots: configuration.snapshotEvery != nil, logger: logger)
        } catch {
            try? await store.release(claim, id: id)
            throw error
        }
        guard let (stored, folded) = loaded, stored.summary.status == .running else {
            try? await store.release(claim, id: id)
            throw try await unavailable(id)
        }
        let history: WorkflowState
        do {
            history = try folded ?? WorkflowState(replaying: stored.events)
        } catch {
            try? await store.release(claim, id: id)  // its driver reports the damage
            throw error
        }
        guard history.outcome == nil else {
            try? await store.release(claim, id: id)
            throw ContinuumError(.workflowFinished, "Workflow '\(id)' has finished; \(finished).", workflowID: id)
        }
        return (claim, history)
    }

    /// Appends `events` under `claim` and keeps the claim: a claimed workflow is not parked, so
    /// if the process dies before the launch has run, recovery runs the workflow and the change
    /// is not left in a parked workflow that nothing wakes. The launch claims it again.
    private func appendUnloaded(_ id: String, claim: Claim, _ events: [HistoryEvent], timers: [TimerChange]) async throws {
        guard !events.isEmpty else { return }
        do {
            try await store.append(AppendRequest(fence: claim, id: id, events: events, timers: timers))
        } catch {
            try? await store.release(claim, id: id)
            // Another process claimed it meanwhile (a shared store): that process runs it.
            if error.code == .ownershipLost, store.limits.leaseDuration != nil {
                throw ContinuumError(.ownershipLost, Self.heldElsewhere(id), workflowID: id)
            }
            throw error
        }
        feed.publish(WorkflowChange(workflowID: id, events: events))
    }

    /// Hands back the slot ``reach(_:)`` took, and launches the workflow to take the change.
    private func handBack(_ id: String, launch: Bool) {
        for sender in state.withLock({ $0.driveEnded(id) }) { sender.resume(returning: nil) }
        if launch { state.launch(Launch(id: id, wake: true)) }
    }

    /// Returns once `instance` no longer drives `id`.
    func released(_ id: String, _ instance: WorkflowInstance) async {
        _ = await withCheckedContinuation { (continuation: RuntimeState.Sender) in
            let waiting = state.withLock { $0.waitUntilGone(id, instance, sender: continuation) }
            if !waiting { continuation.resume(returning: nil) }
        }
    }

    /// Why no instance could be had for `id`.
    private func unavailable(_ id: String) async throws -> ContinuumError {
        if let stopped = state.withLock({ $0.suspension(id) }) { return stopped }
        guard let summary = try await store.summary(id: id) else {
            return ContinuumError(.unknownWorkflow, "No workflow has id '\(id)'; check the id or start the workflow first.", workflowID: id)
        }
        if summary.status.isFinished {
            return ContinuumError(.workflowFinished, "Workflow '\(id)' has \(summary.status); it takes no more events.", workflowID: id)
        }
        if summary.status == .suspended { return try await suspendedError(id) }
        if store.limits.leaseDuration != nil, state.withLock({ $0.isRunning }) {
            // A shared store: another live process holds the workflow.
            return ContinuumError(.ownershipLost, Self.heldElsewhere(id), workflowID: id)
        }
        return ContinuumError(.notRunning, "Workflow '\(id)' is not being run; send events while the runtime runs.", workflowID: id)
    }
}

/// The answer to `send`: where the event is in the workflow's stream.
public struct EventReceipt: Sendable, Equatable, Codable {
    /// The workflow the event was sent to.
    public var workflowID: String
    /// The event's sequence number in the workflow's stream.
    public var sequence: UInt32
    /// Whether this send repeated a dedup key, so nothing was appended and this is the first receipt.
    public var duplicate: Bool

    /// Creates a receipt.
    public init(workflowID: String, sequence: UInt32, duplicate: Bool) {
        self.workflowID = workflowID
        self.sequence = sequence
        self.duplicate = duplicate
    }
}
