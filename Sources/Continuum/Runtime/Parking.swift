import DequeModule
import Synchronization

/// Instances whose body only waits, oldest first, for ``ParkingService`` to park.
///
/// An instance adds itself each time every running call of its body becomes a wait; the service
/// takes those that have waited long enough and asks each to park (one that got busy again
/// declines, and adds itself again the next time it only waits). The service's work is
/// proportional to the workflows it parks, not to every workflow in memory.
final class ParkingQueue: Sendable {
    private struct Entry {
        /// When the instance began to only wait, by the runtime's clock (nanoseconds since 1970).
        var since: Int64
        var instance: WorkflowInstance
    }

    private let queue = Mutex(Deque<Entry>())

    /// Records that `instance` began to only wait at `since` (times only move forward).
    func add(_ instance: WorkflowInstance, since: Int64) {
        queue.withLock { $0.append(Entry(since: since, instance: instance)) }
    }

    /// Takes every instance that began to only wait at or before `cutoff`.
    func take(waitingSince cutoff: Int64) -> [WorkflowInstance] {
        queue.withLock { queue in
            var taken: [WorkflowInstance] = []
            while let first = queue.first, first.since <= cutoff {
                taken.append(queue.removeFirst().instance)
            }
            return taken
        }
    }

    /// How many entries wait (an instance may be in more than once).
    var count: Int { queue.withLock { $0.count } }
}

/// Parks the workflows that have only waited for ``WorkflowRuntime/Configuration/parkAfter``:
/// they release their claim, leave memory, and wait in the store for a timer or an event. Or,
/// as ``Action/rest``, makes those that only waited for ``WorkflowRuntime/Configuration/dormantAfter``
/// dormant: they give up their task and keep their state in memory.
struct ParkingService: Sendable {
    /// What the service does with a workflow that waited long enough.
    enum Action: Sendable {
        /// Park it in the store.
        case park
        /// Make it dormant in memory.
        case rest
    }

    let queue: ParkingQueue
    let clock: any WorkflowClock
    /// How long a workflow only waits before it is parked, in nanoseconds.
    let delay: Int64
    let action: Action
    /// A wait due this soon keeps its workflow as it is: parking it, or putting it to rest,
    /// would cost a replay at once.
    let margin: Int64 = 1_000_000_000

    init(queue: ParkingQueue, clock: any WorkflowClock, after delay: Duration, action: Action = .park) {
        self.queue = queue
        self.clock = clock
        self.delay = max(0, delay.wholeNanoseconds)
        self.action = action
    }

    /// Looks a few times per delay (at least every quarter second of the clock) until cancelled.
    func run() async {
        let period = min(max(delay / 4, 5_000_000), 250_000_000)
        while true {
            do {
                try await clock.sleep(until: clock.now() + period)
            } catch {
                return  // the runtime is stopping
            }
            let cutoff = clock.now() - delay
            let instances = queue.take(waitingSince: cutoff)
            // Many at once, so their releases share commits: one by one, parking fell behind
            // 25,000 sleepers started per second and memory grew without bound.
            for batch in stride(from: 0, to: instances.count, by: 1024) {
                await withDiscardingTaskGroup { group in
                    for instance in instances[batch..<min(batch + 1024, instances.count)] {
                        switch action {
                        case .park: group.addTask { await instance.parkIfWaiting(since: cutoff, margin: margin) }
                        case .rest: group.addTask { await instance.restIfWaiting(since: cutoff, margin: margin) }
                        }
                    }
                }
            }
        }
    }
}
