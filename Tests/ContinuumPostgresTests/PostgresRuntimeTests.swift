@_spi(Testing) import Continuum
@_spi(Testing) import ContinuumPostgres
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Logging
import Testing

/// Step, a three-day sleep, an approval event, step.
struct Approval: Workflow {
    static let name = "approval"
    let ledger: Ledger

    func run(_ ctx: WorkflowContext, input: String) async throws -> String {
        try await ctx.step("request") { ledger.record("request") }
        try await ctx.sleep(for: .seconds(3 * 86_400))
        let by = try await ctx.waitForEvent("approved", as: String.self) ?? "nobody"
        try await ctx.step("notify") { ledger.record("notify") }
        return "\(input) approved by \(by)"
    }
}

/// Three steps, as the benchmark runs them.
struct ThreeSteps: Workflow {
    static let name = "three-steps"

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        let a = try await ctx.step("a") { input + 1 }
        let b = try await ctx.step("b") { a * 2 }
        return try await ctx.step("c") { b - 1 }
    }
}

/// Opens a store in a new schema of the test server, runs `body`, closes the store and drops the schema.
func withPostgresStore<R>(
    clock: (any WorkflowClock)? = nil, configure: (inout PostgresStore.Configuration) -> Void = { _ in },
    _ body: (PostgresStore) async throws -> R
) async throws -> R {
    var configuration = try PostgresStore.Configuration(url: TestPostgres.url())
    configuration.schema = TestPostgres.uniqueSchema("rt")
    configuration.clock = clock
    configure(&configuration)
    return try await PostgresStore.connect(configuration: configuration, logger: testLogger).closing { store in
        let result: Result<R, any Error>
        do {
            result = .success(try await body(store))
        } catch {
            result = .failure(error)
        }
        try? await store.dropSchema()
        return try result.get()
    }
}

@Suite("A runtime on PostgreSQL")
struct PostgresRuntimeTests {
    @Test("runs steps, a durable sleep and an event; a second runtime on a new connection finds the result and history")
    func stepsSleepEvent() async throws {
        let clock = ManualClock()
        let ledger = Ledger()
        // A lease longer than the sleep: the manual clock jumps three days at once.
        try await withPostgresStore(clock: clock, configure: { $0.leaseDuration = .seconds(30 * 86_400) }) { store in
            try await WorkflowRuntime.withRuntime(store: store, workflows: [Approval(ledger: ledger)], configuration: .init(clock: clock)) { runtime throws in
                let handle = try await runtime.start(Approval.self, id: "po-1", input: "po-1")
                try await runtime.waitForTimers(1)
                clock.advance(by: .seconds(3 * 86_400))
                _ = try await runtime.waitForHistory(of: "po-1") { events in
                    events.contains { if case .waitStarted(_, .event("approved"), _) = $0.kind { true } else { false } }
                }
                try await runtime.send("approved", to: "po-1", payload: "ops")
                #expect(try await handle.result() == "po-1 approved by ops")
            }
            var configuration = try PostgresStore.Configuration(url: TestPostgres.url())
            configuration.schema = store.configuration.schema
            let second = try await PostgresStore.connect(configuration: configuration, logger: testLogger)
            try await WorkflowRuntime.withRuntime(store: second, workflows: [Approval(ledger: ledger)], configuration: .init(clock: clock)) { runtime throws in
                #expect(try await runtime.handle(Approval.self, id: "po-1").result() == "po-1 approved by ops")
                #expect(try await runtime.counts()[.completed] == 1)
                #expect(try await runtime.history(of: "po-1").count >= 6)
            }
            await second.close()
        }
        #expect(ledger.count("request") == 1 && ledger.count("notify") == 1)
    }

