import DequeModule
import Synchronization

/// Lets the workflows found at recovery start a bounded number at a time.
///
/// Recovery finds every workflow that was in flight when the process stopped. Launched all at
/// once, each would be loaded, folded and running before the first finished, and a task keeps the
/// frames its deepest call took until it ends: recovering 100,000 in-flight workflows held 1.6 GB
/// at its peak. The pacer lets `limit` of them start at a time; one counts until its body first
/// only waits (then it costs what any waiting workflow costs), it leaves memory, or `hold` has
/// passed since it started (a step that runs for long, or one waiting for another workflow that
/// is still queued here, cannot hold recovery back for longer).
///
/// The workflows still queued are known to it: a timer of theirs that fires meanwhile does not
/// launch a second driver, since their queued launch runs them.
final class RecoveryPacer: Sendable {
    private struct State {
        /// Started and not yet ended, in the order they started.
        var started = Deque<(pace: RecoveryPace, at: ContinuousClock.Instant)>()
        var inside = 0
        var queued: Set<String> = []
    }

    let limit: Int
    let hold: Duration
    private let state = Mutex(State())
    private let bell = Doorbell()

    init(limit: Int, hold: Duration = .seconds(1)) {
        self.limit = max(1, limit)
        self.hold = hold
    }

    /// Whether `id` waits here for its turn.
    func isQueued(_ id: String) -> Bool { state.withLock { $0.queued.contains(id) } }

    /// How many recovered workflows wait for their turn.
    var queuedCount: Int { state.withLock { $0.queued.count } }

    /// How many started and have not yet ended their turn.
    var inside: Int { state.withLock { $0.inside } }

    /// Notes that `launches` wait for their turn, before their timers can fire.
    func enqueue(_ launches: [Launch]) {
        state.withLock { state in state.queued.formUnion(launches.map(\.id)) }
    }

    /// Hands each of `launches` (``enqueue(_:)``d) to `assign` with a pace of its own, at most
    /// ``limit`` unended at once; returns early when the task is cancelled (the rest are
    /// recovered by the next run).
    func feed(_ launches: [Launch], to assign: (Launch) -> Void) async {
        defer { state.withLock { $0.queued = [] } }
        var next = 0
        while next < launches.count, !Task.isCancelled {
            var room = admit()
            if room.count == 0 {
                await bell.wait(upTo: room.retry)
                room = admit()
            }
            for _ in 0..<min(room.count, launches.count - next) {
                var launch = launches[next]
                next += 1
                let pace = RecoveryPace(pacer: self)
                launch.pace = pace
                state.withLock { state in
                    state.queued.remove(launch.id)
                    state.started.append((pace, .now))
                    state.inside += 1
                }
                assign(launch)
            }
        }
    }

    /// How many may start now, after ending the turns that lasted ``hold``; when none, how long
    /// until the oldest turn does.
    private func admit() -> (count: Int, retry: Duration) {
        let now = ContinuousClock.now
        let expired = state.withLock { state -> [RecoveryPace] in
            var expired: [RecoveryPace] = []
            while let first = state.started.first, first.pace.isEnded || now - first.at >= hold {
                state.started.removeFirst()
                if !first.pace.isEnded { expired.append(first.pace) }
            }
            return expired
        }
        for pace in expired { pace.end() }
        return state.withLock { state in
            let retry = state.started.first.map { hold - (now - $0.at) } ?? hold
            return (max(0, limit - state.inside), max(retry, .milliseconds(1)))
        }
    }

    /// A turn ended: once an eighth of the places are free, the feeder goes on.
    fileprivate func ended() {
        let ring = state.withLock { state in
            state.inside -= 1
            return state.inside <= limit - max(1, limit / 8)
        }
        if ring { bell.ring() }
    }
}

/// One recovered workflow's turn at the ``RecoveryPacer``: ended once, by whichever comes
/// first — its body only waits, its driver ends, or the pacer's hold passes.
final class RecoveryPace: Sendable {
    private let pacer: RecoveryPacer
    private let done = Atomic(false)

    fileprivate init(pacer: RecoveryPacer) { self.pacer = pacer }

    var isEnded: Bool { done.load(ordering: .acquiring) }

    /// Ends the turn; later calls do nothing.
    func end() {
        guard !done.exchange(true, ordering: .acquiringAndReleasing) else { return }
        pacer.ended()
    }
}
