import Logging
import ServiceLifecycle

extension WorkflowRuntime {
    /// Recovers every unfinished workflow, then drives started workflows until cancelled or,
    /// run in a swift-service-lifecycle `ServiceGroup`, until a graceful shutdown.
    ///
    /// A graceful shutdown stops taking new work (workflows started from then on are stored and
    /// begin at the next run), stops every workflow where it is, lets the appends already
    /// submitted commit, and closes the store: the process is about to end.
    ///
    /// ```swift
    /// let group = ServiceGroup(services: [runtime, httpServer], gracefulShutdownSignals: [.sigterm], logger: logger)
    /// try await group.run()
    /// ```
    ///
    /// - Throws: ``ContinuumError`` when the store cannot list unfinished workflows;
    ///   ``ContinuumError/Code/alreadyRunning`` when the runtime is already running.
    public func run() async throws {
        let launcher = try begin()
        try await cancelWhenGracefulShutdown { try await self.serve(launcher) }
        if Task.isShuttingDownGracefully {
            // Every workflow task has ended, so nothing more is submitted; closing lets the
            // store commit what is queued, then releases it.
            await store.close()
            logger.info("Continuum runtime shut down gracefully")
        }
    }

    /// Creates a runtime on `store`, runs it for the duration of `body`, then stops it; a
    /// scoped form for scripts and tests. The store stays open.
    ///
    /// ```swift
    /// let total = try await WorkflowRuntime.withRuntime(store: store, workflows: [Checkout()]) { runtime in
    ///     try await runtime.start(Checkout.self, id: "order-7", input: order).result()
    /// }
    /// ```
    public static func withRuntime<R>(
        store: any EventStore, workflows: [any Workflow], configuration: Configuration = .init(),
        _ body: (WorkflowRuntime) async throws -> R
    ) async throws -> R {
        try await WorkflowRuntime(store: store, workflows: workflows, configuration: configuration).withRunning(body)
    }

