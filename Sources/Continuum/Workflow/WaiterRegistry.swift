import Synchronization

/// The identity of the running task (its address), for telling the body from its children.
func currentTaskIdentity() -> Int {
    withUnsafeCurrentTask { $0?.hashValue ?? 0 }
}


/// The tasks of one workflow waiting for an event, each resumed exactly once: by a delivery,
/// a timeout, a suspension, or its own cancellation (which runs outside the actor).
final class WaiterRegistry: Sendable {
    typealias Outcome = (WaitOutcome, [UInt8]?)
    private struct Entry {
        var order: UInt64
        var continuation: CheckedContinuation<Outcome, any Error>
    }
    private struct Entries {
        var byKey: [StepKey: Entry] = [:]
        var next: UInt64 = 0
    }
    private let entries = Mutex(Entries())

    func register(_ key: StepKey, _ continuation: CheckedContinuation<Outcome, any Error>) {
        entries.withLock { entries in
            assert(entries.byKey[key] == nil, "two tasks wait for \(key)")
            entries.next += 1
            entries.byKey[key] = Entry(order: entries.next, continuation: continuation)
        }
        // Checked after inserting: a cancellation handler that ran before found nothing to resume.
        if Task.isCancelled { resume(key, with: .failure(CancellationError())) }
    }

    /// The keys waiting now.
    var keys: [StepKey] { entries.withLock { Array($0.byKey.keys) } }

    func resume(_ key: StepKey, with result: Result<Outcome, any Error>) {
        entries.withLock { $0.byKey.removeValue(forKey: key) }?.continuation.resume(with: result)
    }

    /// The longest-waiting key matching `predicate`.
    func oldestWaiting(where predicate: (StepKey) -> Bool) -> StepKey? {
        entries.withLock { entries in
            entries.byKey.filter { predicate($0.key) }.min { $0.value.order < $1.value.order }?.key
        }
    }

    func failAll(_ error: any Error) {
        let all = entries.withLock { entries in
            defer { entries.byKey = [:] }
            return entries.byKey.values
        }
        for entry in all { entry.continuation.resume(throwing: error) }
    }
}
