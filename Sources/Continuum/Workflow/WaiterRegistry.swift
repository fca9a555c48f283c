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
        var key: StepKey
        var continuation: Continuation
    }
    /// In the order they began waiting. A workflow waits in a few waits at most (most in one),
    /// so a list is searched, which holds less than a dictionary.
    private let entries = Mutex<[Entry]>([])

    func register(_ key: StepKey, _ continuation: Continuation) {
        entries.withLock { entries in
            assert(!entries.contains { $0.key == key }, "two tasks wait for \(key)")
            entries.append(Entry(key: key, continuation: continuation))
        }
        // Checked after inserting: a cancellation handler that ran before found nothing to resume.
        if Task.isCancelled { resume(key, with: .failure(CancellationError())) }
    }

    /// The keys waiting now.
    var keys: [StepKey] { entries.withLock { $0.map(\.key) } }

    func resume(_ key: StepKey, with result: Result<Wake, any Error>) {
        take(key)?.resume(with: result)
    }

    /// Removes the task waiting for `key`, for the caller to resume once what ended its wait is
    /// committed: meanwhile neither its timer nor anything else can resume it.
    func take(_ key: StepKey) -> Continuation? {
        entries.withLock { entries in
            entries.firstIndex { $0.key == key }.map { entries.remove(at: $0).continuation }
        }
    }

    /// The longest-waiting key matching `predicate`.
    func oldestWaiting(where predicate: (StepKey) -> Bool) -> StepKey? {
        entries.withLock { entries in entries.first { predicate($0.key) }?.key }
    }

    func failAll(_ error: any Error) {
        let all = entries.withLock { entries in
            defer { entries = [] }
            return entries
        }
        for entry in all { entry.continuation.resume(throwing: error) }
    }
}
