#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Updates: a caller sends a request into a running workflow and waits for the workflow's reply.
///
/// The runtime first asks the workflow type (``Workflow/validateUpdate(named:payload:)``); a
/// refusal records nothing. An accepted update is recorded as an event named
/// `continuum.update:<name>` with the dedup key `continuum.update:<id>`, so the same id sent
/// twice is recorded once and gets the same reply. The body takes it with
/// ``WorkflowContext/nextUpdate(_:as:timeout:isolation:)`` and answers with a recorded step
/// (`continuum.reply:<id>`); the caller watches for that step's commit, through the runtime's
/// change feed and, on a store shared by several processes, by reading the store.
extension WorkflowRuntime {
    /// Sends update `name` with `payload` to workflow `id` and returns the workflow's reply.
    ///
    /// ```swift
    /// let decision = try await runtime.update("po-7", "approve", payload: Approval(by: "ops"), as: Decision.self)
    /// ```
    ///
    /// - Parameters:
    ///   - id: The workflow's id.
    ///   - name: The update's name, as the workflow takes it (``WorkflowContext/nextUpdate(_:as:timeout:isolation:)``).
    ///   - payload: What to send, stored as JSON.
    ///   - dedupKey: The update's id: sending again with the same key records nothing new and
    ///     returns the same reply (when it has come). Default: a new id.
    ///   - timeout: How long to wait for the reply. The update stays recorded when it passes;
    ///     send it again with the same `dedupKey` to get the reply later.
    ///   - reply: The type the reply decodes as.
    /// - Throws: ``ContinuumError/Code/updateRejected`` when the type's validation or the body
    ///   refused it; ``ContinuumError/Code/timedOut`` when no reply came within `timeout`;
    ///   ``ContinuumError/Code/workflowFinished`` when the workflow ended without replying;
    ///   the errors of ``send(_:to:payload:dedupKey:)``.
    public func update<P: Encodable & Sendable, R: Decodable>(
        _ id: String, _ name: String, payload: P, dedupKey: String? = nil, timeout: Duration = .seconds(60), as reply: R.Type = R.self
    ) async throws -> R {
        // Keys sorted: the same update sent again encodes byte for byte the same, as its dedup key requires.
        let json = try PayloadCoder.encode(payload, what: "update '\(name)' for workflow '\(id)'", sortedKeys: true)
        let answer = try await update(id, name, json: json, dedupKey: dedupKey, timeout: timeout)
        return try PayloadCoder.decode(R.self, from: answer, what: "the reply to update '\(name)' of workflow '\(id)'")
    }

    /// Sends an update whose payload is already JSON and returns the reply as JSON, as an HTTP
    /// edge does; otherwise like ``update(_:_:payload:dedupKey:timeout:as:)``.
    public func update(_ id: String, _ name: String, json payload: [UInt8], dedupKey: String? = nil, timeout: Duration = .seconds(60)) async throws -> [UInt8] {
        try validate(id: id)
        try validate(name: UpdateEnvelope.eventName(name), what: "An update name (with its prefix '\(UpdateEnvelope.prefix)')")
        let updateID = dedupKey ?? UUID().uuidString.lowercased()
        try validate(name: UpdateEnvelope.dedupKey(updateID), what: "An update's dedup key (with its prefix '\(UpdateEnvelope.prefix)')")
        try PayloadCoder.check(payload, limit: maxPayloadSize, what: "Update '\(name)' for workflow '\(id)'")
        guard let summary = try await store.summary(id: id) else {
            throw ContinuumError(.unknownWorkflow, "No workflow has id '\(id)'; check the id or start the workflow first.", workflowID: id)
        }
        guard let workflow = workflows[summary.type] else { throw Self.unregistered(summary.type, id: id) }
        do {
            try workflow.validateUpdate(name, payload)
        } catch {
            throw ContinuumError(.updateRejected, "Workflow '\(id)' refused update '\(name)': \(error)", workflowID: id)
        }
        let envelope = try PayloadCoder.encode(
            UpdateEnvelope(id: updateID, payload: String(decoding: payload, as: UTF8.self)), what: "update '\(name)' for workflow '\(id)'",
            sortedKeys: true)
        // Subscribed before sending, so that a reply committed at once is not missed.
        let changes = changes(of: id)
        _ = try await deliverOrRelay(UpdateEnvelope.eventName(name), to: id, json: envelope, dedupKey: UpdateEnvelope.dedupKey(updateID))
        let reply = try await awaitReply(to: updateID, of: id, changes: changes, timeout: timeout)
        if let error = reply.error {
            throw ContinuumError(.updateRejected, "Workflow '\(id)' rejected update '\(name)': \(error)", workflowID: id)
        }
        return Array((reply.reply ?? "null").utf8)
    }

