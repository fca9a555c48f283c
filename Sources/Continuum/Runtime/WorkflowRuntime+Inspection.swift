extension WorkflowRuntime {
    // MARK: Results

    /// Waits for the workflow's JSON output.
    func output(of id: String) async throws -> [UInt8] {
        let promise = ResultPromise()
        let (waiterID, live) = state.withLock { machine in
            let waiterID = machine.newWaiterID()
            return (waiterID, machine.addResultWaiter(id, waiterID, promise))
        }
        defer { if !promise.isReleased { _ = state.withLock { $0.removeResultWaiter(id, waiterID) } } }
        // Running here: its driver answers. Otherwise registered first, checked second: an
        // outcome committed after the check resolves the promise.
        if !live {
            do {
                if let settled = try await settledResult(of: id) { promise.fulfill(settled.mapError { $0 }) }
            } catch {
                promise.fulfill(.failure(error))
            }
        }
        // On a shared store another process may finish it: the lease keeper's round looks
        // (settleAwaitedElsewhere).
        return try await promise.value
    }

    /// Answers the waiters of workflows this runtime does not drive whose outcome the store
    /// has: another process finished them. Called every round of the lease keeper (shared stores).
    func settleAwaitedElsewhere() async {
        for id in state.withLock({ $0.awaitedElsewhere }) {
            // A failed read (a restarting database) is looked at again next round.
            if let settled = try? await settledResult(of: id) { state.resolve(id, with: settled) }
        }
    }

    /// The workflow's outcome when it has one (or cannot get one in this run), `nil` while it runs.
    private func settledResult(of id: String) async throws(ContinuumError) -> Result<[UInt8], ContinuumError>? {
        if let stopped = state.withLock({ $0.suspension(id) }) { return .failure(stopped) }
        guard let summary = try await store.summary(id: id) else {
            throw ContinuumError(.unknownWorkflow, "No workflow has id '\(id)'.", workflowID: id)
        }
        if summary.status == .suspended {
            // The cause recorded with the suspension, as a waiter present at the time got it.
            let record = try await suspension(of: id)
            return .failure(
                ContinuumError(
                    .named(record?.code ?? ContinuumError.Code.suspended.name),
                    "Workflow '\(id)' is suspended: \(record?.message ?? "no reason recorded")", workflowID: id))
        }
        guard summary.status.isFinished, let stored = try await store.load(id: id) else {
            if !state.withLock({ $0.isRunning }) {
                return .failure(
                    ContinuumError(
                        .notRunning,
                        "Workflow '\(id)' is unfinished and the runtime is not running, so it cannot finish; "
                            + "wait for its result while run() (or withRunning) runs.",
                        workflowID: id))
            }
            return nil
        }
        let history = try WorkflowState(replaying: stored.events)
        return history.outcome.map { WorkflowDriver.result(of: $0, id: id) }
    }

    // MARK: Inspection

    /// The workflow's summary, or `nil` when no workflow has this id. A workflow this process
    /// stopped in memory (a full store) reads as ``WorkflowStatus/suspended`` until it is retried.
    public func status(of id: String) async throws(ContinuumError) -> WorkflowSummary? {
        guard var summary = try await store.summary(id: id) else { return nil }
        if summary.status == .running, state.withLock({ $0.suspension(id) }) != nil { summary.status = .suspended }
        return summary
    }

    /// Why the workflow is suspended, or `nil` when it is not: the suspension its history
    /// records (code, message, where the code stopped matching, what history recorded there and
    /// what the code asked for, the build), or what stopped it in this process (a full store).
    public func suspension(of id: String) async throws(ContinuumError) -> SuspensionRecord? {
        if let stopped = state.withLock({ $0.suspension(id) }) {
            return SuspensionRecord(code: stopped.code.name, message: stopped.message, build: configuration.build)
        }
        guard try await store.summary(id: id)?.status == .suspended, let stored = try await store.load(id: id) else { return nil }
        for event in stored.events.reversed() {
            if case .workflowSuspended(let record) = event.kind { return record }
        }
        return SuspensionRecord(code: ContinuumError.Code.corruptedData.name, message: "The workflow's history cannot be read.")
    }

    /// The error a suspended workflow answers with.
    func suspendedError(_ id: String) async throws(ContinuumError) -> ContinuumError {
        let record = try await suspension(of: id)
        return ContinuumError(
            .suspended,
            "Workflow '\(id)' is suspended (\(record?.code ?? "unknown")): \(record?.message ?? "no reason recorded") "
                + "Resume, reset or cancel it.",
            workflowID: id)
    }

    /// Every event of the workflow's history, in order.
    ///
    /// - Parameters:
    ///   - id: The workflow's id.
    ///   - includingSuperseded: Whether to include the events a reset superseded (they
    ///     stay in the stream; with `false` the history is what the workflow now folds).
    /// - Throws: ``ContinuumError/Code/unknownWorkflow`` when no workflow has this id.
    public func history(of id: String, includingSuperseded: Bool = true) async throws(ContinuumError) -> [HistoryEvent] {
        guard let stored = try await store.load(id: id) else {
            throw ContinuumError(.unknownWorkflow, "No workflow has id '\(id)'.", workflowID: id)
        }
        return includingSuperseded ? stored.events : try WorkflowState.effective(stored.events)
    }

    /// How many workflows have each status, as the store counts them.
    public func counts() async throws(ContinuumError) -> StatusCounts {
        var counts = try await store.counts()
        let suspended = state.withLock { $0.allSuspensions.count }
        counts.byStatus[.running, default: 0] -= suspended
        counts.byStatus[.suspended, default: 0] += suspended
        return counts
    }

    /// Workflows with the given status (all when `nil`), oldest first, at most `limit`.
    public func list(status: WorkflowStatus? = nil, limit: Int = 100) async throws(ContinuumError) -> [WorkflowSummary] {
        try await list(status: status, after: nil, limit: limit).workflows
    }

    /// One page of workflows, oldest first; pass the page's `next` as `after` for the next one.
    ///
    /// - Throws: ``ContinuumError/Code/invalidArgument`` for a cursor this runtime did not hand out.
    public func list(status: WorkflowStatus?, after cursor: String?, limit: Int) async throws(ContinuumError) -> WorkflowPage {
        let limit = max(1, limit)
        let suspended = state.withLock { $0.allSuspensions }
        if status == .suspended {
            let ids = suspended.keys.sorted().filter { id in cursor.map { id > $0 } ?? true }
            var page: [WorkflowSummary] = []
            for id in ids.prefix(limit) {
                if let summary = try await self.status(of: id) { page.append(summary) }
            }
            if !page.isEmpty || cursor != nil { return WorkflowPage(workflows: page, next: ids.count > limit ? page.last?.id : nil) }
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
            let page = try await store.list(status: status, after: after, limit: limit)
            for row in page {
                after = row.stream
                var summary = row.summary
                if summary.status == .running, suspended[summary.id] != nil {
                    summary.status = .suspended
                    if status == .running { continue }
                }
                result.append(summary)
                if result.count == limit { return WorkflowPage(workflows: result, next: String(row.stream.rawValue)) }
            }
            guard page.count == limit else { return WorkflowPage(workflows: result, next: nil) }
        }
    }

    /// The changes of workflow `id` (of every workflow when `nil`) from now on, each reported
    /// once it is committed: events appended, a status set, a workflow parked.
    ///
    /// ```swift
    /// for await change in runtime.changes(of: "order-7") where change.status == .completed { break }
    /// ```
    ///
    /// The stream buffers what its consumer has not read yet: iterate it while it is open, and
    /// stop iterating (or cancel the task) when done, which ends the subscription.
    public func changes(of id: String? = nil) -> AsyncStream<WorkflowChange> {
        feed.subscribe(id)
    }

    // MARK: Diagnostics

    /// How many sleeps, event timeouts and retry backoffs of workflows in memory wait on the
    /// timer wheel, their start committed and their deadline still ahead by the clock; the
    /// sleeps and event timeouts a dormant workflow rested in count too. Parked workflows'
    /// timers are not counted. It walks every timer: meant for tests and diagnostics.
    @_spi(Testing)
    public var pendingTimers: Int {
        let now = timers.clock.now()
        return timers.sleeping + state.withLock { $0.dormantSleeps(after: now) }
    }

    /// How many workflows are in memory now (running, or waiting and not yet parked).
    @_spi(Testing)
    public var residentWorkflows: Int { state.withLock { $0.slotCounts.loaded } }

    /// How many workflows hold a task now (their driver runs: loading, running, waiting with
    /// a task); dormant ones do not.
    @_spi(Testing)
    public var drivenWorkflows: Int { admission.inside }

    /// How many of the workflows in memory are dormant: waiting with no task
    /// (``Configuration/dormantAfter``).
    @_spi(Testing)
    public var dormantWorkflows: Int { state.withLock { $0.slotCounts.dormant } }

    /// What the runtime holds in memory: for diagnosing a process that seems stuck (a test
    /// harness prints it on a signal). The text is for people and changes without notice.
    @_spi(Diagnostics)
    public var diagnostics: String {
        let (running, ready, slots, suspended, waiters) = state.withLock { machine in
            (machine.isRunning, machine.isReady, machine.slotCounts, machine.allSuspensions.count, machine.resultWaiterCount())
        }
        return "runtime: running \(running), ready \(ready); \(slots.claimed) claimed (\(slots.loaded) loaded, \(slots.dormant) dormant), \(suspended) suspended, "
            + "\(waiters) result waiters; admission \(admission.inside) inside, \(admission.queued) queued; "
            + "recovery \(pacer.inside) starting, \(pacer.queuedCount) queued\n\(timers.diagnostics)"
    }

    /// What the runtime holds in memory for workflow `id`; see ``diagnostics``.
    @_spi(Diagnostics)
    public func diagnostics(of id: String) async -> String {
        let (slot, suspended, waiters) = state.withLock { ($0.slotDescription(id), $0.suspension(id), $0.resultWaiterCount(id)) }
        var text = "\(id): \(waiters) result waiters"
        if let suspended { text += ", suspended (\(suspended.code))" }
        guard let slot else { return text + ", not claimed" }
        text += ", claimed (driving \(slot.driving), \(slot.senders) senders waiting for the instance)"
        guard let instance = slot.loaded else { return text + ", not loaded" }
        return text + "; " + (await instance.diagnostics)
    }
}

/// A page of ``WorkflowRuntime/list(status:after:limit:)``.
public struct WorkflowPage: Sendable, Hashable {
    /// The workflows, oldest first.
    public var workflows: [WorkflowSummary]
    /// Pass as `after` for the next page; `nil` on the last page.
    public var next: String?
}
