@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

/// Takes one "poke" per iteration, runs a step, and continues as new every `every` iterations
/// until `until` pokes were taken; returns the pokes' payloads in order.
struct Looper: Workflow {
    static let name = "looper"
    let ledger: Ledger

    struct Input: Codable, Sendable {
        var seen: [Int] = []
        var every: Int
        var until: Int
    }

    func run(_ ctx: WorkflowContext, input: Input) async throws -> [Int] {
        var seen = input.seen
        try await ctx.publish("seen", seen.count)
        for _ in 0..<input.every {
            guard seen.count < input.until else { return seen }
            let poke = try await ctx.waitForEvent("poke", as: Int.self) ?? -1
            try await ctx.step("tick") { step in ledger.record("tick-\(poke)-\(step.idempotencyKey)") }
            seen.append(poke)
        }
        try await ctx.continueAsNew(with: Input(seen: seen, every: input.every, until: input.until))
    }
}

@Suite("Continue as new")
struct ContinueAsNewTests {
    @Test("a looping workflow continues as new: each run replays only its own events, events and dedup keys carry over, steps get new keys")
    func continues() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            let input = Looper.Input(every: 3, until: 8)
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Looper(ledger: ledger)]) { runtime throws in
                try await runtime.start(Looper.self, id: "l", input: input)
                // Five pokes at once: two runs' worth, buffered before the body asks.
                for poke in 0..<5 { try await runtime.send("poke", to: "l", payload: poke, dedupKey: "p\(poke)") }
                try await runtime.waitForHistory(of: "l") { $0.count { $0.kindName == "continuedAsNew" } == 1 }
                // A key sent before the new run began is still known to it.
                #expect(try await runtime.send("poke", to: "l", payload: 0, dedupKey: "p0").duplicate)
            }
            // A restart replays the latest run only, and no tick runs twice.
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Looper(ledger: ledger)]) { runtime throws in
                for poke in 5..<8 { try await runtime.send("poke", to: "l", payload: poke, dedupKey: "p\(poke)") }
                #expect(try await runtime.handle(Looper.self, id: "l").result() == Array(0..<8))
                let history = try await runtime.history(of: "l")
                #expect(history.count { $0.kindName == "continuedAsNew" } == 2)
                #expect(try await runtime.query("l", "seen", as: Int.self) == 6, "the last run began with six pokes seen")
                let replayed = await WorkflowReplayer(workflows: [Looper(ledger: ledger)]).replay(
                    WorkflowHistory(id: "l", type: Looper.name, events: history))
                #expect(replayed.isCompatible, "\(replayed)")
            }
            #expect(ledger.total == 8, "a tick ran twice: \(ledger.names.sorted())")
            // Each run's steps have keys of their own: the generation grows with each new run.
            #expect(ledger.names.contains { $0.hasPrefix("tick-0-") && $0.hasSuffix("l/tick/0") })
            #expect(ledger.names.contains { $0.hasPrefix("tick-3-") && $0.hasSuffix("l/tick/0/reset-1") })
            #expect(ledger.names.contains { $0.hasPrefix("tick-6-") && $0.hasSuffix("l/tick/0/reset-2") })
        }
    }

    @Test("a workflow cancelled before it continues as new ends cancelled instead")
    func cancelledDoesNotContinue() async throws {
        try await withTemporaryDirectory { path in
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Looper(ledger: Ledger())]) { runtime throws in
                let handle = try await runtime.start(Looper.self, id: "c", input: .init(every: 1, until: 5))
                try await runtime.waitForHistory(of: "c") { $0.contains { $0.kindName == "waitStarted" } }
                try await runtime.cancel("c", reason: "enough")
                let error = await errorOf { _ = try await handle.result() }
                #expect((error as? ContinuumError)?.code == .cancelled)
                #expect(try await runtime.history(of: "c").contains { $0.kindName == "continuedAsNew" } == false)
            }
        }
    }
}
