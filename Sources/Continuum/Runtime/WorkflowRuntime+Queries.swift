/// Live queries: a workflow publishes values (its progress, its current state) with
/// ``WorkflowContext/publish(_:_:)``, and anyone reads them with ``WorkflowRuntime/query(_:_:)``
/// without appending anything.
///
/// Published values live in memory only: they are a function of the workflow's code and its
/// history, so a replay publishes them again. A query of a workflow this process runs reads the
/// instance; any other query (a parked workflow, one another process runs, a finished one)
/// replays the stored history as a dry run, nothing executed and nothing appended, and reads
/// what the replay published.
extension WorkflowRuntime {
    /// The latest value workflow `id` published under `name`, as JSON.
    ///
    /// ```swift
    /// let progress = try await runtime.query("research-7", "progress", as: Progress.self)
    /// ```
    ///
    /// - Throws: ``ContinuumError/Code/unknownWorkflow``; ``ContinuumError/Code/unknownQuery``
    ///   when the workflow published nothing under `name` (yet);
    ///   ``ContinuumError/Code/unknownWorkflowType`` when its type is not registered here.
    public func query(_ id: String, _ name: String) async throws -> [UInt8] {
        try validate(name: name, what: "A query name")
        if let instance = state.withLock({ $0.instance(id) }), case .value(let value) = await instance.query(name) {
            guard let value else { throw Self.unknownQuery(name, id: id) }
            return value
        }
        // A dry run from the latest snapshot, when one stands for the events before it.
        guard let recent = try await store.loadRecent(id: id) else {
            throw ContinuumError(.unknownWorkflow, "No workflow has id '\(id)'; check the id or start the workflow first.", workflowID: id)
        }
        guard workflows[recent.summary.type] != nil else { throw Self.unregistered(recent.summary.type, id: id) }
        let replayer = WorkflowReplayer(workflows: workflows, codeChange: configuration.codeChange, logger: logger)
        let replayed: ReplayResult
        if let snapshot = recent.snapshot, let folded = try? WorkflowState(snapshot: snapshot, then: recent.events) {
            replayed = await replayer.replay(
                id: id, type: recent.summary.type, folded: folded, events: Int(folded.nextSequence),
                at: recent.events.last?.timestamp ?? recent.summary.updatedAt)
        } else {
            let events = recent.snapshot == nil ? recent.events : try await store.load(id: id)?.events ?? []
            replayed = await replayer.replay(id: id, type: recent.summary.type, events: events)
        }
        guard let value = replayed.published[name] else { throw Self.unknownQuery(name, id: id) }
        return value
    }

    /// The latest value workflow `id` published under `name`, decoded as `T`.
    ///
    /// - Throws: as ``query(_:_:)``; ``ContinuumError/Code/payloadCoding`` when it does not decode as `T`.
    public func query<T: Decodable>(_ id: String, _ name: String, as type: T.Type = T.self) async throws -> T {
        try PayloadCoder.decode(T.self, from: try await query(id, name), what: "query '\(name)' of workflow '\(id)'")
    }

    private static func unknownQuery(_ name: String, id: String) -> ContinuumError {
        ContinuumError(
            .unknownQuery, "Workflow '\(id)' has published no value named '\(name)'; it publishes with ctx.publish(\"\(name)\", value).",
            workflowID: id)
    }
}
