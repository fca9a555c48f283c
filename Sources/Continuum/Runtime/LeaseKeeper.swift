import Logging
import Synchronization

/// Claims taken in batches (recovery, adoption) for workflows not driven yet: the lease keeper
/// renews them with the instances' own until their drivers end, so that a long queue of
/// launches does not let them lapse (another process would take them, and the work done here
/// would be refused).
final class PendingClaims: Sendable {
    private let claims = Mutex<[String: Claim]>([:])

    func insert(_ claim: Claim, for id: String) { claims.withLock { $0[id] = claim } }

    /// The driver of `id` ended (or never started): its instance renewed the claim meanwhile.
    func remove(_ id: String) { _ = claims.withLock { $0.removeValue(forKey: id) } }

    var all: [Claim] { claims.withLock { Array($0.values) } }
}

/// Renews the claims of the workflows in memory, all in one call, three times per lease, for
/// stores whose claims expire (``StoreLimits/leaseDuration``). A claim the store reports lost
/// makes its instance leave memory: another process owns the workflow now. Every
/// ``adoptionInterval`` (or more often, with a short lease) it claims the work nobody does —
/// running workflows whose owner died or lost its lease, and parked ones whose timer is overdue
/// by ``overdue`` (their process died before it came due) — so that they move to a live process
/// within about a lease and a second of their owner's death. The same round answers those
/// waiting for workflows this process does not drive, once another process finished them.
struct LeaseKeeper: Sendable {
    let store: any EventStore
    let clock: any WorkflowClock
    let lease: Duration
    let owner: OwnerID
    let logger: Logger
    /// The instances in memory.
    let residents: @Sendable () -> [WorkflowInstance]
    /// Claims of launches not driven yet.
    let pending: PendingClaims
    /// How many more workflows memory has room for now; a round claims no more than that.
    let room: @Sendable () -> Int
    /// Launches a workflow claimed for this runtime.
    let adopt: @Sendable (ClaimedWorkflow) -> Void
    /// Answers those waiting for workflows another process runs, once the store has their outcome.
    let settleAwaited: @Sendable () async -> Void

    /// How often work nobody does is looked for, at most.
    static let adoptionInterval: Int64 = 1_000_000_000
    /// How late a parked workflow's timer must be before another process than the one that
    /// parked it claims it: that process fires it on time while it lives.
    static let overdue: Duration = .seconds(1)
    /// The most workflows claimed in one statement.
    static let claimBatch = 256

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
            await settleAwaited()
        }
    }

    /// Renews every claim held in memory; instances whose claim was lost leave memory.
    private func renewClaims() async {
        let instances = residents().filter { $0.claim != nil }
        let claims = Set(instances.compactMap(\.claim)).union(pending.all)
        guard !claims.isEmpty else { return }
        do {
            let lost = Set(try await store.renew(Array(claims)))
            for instance in instances where instance.claim.map(lost.contains) == true {
                await instance.ownershipLost()
            }
        } catch where Task.isCancelled {
            return  // the runtime is stopping
        } catch {
            logger.warning("Could not renew claims: \(error.message)", metadata: [WorkflowRuntime.LogKey.errorCode: "\(error.code)"])
        }
    }

    /// Claims and launches the work nobody does, a batch at a time, while memory has room.
    private func adoptRunnable() async {
        // Launches take a moment to reach admission: this round's claims count against the
        // room it started with.
        var budget = room()
        do {
            while budget > 0 {
                let limit = min(Self.claimBatch, budget)
                let claimed = try await store.claimAvailable(owner: owner, overdue: Self.overdue, limit: limit)
                for workflow in claimed { adopt(workflow) }
                budget -= claimed.count
                guard claimed.count == limit else { return }
            }
        } catch where Task.isCancelled {
            return  // the runtime is stopping
        } catch {
            logger.warning("Could not claim available workflows: \(error.message)", metadata: [WorkflowRuntime.LogKey.errorCode: "\(error.code)"])
        }
    }
}
