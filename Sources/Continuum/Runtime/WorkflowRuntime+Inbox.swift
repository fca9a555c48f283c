import Logging

/// Events and cancellations for workflows another process runs, carried by the store's inbox
/// (stores shared by several processes only).
///
/// The sender posts the message durably and waits for its outcome; every runtime applies the
/// messages for the workflows it holds and for those nobody holds (which it claims to apply
/// them), then settles each — at once when the store sends a notice (PostgreSQL: `NOTIFY`),
/// and twice a second in any case, since a notice can be lost. Events carry a dedup key, so a message applied
/// twice — its applier died before settling it — is recorded once.
extension WorkflowRuntime {
    /// How often a runtime looks for inbox messages to apply when no notice wakes it sooner.
    static let inboxInterval: Duration = .milliseconds(500)

    static func heldElsewhere(_ id: String) -> String {
        "Workflow '\(id)' is being run by another process sharing the store."
    }

    /// Whether `error` says another live process holds the workflow (so the inbox must carry the request).
    func isHeldElsewhere(_ error: ContinuumError) -> Bool {
        error.code == .ownershipLost && store.limits.leaseDuration != nil
            && error.workflowID.map { error.message == Self.heldElsewhere($0) } == true
    }

    /// Posts `kind` to the inbox of `id` and waits until a process running the workflow applied it.
    ///
    /// - Throws: the workflow's refusal (finished, a dedup key conflict, …);
    ///   ``ContinuumError/Code/storeUnavailable`` when nobody applied it within the wait (it stays
    ///   queued and is applied when a process next runs the workflow).
    func relay(_ kind: InboxMessage.Kind, to id: String) async throws -> EventReceipt {
        let number = try await store.post(kind, to: id)
        let lease = store.limits.leaseDuration ?? .seconds(30)
        let deadline = ContinuousClock.now + lease * 2 + .seconds(5)
        var pause = Duration.milliseconds(5)
        while ContinuousClock.now < deadline {
            if let outcome = try await store.outcome(of: number) {
                if let refusal = outcome.error {
                    throw ContinuumError(refusal.code, refusal.message, workflowID: id)
                }
                return EventReceipt(workflowID: id, sequence: outcome.sequence ?? 0, duplicate: outcome.duplicate)
            }
            try await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(100))
        }
        throw ContinuumError(
            .storeUnavailable,
            "The request for workflow '\(id)' is queued as inbox message \(number), but the process running the workflow has not taken it yet; it stays queued and is applied when the workflow next runs.",
            workflowID: id)
    }

    /// Applies, until cancelled, the inbox messages this runtime should: those for workflows it
    /// holds or nobody holds.
    func runInbox() async {
        let doorbell = Doorbell()
        await withDiscardingTaskGroup { group in
            // The store's notices ring the doorbell; without them the loop looks every interval.
            group.addTask {
                for await _ in self.store.inboxNotices() { doorbell.ring() }
            }
            await applyInbox(waking: doorbell)
            group.cancelAll()
        }
    }

    private func applyInbox(waking doorbell: Doorbell) async {
        while !Task.isCancelled {
            await doorbell.wait(upTo: Self.inboxInterval)
            if Task.isCancelled { return }  // the runtime is stopping
            let messages: [InboxMessage]
            do {
                messages = try await store.pendingInbox(for: configuration.owner, limit: 256)
            } catch {
                logger.warning("Could not read the inbox: \(error.message)", metadata: [LogKey.errorCode: "\(error.code)"])
                continue
            }
            // One task per workflow, its messages in order; workflows side by side.
            let byWorkflow = Dictionary(grouping: messages, by: \.workflowID)
            await withDiscardingTaskGroup { group in
                for (_, messages) in byWorkflow {
                    group.addTask {
                        for message in messages.sorted(by: { $0.number < $1.number }) {
                            guard await self.apply(message) else { break }
                        }
                    }
                }
            }
        }
    }

    /// Applies one message here and settles it; `false` when another process holds the workflow
    /// now (it applies the message) or the store failed (tried again next round).
    private func apply(_ message: InboxMessage) async -> Bool {
        let outcome: InboxOutcome
        do {
            switch message.kind {
            case .event(let name, let payload, _):
                let receipt = try await deliver(name, to: message.workflowID, json: payload, dedupKey: message.dedupKey)
                outcome = InboxOutcome(sequence: receipt.sequence, duplicate: receipt.duplicate)
            case .cancel(let by, let reason):
                try await cancelHere(message.workflowID, by: by, reason: reason)
                outcome = InboxOutcome()
            }
        } catch let error as ContinuumError {
            switch error.code {
            case .ownershipLost, .storeUnavailable, .storageFull, .storeClosed, .notRunning: return false
            default: outcome = InboxOutcome(refusal: error)
            }
        } catch {
            return false
        }
        do {
            try await store.settle(message.number, with: outcome)
            return true
        } catch {
            logger.warning("Could not settle inbox message \(message.number): \(error.message)", metadata: [LogKey.workflowID: "\(message.workflowID)"])
            return false
        }
    }
}
