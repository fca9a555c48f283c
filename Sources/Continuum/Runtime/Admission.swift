import DequeModule
import Synchronization

/// Bounds how many workflows are in memory at once: a workflow launched over the limit waits
/// (durably stored, costing nothing) until another leaves memory by finishing or being parked.
final class Admission: Sendable {
    private struct State {
        var inside = 0
        var waiting = Deque<CheckedContinuation<Void, Never>>()
    }

    let limit: Int
    private let state = Mutex(State())

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    /// Waits for room, then takes it. Every `enter` is paired with one `leave`.
    func enter() async {
        // Room is there nearly always: then no continuation (and its allocation) is made.
        if tryEnter() { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let admitted = state.withLock { state -> Bool in
                if state.inside < limit && state.waiting.isEmpty {
                    state.inside += 1
                    return true
                }
                state.waiting.append(continuation)
                return false
            }
            if admitted { continuation.resume() }
        }
    }

    /// Takes room when there is some and nobody waits for it.
    private func tryEnter() -> Bool {
        state.withLock { state in
            guard state.inside < limit && state.waiting.isEmpty else { return false }
            state.inside += 1
            return true
        }
    }

    /// Gives room back, to the longest waiter when there is one.
    func leave() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let next = state.waiting.popFirst() else {
                state.inside -= 1
                return nil
            }
            // The room passes straight to the waiter: `inside` stays the same.
            return next
        }
        next?.resume()
    }

    /// How many are in memory (admitted and not yet left).
    var inside: Int { state.withLock { $0.inside } }

    /// How many more would be admitted at once: the limit less those inside and those waiting.
    var room: Int { state.withLock { max(0, limit - $0.inside - $0.waiting.count) } }

    /// How many wait for room.
    var queued: Int { state.withLock { $0.waiting.count } }
}
