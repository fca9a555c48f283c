import Logging

/// Renews the claims of the workflows in memory, all in one call, three times per lease, for
/// stores whose claims expire (``StoreLimits/leaseDuration``). A claim the store reports lost
/// makes its instance leave memory: another process owns the workflow now. Every
/// ``adoptionInterval`` (or more often, with a short lease) it takes over the runnable workflows
/// nobody holds — their owner died, or lost its lease — so they move to a live process within
/// about a lease and a second of their owner's death.
struct LeaseKeeper: Sendable {
    let store: any EventStore
    let clock: any WorkflowClock
    let lease: Duration
    let logger: Logger
    /// The instances in memory.
    let residents: @Sendable () -> [WorkflowInstance]
    /// Launches a workflow found runnable, unless this runtime drives it already.
    let adopt: @Sendable (String) -> Void

    /// How often runnable workflows are looked for, at most.
    static let adoptionInterval: Int64 = 1_000_000_000

    func run() async {
        let renewal = max(lease.wholeNanoseconds / 3, 1_000_000)
        let period = min(renewal, Self.adoptionInterval)
        var renewed = clock.now()
        while !Task.isCancelled {
            do {
                try await clock.sleep(until: clock.now() + period)
            } catch {
                return  // the runtime is stopping
            }
            if clock.now() - renewed >= renewal {
                renewed = clock.now()
                await renewClaims()
            }
            await adoptRunnable()
        }
    }

    /// Renews every claim held in memory; instances whose claim was lost leave memory.
    private func renewClaims() async {
        let instances = residents().filter { $0.claim != nil }
        do {
            let lost = Set(try await store.renew(instances.compactMap(\.claim)))
            for instance in instances where instance.claim.map(lost.contains) == true {
                await instance.ownershipLost()
            }
        } catch {
            logger.warning("Could not renew claims: \(error.message)", metadata: [WorkflowRuntime.LogKey.errorCode: "\(error.code)"])
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