    /// Waits for the reply step of update `updateID`, or the workflow's end.
    private func awaitReply(
        to updateID: String, of id: String, changes: AsyncStream<WorkflowChange>, timeout: Duration
    ) async throws -> UpdateReply {
        @Sendable func reply(in events: [HistoryEvent]) throws -> UpdateReply? {
            try Self.reply(to: updateID, in: events)
        }
        // Another process may run the workflow: its commits reach this process only through the store.
        let shared = store.limits.leaseDuration != nil
        do {
            return try await withTimeout(timeout) { [self] in
                try await withThrowingTaskGroup(of: UpdateReply?.self) { group in
                    group.addTask {
                        // What is stored already, then what this process commits from now on.
                        if let found = try reply(in: try await self.history(of: id)) { return found }
                        // Finished since the history was read, it may have replied meanwhile: the
                        // history read after its end decides (a late test thread once saw "ended
                        // without replying" for a workflow that had replied and then ended).
                        if try await self.status(of: id)?.status.isFinished == true { return try reply(in: try await self.history(of: id)) }
                        for await change in changes {
                            if let found = try reply(in: change.events) { return found }
                            if change.status?.isFinished == true { return try reply(in: try await self.history(of: id)) }
                        }
                        throw CancellationError()
                    }
                    if shared {
                        group.addTask {
                            while true {
                                try await Task.sleep(for: .milliseconds(100))
                                if let found = try reply(in: try await self.history(of: id)) { return found }
                                if try await self.status(of: id)?.status.isFinished == true { return try reply(in: try await self.history(of: id)) }
                            }
                        }
                    }
                    defer { group.cancelAll() }
                    guard let first = try await group.next(), let found = first else {
                        throw ContinuumError(.workflowFinished, "Workflow '\(id)' ended without replying to update '\(updateID)'.", workflowID: id)
                    }
                    return found
                }
            }
        } catch is UpdateTimeout {
            throw ContinuumError(
                .timedOut,
                "Workflow '\(id)' has not replied to update '\(updateID)' within \(timeout); the update is recorded. Send it again with dedup key '\(updateID)' to get its reply.",
                workflowID: id)
        }
    }

    /// The reply to update `updateID` among `events`, if they hold it.
    private static func reply(to updateID: String, in events: [HistoryEvent]) throws -> UpdateReply? {
        let step = UpdateReply.stepName(updateID)
        for event in events {
            if case .stepCompleted(let record, let result) = event.kind, record.name == step {
                return try PayloadCoder.decode(UpdateReply.self, from: result, what: "the reply to update '\(updateID)'")
            }
        }
        return nil
    }

    /// Runs `operation`, throwing ``UpdateTimeout`` once `timeout` passes first.
    private func withTimeout<R: Sendable>(_ timeout: Duration, _ operation: @escaping @Sendable () async throws -> R) async throws -> R {
        try await withThrowingTaskGroup(of: R?.self) { group in
            group.addTask { try await operation() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else { throw UpdateTimeout() }
            return value
        }
    }
}

private struct UpdateTimeout: Error {}
