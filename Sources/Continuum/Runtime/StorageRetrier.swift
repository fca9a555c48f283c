import Logging

/// Relaunches, every ``WorkflowRuntime/Configuration/storageRetryInterval``, the workflows a
/// full disk or map, or an unreachable store, stopped; one that fails again is stopped again
/// until the next try, and the tries slow down (up to every 5 seconds) while the store stays
/// full or out of reach. A relaunch replays from the store, so a write whose acknowledgement
/// was lost with the connection is read back, never made twice.
struct StorageRetrier: Sendable {
    let clock: any WorkflowClock
    let interval: Duration
    let logger: Logger
    /// The workflows stopped by a full or unreachable store whose drivers have returned (no longer suspended).
    let takeStopped: @Sendable () -> [String]
    /// Launches one of them again, woken.
    let relaunch: @Sendable (String) -> Void

    /// The longest pause between tries: a database back from a restart, or a disk with room
    /// again, should not wait long for the workflows it stopped.
    static let slowest: Duration = .seconds(5)

    func run() async {
        var delay = interval
        var retried: Set<String> = []
        while !Task.isCancelled {
            do {
                try await clock.sleep(until: clock.now().adding(delay))
            } catch {
                return  // the runtime is stopping
            }
            let stopped = Set(takeStopped())
            // Stopped again after the last try: the store is still full, so try less often.
            delay = stopped.isDisjoint(with: retried) ? interval : min(delay * 2, max(interval, Self.slowest))
            retried = stopped
            guard !stopped.isEmpty else { continue }
            logger.notice("Retrying workflows stopped by a full or unreachable store", metadata: [WorkflowRuntime.LogKey.workflowCount: "\(stopped.count)"])
            for id in stopped.sorted() { relaunch(id) }
        }
    }
}
