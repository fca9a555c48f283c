/// One configured queue as it stands in this process: its limits, and how much of it is used.
///
/// The counts are those of the gauges `continuum_queue_running` and `continuum_queue_waiting`,
/// read from the runtime's memory: they cover this process only (each process applies the
/// limits on its own).
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
}

extension WorkflowRuntime {
    /// Every configured queue, by name, with how many run on it and how many wait now: a
    /// read-only view for the dashboard (a queue no work has used yet shows zeros).
    package func queueSnapshot() -> [QueueSnapshot] {
        let load = queueGate.load()
        return configuration.queues.sorted { $0.key < $1.key }.map { name, limits in
            let used = load[name]
            return QueueSnapshot(
                name: name, limits: limits, running: used?.running ?? 0, waiting: used?.waiting ?? 0, partitions: used?.partitions ?? [:])
        }
    }
}