    /// Runs the runtime for the duration of `body`, then stops it.
    ///
    /// ```swift
    /// let total = try await runtime.withRunning { runtime in
    ///     try await runtime.start(Checkout.self, id: "order-7", input: order).result()
    /// }
    /// ```
    public func withRunning<R>(_ body: (WorkflowRuntime) async throws -> R) async throws -> R {
        // Running before `body` starts, so a result it waits for cannot look "not running".
        let launcher = try begin()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.serve(launcher) }
            let result: Result<R, any Error>
            do {
                result = .success(try await body(self))
            } catch {
                result = .failure(error)
            }
            group.cancelAll()
            // Surfaces an error that ended run() early (a store that cannot be read, say).
            try await group.waitForAll()
            return try result.get()
        }
    }

    /// Whether ``run()`` is serving: it has found every workflow that was running (recovery then
    /// starts them ``Configuration/recoveryConcurrency`` at a time) and read the first horizon of
    /// parked workflows' timers. A readiness probe can report this.
    public var isReady: Bool { state.withLock { $0.isReady } }

    /// Marks the runtime running and opens the lanes `start` hands new workflows to.
    private func begin() throws(ContinuumError) -> Launcher {
        let launcher = Launcher()
        try state.withLock { (machine: inout RuntimeState.Machine) throws(ContinuumError) in try machine.start(launcher) }
        return launcher
    }

    /// Recovers, then runs the services and drives every launched workflow until cancelled.
    private func serve(_ launcher: Launcher) async throws {
        // Every driver has ended by then: whoever still waits learns that nothing will answer in
        // this run, and a launch handed over late is dropped (the next run recovers it).
        defer {
            launcher.finish()
            state.stop()
        }
        do {
            try await serveUntilStopped(launcher)
        } catch where Task.isCancelled {
            // Stopping: a store read cut short by the cancellation (a network store's reads
            // throw when cancelled) is not a failure of the run.
            logger.debug("Stopped while reading the store: \(error)")
        }
    }

    private func serveUntilStopped(_ launcher: Launcher) async throws {
        let supervisor = Supervisor(launcher: launcher, admission: admission, resident: metrics.resident)
        let driver = self.driver
        // Timers fire from a thread of their own, so they keep time however busy the pool is.
        let timerThread = ThreadExecutor(name: "continuum-timer")
        defer { timerThread.shutdown() }
        // The group's tasks serve until the run is cancelled (or one of them throws); the body
        // only starts them.
        try await withThrowingDiscardingTaskGroup { group in
            supervisor.start(in: &group) { await driver.drive($0) }
            // Parked workflows wait in the store for their timer or event; only runnable ones
            // resume now, a bounded number at a time.
            let recovered = try await recover()
            let (pacer, pendingClaims) = (self.pacer, self.pendingClaims)
            pacer.enqueue(recovered)
            group.addTask {
                await pacer.feed(recovered) { launch in
                    launcher.yield(launch)
                } dropped: { unfed in
                    // Stopped first: their claims lapse, for this runtime's next run or another process.
                    for launch in unfed where launch.pending { pendingClaims.remove(launch.id) }
                }
            }
            // Everything overdue is read now, in due order, so it fires first.
            let loader = TimerHorizonLoader(store: store, timers: timers, horizon: configuration.timerHorizon, logger: logger)
            let horizon = try await loader.load(after: nil)
            group.addTask { await loader.run(after: horizon) }
            metrics.suspended.set(try await store.counts()[.suspended])
            state.withLock { $0.becameReady() }
            logger.info("Continuum runtime started", metadata: [LogKey.recovered: "\(recovered.count)"])
            group.addTask(executorPreference: timerThread) { [timers, state, pacer] in
                await timers.run(on: timerThread) { id in
                    // A parked or dormant workflow's timer came due: rebuild or wake it, unless its
                    // task is in memory (then it fires its own) or recovery is about to start it.
                    if state.withLock({ $0.needsWake(id) }) && !pacer.isQueued(id) { state.launch(Launch(id: id, wake: true)) }
                }
            }
            if let parkAfter = configuration.parkAfter {
                let service = ParkingService(queue: parking, clock: configuration.clock, after: parkAfter)
                group.addTask { await service.run() }
            }
            if let dormantAfter = configuration.dormantAfter {
                let service = ParkingService(queue: dormancy, clock: configuration.clock, after: dormantAfter, action: .rest)
                group.addTask { await service.run() }
            }
            let retrier = StorageRetrier(
                clock: configuration.clock, interval: configuration.storageRetryInterval, logger: logger,
                takeStopped: { [state] in state.withLock { $0.takeStoppedByStore() } },
                relaunch: { [state] id in state.launch(Launch(id: id, wake: true)) })
            group.addTask { await retrier.run() }
            if let lease = store.limits.leaseDuration {
                let keeper = LeaseKeeper(
                    store: store, clock: configuration.clock, lease: lease, owner: configuration.owner, logger: logger,
                    residents: { [state] in state.withLock { $0.instances } },
                    pending: pendingClaims,
                    room: { [admission, pacer] in max(0, admission.room - pacer.queuedCount) },
                    adopt: { [state, logger, pendingClaims] workflow in
                        // Driven here already: under the same token (a lapsed lease of this
                        // runtime's, now extended), or under an older one this claim superseded
                        // (another process took it and died meanwhile), whose run finds its appends
                        // refused and leaves; the store hands the claim back to this runtime, token
                        // kept, once it lapses.
                        if state.withLock({ $0.isClaimed(workflow.id) }) {
                            logger.debug("Claimed a workflow this runtime drives", metadata: [LogKey.workflowID: "\(workflow.id)"])
                        } else {
                            pendingClaims.insert(workflow.claim, for: workflow.id)
                            state.launch(Launch(id: workflow.id, wake: true, claim: workflow.claim, pending: true))
                        }
                    },
                    settleAwaited: { await self.settleAwaitedElsewhere() })
                group.addTask { await keeper.run() }
                // Shared stores carry events and cancellations between processes.
                group.addTask { await self.runInbox() }
            }
            // Queues a shared store keeps: their pumps admit the work waiting here.
            if let shared = queueGate.shared {
                group.addTask { await shared.run(notices: shared.store.queueNotices()) }
            }
        }
    }

    /// The launches of every runnable workflow, read page by page.
    ///
    /// On a shared store it claims them a page at a time (``EventStore/claimAvailable(owner:overdue:limit:)``:
    /// one statement per page, rather than one claim per workflow), with the parked ones whose
    /// timer is due, as much as memory has room for; the lease keeper takes the rest later.
    private func recover() async throws(ContinuumError) -> [Launch] {
        var after: StreamID?
        var recovered: [Launch] = []
        let pageSize = max(1, configuration.recoveryPageSize)
        if store.limits.leaseDuration != nil {
            var budget = admission.room
            while budget > 0 {
                let limit = min(pageSize, budget)
                let page = try await store.claimAvailable(owner: configuration.owner, overdue: .zero, limit: limit)
                for workflow in page {
                    pendingClaims.insert(workflow.claim, for: workflow.id)
                    recovered.append(Launch(id: workflow.id, wake: true, claim: workflow.claim, pending: true))
                }
                budget -= page.count
                guard page.count == limit else { break }
            }
            return recovered
        }
        while true {
            let page = try await store.runnable(after: after, limit: pageSize)
            recovered += page.map { Launch(id: $0.summary.id) }
            guard page.count == pageSize, let last = page.last else { return recovered }
            after = last.stream
        }
    }
}
