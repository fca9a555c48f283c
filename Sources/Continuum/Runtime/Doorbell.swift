import Synchronization

/// Wakes one waiting loop early: rings between waits are remembered (as one), and a wait ends
/// at a ring or after its timeout, whichever comes first.
final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiter: CheckedContinuation<Void, Never>?
        /// The wait the pending waiter belongs to, so a timeout ends only its own wait.
        var generation: UInt64 = 0
    }

    private let state = Mutex(State())

    /// Wakes the waiting loop, or the next wait if none is waiting.
    func ring() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.rung = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Returns at the next ring (at once if one came since the last wait), or after `timeout`.
    func wait(upTo timeout: Duration) async {
        let generation = state.withLock { state in
            state.generation += 1
            return state.generation
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let now = self.state.withLock { state -> Bool in
                        // Rung already, or this wait already timed out: do not wait.
                        if state.rung || state.generation != generation {
                            state.rung = false
                            return true
                        }
                        state.waiter = continuation
                        return false
                    }
                    if now { continuation.resume() }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
            }
            await group.next()
            group.cancelAll()
            // End this wait's waiter if the timer (or cancellation) came first.
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                state.generation += 1
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }
}