    @Test("a thousand concurrent three-step workflows all complete; the counts are kept, not scanned")
    func groupCommit() async throws {
        try await withPostgresStore { store in
            try await WorkflowRuntime.withRuntime(store: store, workflows: [ThreeSteps()]) { runtime throws in
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for index in 0..<1000 {
                        group.addTask { try await runtime.start(ThreeSteps.self, id: "w\(index)", input: index).result() }
                    }
                    var sum = 0
                    for try await result in group { sum += result }
                    #expect(sum == (0..<1000).reduce(0) { $0 + ($1 + 1) * 2 - 1 })
                }
                let counts = try await store.counts()
                #expect(counts[.completed] == 1000 && counts[.running] == 0, "\(counts)")
            }
        }
    }

    @Test("a runtime whose lease runs out leaves the workflow; another runtime takes it over by replay, and no committed step runs again")
    func leaseTakeover() async throws {
        let clock = ManualClock()
        let ledger = Ledger()
        try await withPostgresStore(clock: clock, configure: { $0.leaseDuration = .seconds(30) }) { store in
            var first = WorkflowRuntime.Configuration(clock: clock, parkAfter: nil)
            first.owner = OwnerID("first")
            try await WorkflowRuntime.withRuntime(store: store, workflows: [Approval(ledger: ledger)], configuration: first) { runtime throws in
                try await runtime.start(Approval.self, id: "po-2", input: "po-2")
                try await runtime.waitForTimers(1)
                // The first runtime stops renewing (say it was paused): its claim runs out.
            }
            clock.advance(by: .seconds(31))
            var second = WorkflowRuntime.Configuration(clock: clock, parkAfter: nil)
            second.owner = OwnerID("second")
            try await WorkflowRuntime.withRuntime(store: store, workflows: [Approval(ledger: ledger)], configuration: second) { runtime throws in
                try await runtime.waitForTimers(1)
                clock.advance(by: .seconds(3 * 86_400))
                try await withClockRunning(clock, step: .seconds(1)) {
                    _ = try await runtime.waitForHistory(of: "po-2") { events in
                        events.contains { if case .waitStarted(_, .event("approved"), _) = $0.kind { true } else { false } }
                    }
                    try await runtime.send("approved", to: "po-2", payload: "ops")
                    #expect(try await runtime.handle(Approval.self, id: "po-2").result() == "po-2 approved by ops")
                }
            }
        }
        #expect(ledger.count("request") == 1, "the step the first runtime committed ran again")
    }

    @Test("a payload over the store's limit is refused with payloadTooLarge and nothing is written")
    func payloadLimit() async throws {
        try await withPostgresStore(configure: { $0.maxPayloadBytes = 1024 }) { store in
            try await WorkflowRuntime.withRuntime(store: store, workflows: [Approval(ledger: Ledger())]) { runtime throws in
                let error = await errorOf { try await runtime.start(Approval.self, id: "big", input: String(repeating: "x", count: 4096)) }
                #expect((error as? ContinuumError)?.code == .payloadTooLarge, "\(String(describing: error))")
                #expect(try await store.summary(id: "big") == nil)
            }
        }
    }
}

/// Waits for an event, then a step.
struct AwaitSignal: Workflow {
    static let name = "await-signal"

    func run(_ ctx: WorkflowContext, input: String) async throws -> String {
        let value = try await ctx.waitForEvent("signal", as: String.self) ?? "none"
        return try await ctx.step("echo") { "\(input):\(value)" }
    }
}

/// Publishes what it waits for, then waits for "signal".
struct PublishingSignal: Workflow {
    static let name = "publishing-signal"

    func run(_ ctx: WorkflowContext, input: String) async throws -> String {
        try await ctx.publish("waitingFor", "signal for \(input)")
        let value = try await ctx.waitForEvent("signal", as: String.self) ?? "none"
        try await ctx.publish("waitingFor", "nothing")
        return value
    }
}

/// Answers "add" updates with the running total until the total passes 10.
struct Adder: Workflow {
    static let name = "adder"

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        var total = input
        while total <= 10 {
            guard let sum = try await ctx.handleUpdate("add", as: Int.self, { total + $0 }) else { continue }
            total = sum
        }
        return total
    }
}

/// A step, a short real sleep, a step.
struct ShortNap: Workflow {
    static let name = "short-nap"
    let ledger: Ledger

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        let first = try await ctx.step("before") {
            ledger.record("before")
            return input
        }
        try await ctx.sleep(for: .milliseconds(200))
        return try await ctx.step("after") {
            ledger.record("after")
            return first + 1
        }
    }
}

