import Logging

/// Reads the timers of parked workflows from the store's due-time index into the timer wheel,
/// one horizon ahead: at start-up everything overdue plus the next stretch, in due order, then
/// the next stretch whenever half a horizon has passed. Timers further out are never read
/// until their time comes, so start-up does not grow with the number of sleepers.
///
/// A read that fails after start-up (a store over a network that lost its connection) is
/// retried every second until it succeeds; the wheel keeps what it has meanwhile.
struct TimerHorizonLoader: Sendable {
    let store: any EventStore
    let timers: TimerService
    let clock: any WorkflowClock
    let logger: Logger
    /// How far ahead timers are read, in nanoseconds (at least 2 ms).
    let horizon: Int64
    static let pageSize = 1024

    init(store: any EventStore, timers: TimerService, horizon: Duration, logger: Logger) {
        self.store = store
        self.logger = logger
        self.timers = timers
        self.clock = timers.clock
        self.horizon = max(horizon.wholeNanoseconds, 2_000_000)
    }

    /// Reads the timers after `after` due up to one horizon from now into the wheel; returns
    /// where it stopped.
    func load(after: DueTimer?) async throws(ContinuumError) -> DueTimer? {
        let until = clock.now() + horizon
        // Claimed before reading: a workflow parked from now on with a timer due by `until`
        // schedules its own wake-up, so none falls between the read and the claim.
        timers.claimHorizon(until)
        var after = after
        while true {
            let page = try await store.timers(after: after, limit: Self.pageSize)
            for timer in page {
                if timer.due > until { return after }
                timers.scheduleWake(timer.id, at: timer.due)
                after = timer
            }
            if page.count < Self.pageSize { return after }
        }
    }

    /// Reads the next stretch whenever half a horizon has passed, until cancelled.
    func run(after start: DueTimer?) async {
        var after = start
        while !Task.isCancelled {
            do {
                // On the clock, not the wheel: the wheel's timers are the workflows'.
                try await clock.sleep(until: timers.loadedHorizon - horizon / 2)
            } catch {
                return  // the runtime is stopping
            }
            while !Task.isCancelled {
                do {
                    after = try await load(after: after)
                    break
                } catch {
                    if Task.isCancelled { return }
                    logger.warning(
                        "Could not read the timer index; retrying in a second: \(error.message)",
                        metadata: [WorkflowRuntime.LogKey.errorCode: "\(error.code)"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }
}
