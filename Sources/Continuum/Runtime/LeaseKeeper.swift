import Logging

/// Renews the claims of the workflows in memory, all in one call, a few times per lease, for
/// stores whose claims expire (``StoreLimits/leaseDuration``). A claim the store reports lost
/// makes its instance leave memory: another process owns the workflow now. After each round it
/// takes over the runnable workflows nobody holds (their owner died, or lost its lease).
struct LeaseKeeper: Sendable {
    let store: any EventStore
    let clock: any WorkflowClock
    let lease: Duration
    let logger: Logger
    /// The instances in memory.
    let residents: @Sendable () -> [WorkflowInstance]
    /// Launches a workflow found runnable, unless this runtime drives it already.
    let adopt: @Sendable (String) -> Void

    func run() async {
        let period = max(lease.wholeNanoseconds / 3, 1_000_000)
        while !Task.isCancelled {
            do {
                try await clock.sleep(until: clock.now() + period)
            } catch {
                return  // the runtime is stopping
            }
            let instances = residents().filter { $0.claim != nil }
            do {
                let lost = Set(try await store.renew(instances.compactMap(\.claim)))
                for instance in instances where instance.claim.map(lost.contains) == true {
                    await instance.ownershipLost()
                }
            } catch {
                logger.warning("Could not renew claims: \(error.message)", metadata: [WorkflowRuntime.LogKey.errorCode: "\(error.code)"])
            }
            await adoptRunnable()
        }
    }

    /// Launches every runnable workflow: running, not parked, and held by no live claim.
    private func adoptRunnable() async {
        var after: StreamID?
        do {
            while true {
                let page = try await store.runnable(after: after, limit: 500)
                for row in page { adopt(row.summary.id) }
                guard page.count == 500, let last = page.last else { return }
                after = last.stream
            }
        } catch {
            logger.warning("Could not list runnable workflows: \(error.message)", metadata: [WorkflowRuntime.LogKey.errorCode: "\(error.code)"])
        }
    }
}