@Suite("Two runtimes on one PostgreSQL")
struct PostgresSharedTests {
    /// A second store on the same schema, as another process would open it.
    func second(of store: PostgresStore, owner: String) async throws -> PostgresStore {
        var configuration = store.configuration
        configuration.schema = store.configuration.schema
        return try await PostgresStore.connect(configuration: configuration, logger: testLogger)
    }

    /// Two runtimes on one schema, owners "a" and "b", each on a connection of its own, neither parking.
    func withTwoRuntimes(
        _ store: PostgresStore, workflows: [any Workflow], _ body: (WorkflowRuntime, WorkflowRuntime) async throws -> Void
    ) async throws {
        let other = try await second(of: store, owner: "b")
        var a = WorkflowRuntime.Configuration(parkAfter: nil)
        a.owner = OwnerID("a")
        var b = WorkflowRuntime.Configuration(parkAfter: nil)
        b.owner = OwnerID("b")
        do {
            try await WorkflowRuntime.withRuntime(store: store, workflows: workflows, configuration: a) { runtimeA in
                try await WorkflowRuntime.withRuntime(store: other, workflows: workflows, configuration: b) { runtimeB in
                    try await body(runtimeA, runtimeB)
                }
            }
        } catch {
            await other.close()
            throw error
        }
        await other.close()
    }

    @Test("an update through a process that does not run the workflow is relayed by the inbox, and its reply read from the store")
    func updateThroughOtherProcess() async throws {
        try await withPostgresStore(configure: { $0.leaseDuration = .seconds(30) }) { store in
            try await withTwoRuntimes(store, workflows: [Adder()]) { runtimeA, runtimeB in
                let handle = try await runtimeA.start(Adder.self, id: "u1", input: 1)
                _ = try await runtimeA.waitForHistory(of: "u1") { $0.count >= 2 }
                #expect(try await runtimeB.update("u1", "add", payload: 4, dedupKey: "k1", as: Int.self) == 5)
                #expect(try await runtimeB.update("u1", "add", payload: 4, dedupKey: "k1", as: Int.self) == 5)
                #expect(try await runtimeA.update("u1", "add", payload: 10, as: Int.self) == 15)
                #expect(try await handle.result() == 15)
            }
        }
    }

    @Test("a query through a process that does not run the workflow replays its stored history and appends nothing")
    func queryThroughOtherProcess() async throws {
        try await withPostgresStore(configure: { $0.leaseDuration = .seconds(30) }) { store in
            try await withTwoRuntimes(store, workflows: [PublishingSignal()]) { runtimeA, runtimeB in
                let handle = try await runtimeA.start(PublishingSignal.self, id: "q1", input: "x")
                let history = try await runtimeA.waitForHistory(of: "q1") { $0.count >= 2 }
                #expect(try await runtimeB.query("q1", "waitingFor", as: String.self) == "signal for x")
                #expect(try await store.load(id: "q1")?.events.count == history.count)
                try await runtimeB.send("signal", to: "q1", payload: "go")
                #expect(try await handle.result() == "go")
                #expect(try await runtimeB.query("q1", "waitingFor", as: String.self) == "nothing")
            }
        }
    }

