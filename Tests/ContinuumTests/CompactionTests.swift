@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

private struct AgentGlitch: Error {}

/// A small child, so that a parent's history holds a child's start and its outcome.
struct Helper: Workflow {
    static let name = "compaction-helper"
    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        try await ctx.step("double") { input * 2 }
    }
}

/// An agent loop: `steps` steps, waiting for a "go" event every `waitEvery` of them. With
/// `rich`, it first does one of everything whose fold a snapshot must keep: a version marker,
/// a retried step, a step that fails and is caught, concurrent steps, a sleep, a child, an
/// update with its reply, an event sent ahead with a dedup key.
struct Agent: Workflow {
    static let name = "agent"
    let ledger: Ledger

    struct Input: Codable, Sendable {
        var steps: Int
        var waitEvery: Int
        var rich = false
    }

    func run(_ ctx: WorkflowContext, input: Input) async throws -> Int {
        var total = 0
        if input.rich {
            if try await ctx.patched("v2") { total += 1 }
            total += try await ctx.step("flaky", retry: .exponential(maxAttempts: 3, initial: .milliseconds(1), jitter: 0)) {
                ledger.record("flaky")
                if ledger.count("flaky") == 1 { throw AgentGlitch() }
                return 10
            }
            do {
                try await ctx.step("refused") { () throws -> Void in throw AgentGlitch() }
            } catch {
                total += 100
            }
            async let left = ctx.step("left") { 1000 }
            async let right = ctx.step("right") { 10_000 }
            total += try await left + right
            try await ctx.sleep(for: .milliseconds(1), name: "nap")
            total += try await ctx.child(Helper.self, name: "helper", input: 50_000)
            try await ctx.handleUpdate("bonus", as: Int.self) { bonus in
                total += bonus
                return total
            }
            total += try await ctx.waitForEvent("early", as: Int.self) ?? 0
        }
        for index in 0..<input.steps {
            total += try await ctx.step("think") {
                ledger.record("think-\(index)")
                return index
            }
            if input.waitEvery > 0, (index + 1) % input.waitEvery == 0 {
                total += try await ctx.waitForEvent("go", as: Int.self) ?? 0
            }
        }
        return total
    }
}

/// The folded state's bytes: two states are the same fold when these are equal.
private func bytes(_ state: WorkflowState) -> [UInt8] { state.snapshot().bytes }

@Suite("Compacted histories")
struct CompactionTests {
    @Test("at every cut of a real history, the snapshot of the events before it and the events after it fold to the whole history's state")
    func everyCutFoldsTheSame() async throws {
        try await withTemporaryDirectory { path in
            var configuration = WorkflowRuntime.Configuration()
            configuration.snapshotEvery = nil
            let history = try await WorkflowRuntime.withLMDB(path: path, workflows: [Agent(ledger: Ledger()), Helper()], runtime: configuration) {
                runtime in
                try await runtime.start(Agent.self, id: "a", input: .init(steps: 6, waitEvery: 2, rich: true))
                try await runtime.waitForHistory(of: "a") { $0.contains { $0.kindName == "waitStarted" && "\($0.kind)".contains("bonus") } }
                #expect(try await runtime.update("a", "bonus", payload: 1_000_000, as: Int.self) == 1_111_111)
                try await runtime.send("early", to: "a", payload: 2_000_000, dedupKey: "early")
                for round in 0..<3 { try await runtime.send("go", to: "a", payload: 0, dedupKey: "go-\(round)") }
                #expect(try await runtime.handle(Agent.self, id: "a").result() == 3_111_126)
                return try await runtime.history(of: "a")
            }
            let whole = try WorkflowState(replaying: history)
            #expect(history.count > 30, "the history is too short to cut: \(history.count) events")
            var cuts = 0
            for cut in 1..<history.count {
                let before = try WorkflowState(replaying: Array(history[..<cut]))
                let snapshot = before.snapshot()
                #expect(snapshot.through == UInt32(cut))
                let restored = try #require(try WorkflowState(snapshot: snapshot))
                #expect(bytes(restored) == snapshot.bytes, "cut \(cut): the snapshot does not decode to what it encodes")
                let folded = try #require(try WorkflowState(snapshot: snapshot, then: Array(history[cut...])))
                #expect(bytes(folded) == bytes(whole), "cut \(cut) (\(history[cut].kindName)): snapshot + tail folds differently")
                #expect(folded.outcome == whole.outcome && folded.nextSequence == whole.nextSequence)
                cuts += 1
            }
            #expect(cuts == history.count - 1)
        }
    }

