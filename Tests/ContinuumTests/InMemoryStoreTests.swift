@_spi(Testing) import Continuum
import ContinuumTesting
import ContinuumTestSupport
import Testing

/// In-memory stores, for the conformance suite: one without leases (as one process owning the
/// store), one whose claims expire on the suite's manual clock (as a shared store).
struct InMemoryFixture: EventStoreFixture {
    var leaseDuration: Duration?

    func makeStore(clock: ManualClock) async throws -> any EventStore {
        InMemoryStore(configuration: .init(leaseDuration: leaseDuration, clock: clock))
    }

    func reopen(_ store: any EventStore, clock: ManualClock) async throws -> (any EventStore)? { nil }

    func corrupt(_ store: any EventStore, id: String, sequence: UInt32) async throws {
        try #require(store as? InMemoryStore).corrupt(id: id, sequence: sequence)
    }
}

@Suite("In-memory store")
struct InMemoryStoreTests {
    @Test("conforms, as one process's store", arguments: EventStoreConformance.checks)
    func conforms(_ check: EventStoreConformance.Check) async throws {
        try await check.run(on: InMemoryFixture())
    }

    @Test("conforms, as a shared store whose claims expire", arguments: EventStoreConformance.checks)
    func conformsWithLeases(_ check: EventStoreConformance.Check) async throws {
        try await check.run(on: InMemoryFixture(leaseDuration: .seconds(30)))
    }

    @Test("a runtime on it runs, sleeps and replays a workflow like on LMDB")
    func runtime() async throws {
        let clock = ManualClock()
        let store = InMemoryStore()
        let ledger = Ledger()
        try await WorkflowRuntime.withRuntime(store: store, workflows: [Reminder(ledger: ledger)], configuration: .init(clock: clock)) { runtime throws in
            let handle = try await runtime.start(Reminder.self, id: "r", input: "ada")
            try await runtime.waitForTimers(1)
            clock.advance(by: .seconds(3 * 86_400))
            #expect(try await handle.result() == "reminded ada")
        }
        // A second runtime on the same store finds the finished workflow and its history.
        try await WorkflowRuntime.withRuntime(store: store, workflows: [Reminder(ledger: ledger)], configuration: .init(clock: clock)) { runtime throws in
            #expect(try await runtime.handle(Reminder.self, id: "r").result() == "reminded ada")
            #expect(try await runtime.counts()[.completed] == 1)
        }
        #expect(ledger.count("signup") == 1 && ledger.count("remind") == 1)
    }

    @Test("a runtime whose lease runs out leaves the workflow; another runtime takes it over by replay")
    func leaseLost() async throws {
        let clock = ManualClock()
        let store = InMemoryStore(configuration: .init(leaseDuration: .seconds(30), clock: clock))
        let ledger = Ledger()
        var first = WorkflowRuntime.Configuration(clock: clock, parkAfter: nil)
        first.owner = OwnerID("first")
        try await WorkflowRuntime.withRuntime(store: store, workflows: [Reminder(ledger: ledger)], configuration: first) { runtime throws in
            try await runtime.start(Reminder.self, id: "r", input: "ada")
            try await runtime.waitForTimers(1)
            // The first runtime stops renewing (say it was paused): its claim runs out.
        }
        clock.advance(by: .seconds(31))
        var second = WorkflowRuntime.Configuration(clock: clock, parkAfter: nil)
        second.owner = OwnerID("second")
        try await WorkflowRuntime.withRuntime(store: store, workflows: [Reminder(ledger: ledger)], configuration: second) { runtime throws in
            try await runtime.waitForTimers(1)
            // Three days pass at once, as for a process paused that long: its own lease runs
            // out too, and it takes the workflow back as a runnable one, as any process would.
            clock.advance(by: .seconds(3 * 86_400))
            let result = try await withClockRunning(clock, step: .seconds(1)) {
                try await runtime.handle(Reminder.self, id: "r").result()
            }
            #expect(result == "reminded ada")
        }
        #expect(ledger.count("signup") == 1, "the step the first runtime committed ran again")
    }
}
