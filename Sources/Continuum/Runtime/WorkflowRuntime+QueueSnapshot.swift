/// One configured queue as it stands: its limits, and how much of it is used.
///
/// On a store that shares queues between processes (``EventStore/sharedQueues``) the counts
/// are the store's, across every process; otherwise they are those of the gauges
/// `continuum_queue_running` and `continuum_queue_waiting`, read from this runtime's memory.
package struct QueueSnapshot: Sendable, Hashable {
    /// The queue's name, as ``WorkflowRuntime/Configuration/queues`` names it.
    package var name: String
    /// Its configured limits.
    package var limits: QueueLimits
    /// How many hold one of its slots now (workflow bodies and steps).
    package var running: Int
    /// How many wait for a slot.
    package var waiting: Int
    /// How many hold a slot, per partition key that holds any.
    package var partitions: [String: Int]
    /// Whether the counts cover every process sharing the store (`false`: this process only).
    package var shared: Bool
}

extension WorkflowRuntime {
    /// Every configured queue, by name, with how many run on it and how many wait now: a
    /// read-only view for the dashboard (a queue no work has used yet shows zeros).
    ///
    /// - Throws: A storage error when a shared store could not be read.
    package func queueSnapshot() async throws -> [QueueSnapshot] {
        let shared = queueGate.shared != nil
        var load: [String: (running: Int, waiting: Int, partitions: [String: Int])] = [:]
        if shared, let queues = store.sharedQueues {
            for (name, used) in try await queues.queueLoad() { load[name] = (used.running, used.waiting, used.partitions) }
        } else {
            load = queueGate.load()
        }
        return configuration.queues.sorted { $0.key < $1.key }.map { name, limits in
            let used = load[name]
            return QueueSnapshot(
                name: name, limits: limits, running: used?.running ?? 0, waiting: used?.waiting ?? 0, partitions: used?.partitions ?? [:],
                shared: shared)
        }
    }
}
