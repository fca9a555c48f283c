import Synchronization

/// The identity of the running task (its address), for telling the body from its children.
func currentTaskIdentity() -> Int {
    withUnsafeCurrentTask { $0?.hashValue ?? 0 }
}


/// The tasks of one workflow waiting in a wait (a sleep, an event wait), each resumed exactly
/// once: by a delivery, its timer, a cancellation or suspension, or its own task's cancellation
/// (which runs outside the actor).
final class WaiterRegistry: Sendable {
    /// What resumes a waiting task.
    enum Wake: Sendable {
        /// The wait ended, committed: how, and for a delivered event its payload.
        case ended(WaitOutcome, [UInt8]?)
        /// The wait's timer fired at this time (nanoseconds since 1970): the task itself records
        /// how that ends the wait, unless something else ended it first.
        case timerFired(at: Int64)
    }
    typealias Continuation = CheckedContinuation<Wake, any Error>
    private struct Entry {
        var order: UInt64
        var continuation: Continuation
    }
    private struct Entries {
        var byKey: [StepKey: Entry] = [:]
        var next: UInt64 = 0
    }
    private let entries = Mutex(Entries())

    func register(_ key: StepKey, _ continuation: Continuation) {
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

    func resume(_ key: StepKey, with result: Result<Wake, any Error>) {
        take(key)?.resume(with: result)
    }

    /// Removes the task waiting for `key`, for the caller to resume once what ended its wait is
    /// committed: meanwhile neither its timer nor anything else can resume it.
    func take(_ key: StepKey) -> Continuation? {
        entries.withLock { $0.byKey.removeValue(forKey: key) }?.continuation
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
