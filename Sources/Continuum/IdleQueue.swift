import Synchronization

/// Workflows that became idle, oldest first, for the runtime's reaper to park.
///
/// An instance adds itself each time it becomes idle; the reaper takes those idle long enough
/// and asks each to leave memory (one that got busy again declines, and adds itself again the
/// next time it is idle). The reaper's work is proportional to the workflows it parks, not to
/// every workflow in memory.
final class IdleQueue: Sendable {
    private struct Entry {
        var since: ContinuousClock.Instant
        var instance: WorkflowInstance
    }

    private struct Queue {
        var entries: [Entry] = []
        var head = 0
    }

    private let queue = Mutex(Queue())

    /// Records that `instance` became idle at `since` (times only move forward).
    func add(_ instance: WorkflowInstance, since: ContinuousClock.Instant) {
        queue.withLock { $0.entries.append(Entry(since: since, instance: instance)) }
    }

    /// Takes every instance that became idle at or before `cutoff`.
    func take(idleSince cutoff: ContinuousClock.Instant) -> [WorkflowInstance] {
        queue.withLock { queue in
            var taken: [WorkflowInstance] = []
            while queue.head < queue.entries.count, queue.entries[queue.head].since <= cutoff {
                taken.append(queue.entries[queue.head].instance)
                queue.head += 1
            }
            // Drop the taken prefix once it is most of the storage.
            if queue.head > 1024 && queue.head * 2 > queue.entries.count {
                queue.entries.removeFirst(queue.head)
                queue.head = 0
            }
            return taken
        }
    }
}