    @Test("events and cancellations sent through a process that does not run the workflow reach it through the inbox, once each")
    func sendThroughOtherProcess() async throws {
        try await withPostgresStore(configure: { $0.leaseDuration = .seconds(30) }) { store in
            let other = try await second(of: store, owner: "b")
            var a = WorkflowRuntime.Configuration(parkAfter: nil)
            a.owner = OwnerID("a")
            var b = WorkflowRuntime.Configuration(parkAfter: nil)
            b.owner = OwnerID("b")
            try await WorkflowRuntime.withRuntime(store: store, workflows: [AwaitSignal()], configuration: a) { runtimeA in
                try await WorkflowRuntime.withRuntime(store: other, workflows: [AwaitSignal()], configuration: b) { runtimeB in
                    let handle = try await runtimeA.start(AwaitSignal.self, id: "s1", input: "x")
                    _ = try await runtimeA.waitForHistory(of: "s1") { $0.count >= 2 }
                    // B does not hold s1: its send goes through the inbox, and A applies it.
                    let receipt = try await runtimeB.send("signal", to: "s1", payload: "from b", dedupKey: "k1")
                    #expect(!receipt.duplicate && receipt.sequence > 0)
                    #expect(try await handle.result() == "x:from b")
                    // The same key again: the first receipt, nothing appended.
                    let again = try await runtimeB.send("signal", to: "s1", payload: "from b", dedupKey: "k1")
                    #expect(again.duplicate && again.sequence == receipt.sequence)
                    let received = try await runtimeA.history(of: "s1").filter { if case .eventReceived = $0.kind { true } else { false } }
                    #expect(received.count == 1)
                    // A finished workflow refuses through the inbox as it would here.
                    let error = await errorOf { try await runtimeB.send("signal", to: "s1", payload: "late") }
                    #expect((error as? ContinuumError)?.code == .workflowFinished, "\(String(describing: error))")

                    // A cancellation through B ends a workflow A runs.
                    let waiting = try await runtimeA.start(AwaitSignal.self, id: "s2", input: "y")
                    _ = try await runtimeA.waitForHistory(of: "s2") { $0.count >= 2 }
                    try await runtimeB.cancel("s2", by: "ops", reason: "not needed")
                    let cancelled = await errorOf { _ = try await waiting.result() }
                    #expect((cancelled as? ContinuumError)?.code == .cancelled, "\(String(describing: cancelled))")
                    #expect(try await store.summary(id: "s2")?.status == .cancelled)
                }
            }
            await other.close()
        }
    }

    @Test("when the process running workflows stops without releasing them, another takes them over within the lease and a second, and no committed step runs again")
    func takeoverAfterDeath() async throws {
        let ledger = Ledger()
        // A lease of 3 s: the server ends a session that idles that long inside a transaction,
        // and with the whole suite beside it on two cores a commit once idled 1.5 s, failing a
        // start with storeUnavailable.
        try await withPostgresStore(configure: { $0.leaseDuration = .seconds(3) }) { store in
            var a = WorkflowRuntime.Configuration(parkAfter: nil)
            a.owner = OwnerID("a")
            let gate = Gate()
            struct Held: Workflow {
                static let name = "held"
                let gate: Gate
                let ledger: Ledger
                func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
                    try await ctx.step("first") { ledger.record("first") }
                    try await ctx.step("blocked") {
                        ledger.record("blocked")
                        try await gate.wait()
                    }
                    return input
                }
            }
            // Process A commits the first step of 20 workflows and is stuck in the second: then it "dies"
            // (its runtime stops; nothing is released, as after a SIGKILL).
            try await WorkflowRuntime.withRuntime(store: store, workflows: [Held(gate: gate, ledger: ledger)], configuration: a) { runtime in
                for index in 0..<20 { try await runtime.start(Held.self, id: "h\(index)", input: index) }
                try await gate.waitUntilArrived(20)
            }
            gate.open()
            let died = ContinuousClock.now
            let other = try await second(of: store, owner: "b")
            var b = WorkflowRuntime.Configuration(parkAfter: nil)
            b.owner = OwnerID("b")
            let took = try await WorkflowRuntime.withRuntime(store: other, workflows: [Held(gate: gate, ledger: ledger)], configuration: b) { runtime in
                for index in 0..<20 {
                    let result = try await withTimeout(.seconds(30)) { try await runtime.handle(Held.self, id: "h\(index)").result() }
                    #expect(result == index)
                }
                return ContinuousClock.now - died
            }
            // Each step is recorded once, whoever ran it. (A body may run again only when its
            // commit was refused: on a loaded machine a 3 s lease can run out mid-step.)
            for index in 0..<20 {
                let completed = try await other.load(id: "h\(index)")?.events.filter {
                    if case .stepCompleted(let step, _) = $0.kind { step.name == "first" } else { false }
                }
                #expect(completed?.count == 1, "h\(index) recorded 'first' \(completed?.count ?? 0) times")
            }
            await other.close()
            // Lease 3 s, adoption every second: within lease + 1 s (about 3.5 s alone), plus slack
            // for the whole suite running beside it on two cores, which took it to 16 – 17 s.
            #expect(took < .seconds(30), "takeover took \(took)")
            #expect(ledger.count("first") >= 20)
        }
    }
}

