import DequeModule
import Synchronization

/// Lets the workflows found at recovery start a bounded number at a time.
///
/// Recovery finds every workflow that was in flight when the process stopped. Launched all at
/// once, each would be loaded, folded and running before the first finished, and a task keeps the
/// frames its deepest call took until it ends: recovering 100,000 in-flight workflows held 1.6 GB
/// at its peak. The pacer lets `limit` of them start at a time; one has its turn until its body
/// first only waits (then it costs what any waiting workflow costs), its driver ends, or `hold`
/// has passed since it started (a step that runs for long, or one waiting for another workflow
/// that is still queued here, cannot hold recovery back for longer).
///
/// Turns are ended by workflow id (``end(_:)``), which the instance and the driver call for every
/// workflow: one atomic load when no turn is running (the feeder ends every turn before it
/// returns), so that nothing is added to every workflow in memory. A turn starts when its launch
/// is handed to the supervisor: when memory is full (`maxResidentWorkflows`), it may pass its
/// hold waiting for room. The workflows still queued are known to it: a timer of theirs that fires meanwhile
/// does not launch a second driver, since their queued launch runs them.
final class RecoveryPacer: Sendable {
    private struct State {
        /// Started and not yet ended, in the order they started.
        var started = Deque<(pace: Pace, at: ContinuousClock.Instant)>()
        var turns: [String: Pace] = [:]
        var queued: Set<String> = []
    }

    /// One recovered workflow's turn, ended once.
    private final class Pace: Sendable {
        let id: String
        let ended = Atomic(false)
        init(id: String) { self.id = id }
    }

    let limit: Int
    let hold: Duration
    private let state = Mutex(State())
    /// How many turns run: read without the lock by every ``end(_:)``.
    private let running = Atomic(0)
    private let bell = Doorbell()

    init(limit: Int, hold: Duration = .seconds(1)) {
        self.limit = max(1, limit)
        self.hold = hold
    }

    /// Whether `id` waits here for its turn.
    func isQueued(_ id: String) -> Bool { state.withLock { $0.queued.contains(id) } }

    /// How many recovered workflows wait for their turn.
    var queuedCount: Int { state.withLock { $0.queued.count } }

    /// How many have their turn now.
    var inside: Int { running.load(ordering: .relaxed) }

    /// Notes that `launches` wait for their turn, before their timers can fire.
    func enqueue(_ launches: [Launch]) {
        state.withLock { state in state.queued.formUnion(launches.map(\.id)) }
    }

    /// Hands each of `launches` (``enqueue(_:)``d) to `assign` as its turn comes, at most
    /// ``limit`` turns at once, then waits until every turn has ended. When the task is
    /// cancelled first, it gives `dropped` the launches it never handed out and ends every turn.
    func feed(_ launches: [Launch], to assign: (Launch) -> Void, dropped: ([Launch]) -> Void) async {
        var next = 0
        defer {
            state.withLock { state in
                // Ended here, so that a driver ending one of them later counts nothing.
                for (pace, _) in state.started { pace.ended.store(true, ordering: .releasing) }
                state.queued = []
                state.started = []
                state.turns = [:]
            }
            running.store(0, ordering: .relaxed)
            if next < launches.count { dropped(Array(launches[next...])) }
        }
        while next < launches.count, !Task.isCancelled {
            var room = admit()
            if room.count == 0 {
                await bell.wait(upTo: room.retry)
                room = admit()
            }
            for _ in 0..<min(room.count, launches.count - next) {
                let launch = launches[next]
                next += 1
                let pace = Pace(id: launch.id)
                state.withLock { state in
                    state.queued.remove(launch.id)
                    state.started.append((pace, .now))
                    state.turns[launch.id] = pace
                }
                running.add(1, ordering: .relaxed)
                assign(launch)
            }
        }
        // Turns still running end as they would (or after the hold), and then every workflow's
        // first wait costs one atomic load again.
        while running.load(ordering: .relaxed) > 0, !Task.isCancelled {
            await bell.wait(upTo: admit().retry)
        }
    }

    /// Ends the turn of workflow `id`, if it has one: its body only waits, or it left memory.
    func end(_ id: String) {
        guard running.load(ordering: .relaxed) > 0 else { return }
        guard let pace = state.withLock({ $0.turns[id] }) else { return }
        end(pace)
    }

    private func end(_ pace: Pace) {
        guard !pace.ended.exchange(true, ordering: .acquiringAndReleasing) else { return }
        state.withLock { state in
            if state.turns[pace.id] === pace { state.turns[pace.id] = nil }
        }
        // Once an eighth of the places are free, the feeder goes on.
        let left = running.subtract(1, ordering: .relaxed).newValue
        if left <= limit - max(1, limit / 8) { bell.ring() }
    }

    /// How many may start now, after ending the turns that lasted ``hold``; when none, how long
    /// until the oldest turn does.
    private func admit() -> (count: Int, retry: Duration) {
        let now = ContinuousClock.now
        let expired = state.withLock { state -> [Pace] in
            var expired: [Pace] = []
            while let first = state.started.first, first.pace.ended.load(ordering: .acquiring) || now - first.at >= hold {
                state.started.removeFirst()
                expired.append(first.pace)
            }
            return expired
        }
        for pace in expired { end(pace) }
        let retry = state.withLock { state in state.started.first.map { hold - (now - $0.at) } ?? hold }
        return (max(0, limit - running.load(ordering: .relaxed)), max(retry, .milliseconds(1)))
    }
}
