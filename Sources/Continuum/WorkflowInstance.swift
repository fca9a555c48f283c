/// One running workflow: the thin actor around its ``WorkflowState`` that turns the state's
/// decisions into durable appends.
///
/// Every transition happens synchronously inside one actor method before any `await`, and the
/// append is submitted before the method suspends, so concurrent steps of one workflow keep
/// their stream in order and reentrancy cannot interleave two transitions.
actor WorkflowInstance {
    nonisolated let id: String
    nonisolated let stream: StreamID
    /// The task that runs the workflow body; steps called from any other task come from its children.
    nonisolated let bodyTask: Int
    private let store: any EventStore
    private var state: WorkflowState
    private(set) var suspension: ContinuumError?

    init(id: String, stream: StreamID, store: any EventStore, state: WorkflowState) {
        self.id = id
        self.stream = stream
        self.store = store
        self.state = state
        bodyTask = currentTaskIdentity()
    }

    /// Whether the calling task is a child task of the body rather than the body itself.
    nonisolated func isChildTask() -> Bool {
        currentTaskIdentity() != bodyTask
    }

    /// What a step call does once divergence and ambiguity are ruled out.
    enum StepPlan {
        case replay(WorkflowState.RecordedStep)
        case execute(WorkflowState.StepCall)
    }

    func beginStep(named name: String, concurrent: Bool) throws(ContinuumError) -> StepPlan {
        if let suspension { throw suspension }
        switch state.beginStep(named: name, concurrent: concurrent) {
        case .diverged(let divergence):
            throw suspend(nondeterminism(divergence))
        case .ambiguous(let key):
            throw ContinuumError(
                .ambiguousStep,
                "Workflow '\(id)' called step '\(key.name)' while another step of that name was still running. "
                    + "Steps that run at the same time need distinct names, such as \"\(key.name)-\\(i)\".",
                workflowID: id)
        case .replay(let recorded):
            return .replay(recorded)
        case .execute(let call):
            return .execute(call)
        }
    }

    func completeStep(_ call: WorkflowState.StepCall, outcome: Result<[UInt8], FailureRecord>) async throws(ContinuumError) {
        if let suspension { throw suspension }
        let event = state.completeStep(call, outcome: outcome, timestamp: WallClock.nanosecondsSince1970())
        do {
            try await store.append(AppendRequest(stream: stream, id: id, events: [event]))
        } catch {
            throw suspend(ContinuumError.wrap(error))
        }
    }

    func abandonStep(_ call: WorkflowState.StepCall) {
        state.abandonStep(call)
    }

    /// Records how the body ended. Returns the outcome as stored, or the error that suspended the workflow.
    func finish(_ outcome: WorkflowState.Outcome) async -> Result<WorkflowState.Outcome, ContinuumError> {
        if let suspension { return .failure(suspension) }
        switch state.finish(outcome, timestamp: WallClock.nanosecondsSince1970()) {
        case .failure(let divergence):
            return .failure(suspend(nondeterminism(divergence)))
        case .success(let event):
            let status: WorkflowStatus =
                if case .completed = outcome { .completed } else { .failed }
            do {
                try await store.append(AppendRequest(stream: stream, id: id, events: [event], status: status))
                return .success(outcome)
            } catch {
                return .failure(suspend(ContinuumError.wrap(error)))
            }
        }
    }

    /// Stops the workflow where it is: every later call from its body throws `error`, and nothing more is appended.
    @discardableResult
    func suspend(_ error: ContinuumError) -> ContinuumError {
        if let suspension { return suspension }
        var error = error
        error.workflowID = id
        suspension = error
        return error
    }

    private func nondeterminism(_ divergence: WorkflowState.Divergence) -> ContinuumError {
        ContinuumError(
            .nondeterminism,
            "Workflow '\(id)' (type \(state.type ?? "?")) no longer matches its history: \(divergence). "
                + "It is suspended and nothing was appended. Deploy code whose steps match the recorded history "
                + "(keep old steps for workflows already past them), then restart the runtime to resume it.",
            workflowID: id)
    }
}

/// The identity of the running task (its address), for telling the body from its children.
func currentTaskIdentity() -> Int {
    withUnsafeCurrentTask { $0?.hashValue ?? 0 }
}

/// Wall-clock time as stored in history.
enum WallClock {
    static func nanosecondsSince1970() -> Int64 {
        Int64(Date().timeIntervalSince1970 * 1_000_000_000)
    }
}