/// Sleeps fifteen seconds (long enough to be parked first on a loaded machine: the whole suite
/// on two cores once kept a runtime from parking within six), then a step.
struct Doze: Workflow {
    static let name = "doze"

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        try await ctx.sleep(for: .seconds(15))
        return try await ctx.step("after") { input + 1 }
    }
}

@Suite("Work whose process is gone, on PostgreSQL")
struct PostgresOrphanTests {
    @Test("a workflow parked by a process that stopped is claimed by another runtime a second after its timer is due, though that runtime's horizon had passed its place in the due index")
    func orphanedTimer() async throws {
        try await withPostgresStore(configure: { $0.leaseDuration = .seconds(30) }) { store in
            let other = try await PostgresStore.connect(configuration: store.configuration, logger: testLogger)
            // B reads the due index again only after 5 minutes (half its horizon), and runs
            // before A parks anything: its timer wheel never hears of d1.
            var b = WorkflowRuntime.Configuration(parkAfter: nil, timerHorizon: .seconds(600))
            b.owner = OwnerID("b")
            try await WorkflowRuntime.withRuntime(store: other, workflows: [Doze()], configuration: b) { runtimeB in
                var a = WorkflowRuntime.Configuration(parkAfter: .zero)
                a.owner = OwnerID("a")
                try await WorkflowRuntime.withRuntime(store: store, workflows: [Doze()], configuration: a) { runtimeA in
                    try await runtimeA.start(Doze.self, id: "d1", input: 41)
                    // Parked (released) by A, which then stops before the timer is due. (Had A
                    // not parked it before the timer fired, it would finish it: the test fails.)
                    try await withTimeout(.seconds(60)) {
                        while try await store.counts().parked < 1 {
                            try #require(try await store.summary(id: "d1")?.status == .running, "A finished d1 before it parked it")
                            try await Task.sleep(for: .milliseconds(20))
                        }
                    }
                }
                // B's lease keeper claims it once the timer is a second overdue (60 s: slack
                // for a loaded CI machine; it takes about 3 s).
                let result = try await withTimeout(.seconds(60)) { try await runtimeB.handle(Doze.self, id: "d1").result() }
                #expect(result == 42)
                let history = try await runtimeB.history(of: "d1")
                #expect(history.filter { if case .waitEnded(_, outcome: .fired) = $0.kind { true } else { false } }.count == 1)
            }
            await other.close()
        }
    }

    @Test("a process waiting for the result of a workflow another process runs gets it when that process finishes it")
    func resultFromAnotherProcess() async throws {
        try await withPostgresStore(configure: { $0.leaseDuration = .seconds(30) }) { store in
            let other = try await PostgresStore.connect(configuration: store.configuration, logger: testLogger)
            var a = WorkflowRuntime.Configuration(parkAfter: nil)
            a.owner = OwnerID("a")
            var b = WorkflowRuntime.Configuration(parkAfter: nil)
            b.owner = OwnerID("b")
            try await WorkflowRuntime.withRuntime(store: store, workflows: [Doze(), AwaitSignal()], configuration: a) { runtimeA in
                try await WorkflowRuntime.withRuntime(store: other, workflows: [Doze(), AwaitSignal()], configuration: b) { runtimeB in
                    // A runs both; B only waits.
                    try await runtimeA.start(Doze.self, id: "r1", input: 1)
                    try await runtimeA.start(AwaitSignal.self, id: "r2", input: "z")
                    let waited = try await withTimeout(.seconds(60)) { try await runtimeB.handle(Doze.self, id: "r1").result() }
                    #expect(waited == 2)
                    // The failure of a cancellation reaches B's waiter too.
                    _ = try await runtimeA.waitForHistory(of: "r2") { $0.count >= 2 }
                    try await runtimeA.cancel("r2", by: "ops", reason: "test")
                    let cancelled = await errorOf { _ = try await withTimeout(.seconds(60)) { try await runtimeB.handle(AwaitSignal.self, id: "r2").result() } }
                    #expect((cancelled as? ContinuumError)?.code == .cancelled, "\(String(describing: cancelled))")
                }
            }
            await other.close()
        }
    }
}
