import Logging

/// Child workflows: a parent starts them through a recorded step, and learns how each ended
/// through an event the child delivers before its own end is committed.
///
/// The child's start carries its link to the parent (``HistoryEvent/Kind/startedAsChild(parent:key:)``)
/// in the same commit, so every run of the child knows whom to tell. The notice is an event
/// named `continuum.child:<key>` with that name as its dedup key: a child that dies after
/// telling and before committing its end tells again on its next run, and the parent records
/// it once. The parent's wait for it is an ordinary event wait, so the parent parks while its
/// children run and is woken by the notice, in this process or through the inbox of another.
extension WorkflowRuntime {
    /// What ending a workflow owes its family: its parent's notice, its children's cancellation.
    struct FamilySettlement: Sendable {
        /// The workflow that ends.
        var id: String
        /// How it ends.
        var outcome: WorkflowState.Outcome
        /// Its parent, told of `outcome`.
        var parent: ParentLink?
        /// Its unfinished children whose policy is to be cancelled with it.
        var children: [ChildRecord]
    }

    /// Starts child `key` of workflow `parent`, or finds it started; refuses an id that belongs
    /// to another workflow.
    func startChild<W: Workflow>(
        _ type: W.Type, parent: String, key: String, input: W.Input, onParentClose: ParentClosePolicy, timeout: Duration?
    ) async throws -> ChildRecord {
        let id = "\(parent)/\(key)"
        try validate(id: id)
        guard workflows[W.name] != nil else { throw Self.unregistered(W.name, id: id) }
        let inputBytes = try PayloadCoder.encode(input, what: "the input of child workflow '\(id)'")
        try PayloadCoder.check(inputBytes, limit: maxPayloadSize, what: "The input of child workflow '\(id)'")
        let link = ParentLink(id: parent, key: key)
        if try await !create(type: W.name, id: id, input: inputBytes, link: link, timeout: timeout) {
            // Started before: by this parent's earlier run (a crash before the step committed),
            // or by someone else, whose workflow would never tell this parent anything.
            let events = try await store.load(id: id)?.events ?? []
            guard events.count > 1, case .startedAsChild(parent, key) = events[1].kind else {
                throw ContinuumError(
                    .workflowIDConflict,
                    "Workflow id '\(id)' belongs to a workflow that is not child '\(key)' of '\(parent)'; give the child another name.",
                    workflowID: id)
            }
        }
        logger.debug("Child workflow started", metadata: [LogKey.workflowID: "\(parent)", "continuum.child": "\(id)"])
        return ChildRecord(id: id, type: W.name, key: key, onParentClose: onParentClose)
    }

    /// Cancels the children `family` leaves behind, then tells its parent how it ended.
    ///
    /// - Throws: what kept a child from being cancelled or the parent from being told, other
    ///   than its having finished already: the workflow's end is then not committed, and the
    ///   next run settles again.
    func settle(_ family: FamilySettlement) async throws {
        for child in family.children {
            do {
                try await cancel(child.id, by: family.id, reason: "its parent '\(family.id)' ended (\(Self.statusName(family.outcome)))")
            } catch let error as ContinuumError where error.code == .workflowFinished || error.code == .unknownWorkflow {
                continue  // it ended on its own meanwhile
            }
        }
        guard let parent = family.parent else { return }
        let name = ChildRecord.noticeName(parent.key)
        var payload = try PayloadCoder.encode(ChildOutcome(family.outcome), what: "the outcome of child workflow '\(family.id)'", sortedKeys: true)
        if payload.count > maxPayloadSize {
            let failure = FailureRecord(
                type: "ContinuumError.\(ContinuumError.Code.payloadTooLarge)",
                message: "The output of child workflow '\(family.id)' is too large to deliver to its parent (\(payload.count) bytes).")
            payload = try PayloadCoder.encode(ChildOutcome(.failed(failure)), what: "the outcome of child workflow '\(family.id)'", sortedKeys: true)
        }
        do {
            _ = try await deliverOrRelay(name, to: parent.id, json: payload, dedupKey: name)
        } catch let error as ContinuumError where [.workflowFinished, .unknownWorkflow, .dedupKeyConflict].contains(error.code) {
            // The parent ended, is gone, or already holds an earlier outcome of this child (one
            // reset and run again): it keeps what it has.
            logger.log(
                level: error.code == .dedupKeyConflict ? .notice : .debug, "The parent did not take the child's outcome: \(error.message)",
                metadata: [LogKey.workflowID: "\(family.id)", "continuum.parent": "\(parent.id)"])
        }
    }

    private static func statusName(_ outcome: WorkflowState.Outcome) -> String {
        switch outcome {
        case .completed: "completed"
        case .failed: "failed"
        case .cancelled: "cancelled"
        }
    }
}