    @Test("the snapshots the runtime writes as it runs are the fold of exactly the events they cover; a restart continues from the last")
    func liveSnapshotsAreTheFold() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            var configuration = WorkflowRuntime.Configuration()
            configuration.snapshotEvery = 1
            let store = try LMDBStore(path: path)
            var checked: Set<UInt32> = []
            func check() async throws {
                let recent = try #require(try await store.loadRecent(id: "a"))
                let snapshot = try #require(recent.snapshot, "no snapshot was written")
                let full = try #require(try await store.load(id: "a")).events
                #expect(recent.events.map(\.sequence) == Array(snapshot.through..<UInt32(full.count)))
                let folded = try WorkflowState(replaying: Array(full[..<Int(snapshot.through)]))
                #expect(snapshot.bytes == bytes(folded), "the snapshot through \(snapshot.through) differs from the fold of those events")
                checked.insert(snapshot.through)
            }
            let runtime = WorkflowRuntime(store: store, workflows: [Agent(ledger: ledger), Helper()], configuration: configuration)
            try await runtime.withRunning { runtime in
                try await runtime.start(Agent.self, id: "a", input: .init(steps: 40, waitEvery: 5, rich: true))
                try await runtime.waitForHistory(of: "a") { $0.contains { $0.kindName == "waitStarted" && "\($0.kind)".contains("bonus") } }
                try await check()
                _ = try await runtime.update("a", "bonus", payload: 1_000_000, as: Int.self)
                try await runtime.send("early", to: "a", payload: 2_000_000, dedupKey: "early")
                for round in 0..<4 {
                    try await runtime.waitForHistory(of: "a") { $0.count { "\($0.kind)".contains("\"go\"") && $0.kindName == "waitStarted" } == round + 1 }
                    try await check()
                    try await runtime.send("go", to: "a", payload: 0, dedupKey: "go-\(round)")
                }
                try await runtime.waitForHistory(of: "a") { $0.count { "\($0.kind)".contains("\"go\"") && $0.kindName == "waitStarted" } == 5 }
                try await check()
            }
            #expect(checked.count >= 4, "the snapshots did not move on: \(checked.sorted())")
            // A new runtime folds the last snapshot and the events after it, and no step runs again.
            let again = WorkflowRuntime(store: store, workflows: [Agent(ledger: ledger), Helper()], configuration: configuration)
            try await again.withRunning { runtime in
                for round in 4..<8 { try await runtime.send("go", to: "a", payload: 0, dedupKey: "go-\(round)") }
                #expect(try await runtime.handle(Agent.self, id: "a").result() == 3_111_111 + (0..<40).reduce(0, +))
            }
            #expect((0..<40).allSatisfy { ledger.count("think-\($0)") == 1 }, "a step ran twice")
            #expect(ledger.count("flaky") == 2)
            await store.close()
        }
    }

    @Test("a workflow parked after 2,000 steps wakes from its snapshot: the store hands over the snapshot and the events after it (at most half the state), and it continues exactly")
    func longHistoryWakesFromSnapshot() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            let steps = 2000
            var configuration = WorkflowRuntime.Configuration()
            configuration.parkAfter = .milliseconds(50)
            let store = try LMDBStore(path: path)
            let runtime = WorkflowRuntime(store: store, workflows: [Agent(ledger: ledger)], configuration: configuration)
            try await runtime.withRunning { runtime in
                try await runtime.start(Agent.self, id: "long", input: .init(steps: steps, waitEvery: steps))
                // Each step is its own fsynced commit. Alone this takes about a second; in the
                // whole suite, on two cores shared with every other test, it took 166 – 197 s, so
                // the bound only guards against a hang.
                try await runtime.waitForHistory(of: "long", timeout: .seconds(600)) { $0.last?.kindName == "waitStarted" }
                try await eventually { runtime.residentWorkflows == 0 }  // parked
            }
            let recent = try #require(try await store.loadRecent(id: "long"))
            let snapshot = try #require(recent.snapshot)
            let total = try #require(try await store.load(id: "long")).events.count
            #expect(total > steps, "\(total) events")
            // At most max(snapshotEvery, half the state) events after the snapshot: 1,000 here, of 2,000 steps.
            let state = try WorkflowState(replaying: try #require(try await store.load(id: "long")).events)
            #expect(
                recent.events.count <= max(configuration.snapshotEvery ?? 0, state.snapshotWeight / 2),
                "a wake would fold \(recent.events.count) events after the snapshot through \(snapshot.through) of \(total)")
            let again = WorkflowRuntime(store: store, workflows: [Agent(ledger: ledger)], configuration: configuration)
            try await again.withRunning { runtime in
                try await runtime.send("go", to: "long", payload: 7)
                #expect(try await runtime.handle(Agent.self, id: "long").result() == (0..<steps).reduce(0, +) + 7)
            }
            #expect(ledger.total == steps, "\(ledger.total) step runs for \(steps) steps")
            await store.close()
        }
    }

    @Test("a query of a parked workflow replays from its snapshot: the value the body published, nothing appended")
    func queryFromSnapshot() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            var configuration = WorkflowRuntime.Configuration()
            configuration.snapshotEvery = 1
            configuration.parkAfter = .milliseconds(50)
            let store = try LMDBStore(path: path)
            try await WorkflowRuntime(store: store, workflows: [Looper(ledger: ledger)], configuration: configuration).withRunning { runtime in
                try await runtime.start(Looper.self, id: "l", input: .init(every: 2, until: 100))
                for poke in 0..<7 { try await runtime.send("poke", to: "l", payload: poke, dedupKey: "p\(poke)") }
                try await runtime.waitForHistory(of: "l") { $0.count { $0.kindName == "continuedAsNew" } == 3 && $0.last?.kindName == "waitStarted" }
                try await eventually { runtime.residentWorkflows == 0 }  // parked
                let before = try await runtime.history(of: "l").count
                let recent = try #require(try await store.loadRecent(id: "l"))
                #expect(recent.snapshot != nil && recent.events.count < before, "\(recent.events.count) of \(before) events after the snapshot")
                #expect(try await runtime.query("l", "seen", as: Int.self) == 6)
                #expect(try await runtime.history(of: "l").count == before, "the query appended")
                #expect(runtime.residentWorkflows == 0, "the query woke the workflow")
            }
            await store.close()
        }
    }

    @Test("a damaged snapshot, or one of a layout this release does not read, is ignored: the whole history is folded and the workflow continues")
    func unreadableSnapshotIsIgnored() async throws {
        for bad in [[UInt8](repeating: 0xAB, count: 40), BinaryCodec.seal { $0.write(UInt8(99)) }] {
            try await withTemporaryDirectory { path in
                let ledger = Ledger()
                let store = try LMDBStore(path: path)
                try await WorkflowRuntime(store: store, workflows: [Agent(ledger: ledger)]).withRunning { runtime in
                    try await runtime.start(Agent.self, id: "w", input: .init(steps: 6, waitEvery: 3))
                    try await runtime.waitForHistory(of: "w") { $0.last?.kindName == "waitStarted" }
                }
                // Between runs: write the bad snapshot under a claim of our own, as a store would keep it.
                let claim = try #require(try await store.claim("w", owner: OwnerID("test")))
                let count = try #require(try await store.load(id: "w")).events.count
                try await store.append(AppendRequest(fence: claim, id: "w", events: [], release: true, snapshot: WorkflowSnapshot(through: UInt32(count), bytes: bad)))
                #expect(try await store.loadRecent(id: "w")?.snapshot?.bytes == bad)
                // `continuum verify` reports damage; another release's layout is not damage.
                let damaged = bad.first == 0xAB
                #expect(try store.verify().problems.contains { $0.database == "snapshots" } == damaged)
                try await WorkflowRuntime(store: store, workflows: [Agent(ledger: ledger)]).withRunning { runtime in
                    try await runtime.send("go", to: "w", payload: 0)
                    try await runtime.send("go", to: "w", payload: 0)
                    #expect(try await runtime.handle(Agent.self, id: "w").result() == 15)
                }
                #expect(ledger.total == 6, "a step ran twice")
                await store.close()
            }
        }
        // Directly: damage is corruptedData, another layout is no state at all.
        let damaged = await errorOf { _ = try WorkflowState(snapshot: WorkflowSnapshot(through: 3, bytes: [1, 0, 0, 0, 0, 7])) }
        #expect((damaged as? ContinuumError)?.code == .corruptedData)
        #expect(try WorkflowState(snapshot: WorkflowSnapshot(through: 0, bytes: BinaryCodec.seal { $0.write(UInt8(99)) })) == nil)
    }

    @Test("a reset that reaches back before the snapshot folds the whole history: the reset step runs again, the rest replays")
    func resetBeforeSnapshot() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            var configuration = WorkflowRuntime.Configuration()
            configuration.snapshotEvery = 1
            let store = try LMDBStore(path: path)
            try await WorkflowRuntime(store: store, workflows: [Agent(ledger: ledger)], configuration: configuration).withRunning { runtime in
                try await runtime.start(Agent.self, id: "r", input: .init(steps: 20, waitEvery: 20))
                try await runtime.waitForHistory(of: "r") { $0.last?.kindName == "waitStarted" }
            }
            let snapshot = try #require(try await store.loadRecent(id: "r")?.snapshot)
            #expect(snapshot.through > 10, "the snapshot covers \(snapshot.through) events")
            try await WorkflowRuntime(store: store, workflows: [Agent(ledger: ledger)], configuration: configuration).withRunning { runtime in
                try await runtime.reset("r", toStep: "think", occurrence: 2, reason: "a test")
                try await runtime.waitForHistory(of: "r") { $0.last?.kindName == "waitStarted" && $0.contains { $0.kindName == "workflowReset" } }
                try await runtime.send("go", to: "r", payload: 1)
                #expect(try await runtime.handle(Agent.self, id: "r").result() == (0..<20).reduce(0, +) + 1)
            }
            #expect(ledger.count("think-1") == 1 && ledger.count("think-2") == 2 && ledger.count("think-19") == 2, "\(ledger.names.sorted())")
            await store.close()
        }
    }
}
