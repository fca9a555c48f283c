@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

struct Progress: Codable, Sendable, Equatable {
    var done: Int
    var of: Int
}

/// Publishes its progress after each of `input` steps, then waits for "finish".
struct Tracked: Workflow {
    static let name = "tracked"
    let ledger: Ledger

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        try await ctx.publish("progress", Progress(done: 0, of: input))
        for index in 0..<input {
            try await ctx.step("part-\(index)") { ledger.record("part") }
            try await ctx.publish("progress", Progress(done: index + 1, of: input))
        }
        _ = try await ctx.waitForEvent("finish", as: Int.self)
        try await ctx.publish("phase", "finished")
        return input
    }
}

@Suite("Live queries")
struct QueryTests {
    @Test("a query reads what the workflow published: live, parked (by a dry-run replay), finished; it appends nothing and runs no step")
    func queries() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            let configuration = WorkflowRuntime.Configuration(clock: clock, parkAfter: .milliseconds(50), timerHorizon: .seconds(1))
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Tracked(ledger: ledger)], runtime: configuration) { runtime throws in
                try await runtime.start(Tracked.self, id: "t", input: 3)
                let history = try await runtime.waitForHistory(of: "t") { $0.contains { $0.kindName == "waitStarted" } }
                // In memory.
                #expect(runtime.residentWorkflows == 1)
                #expect(try await runtime.query("t", "progress", as: Progress.self) == Progress(done: 3, of: 3))
                // Parked: answered by replaying the history, nothing loaded, run or appended.
                try await parkAll(runtime, clock: clock)
                #expect(try await runtime.query("t", "progress", as: Progress.self) == Progress(done: 3, of: 3))
                #expect(runtime.residentWorkflows == 0)
                #expect(try await runtime.history(of: "t").count == history.count)
                let error = await errorOf { _ = try await runtime.query("t", "phase") }
                #expect((error as? ContinuumError)?.code == .unknownQuery)
                // Finished: the replay runs to the end of the body.
                try await runtime.send("finish", to: "t", payload: 1)
                #expect(try await runtime.handle(Tracked.self, id: "t").result() == 3)
                #expect(try await runtime.query("t", "phase", as: String.self) == "finished")
                let unknown = await errorOf { _ = try await runtime.query("nobody", "progress") }
                #expect((unknown as? ContinuumError)?.code == .unknownWorkflow)
            }
            #expect(ledger.count("part") == 3, "a query ran a step")
        }
    }
}
