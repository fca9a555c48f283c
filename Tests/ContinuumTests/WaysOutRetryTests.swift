@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

/// Steps `a` and `b` (its version is the build's), a sleep, then `c`, whose body can be held at a gate.
private struct Held: Workflow {
    static let name = "held"
    let version: Int
    let gate: Gate?

    func run(_ ctx: WorkflowContext, input: String) async throws -> String {
        let a = try await ctx.step("a", version: 1) { () -> String in "a" }
        let b = try await ctx.step("b", version: version) { () -> String in "b\(version)" }
        try await ctx.sleep(for: .seconds(60), name: "nap")
        let c = try await ctx.step("c") { () -> String in
            if let gate { try await gate.wait() }
            return "c"
        }
        return a + b + c
    }
}

@Suite("Ways out asked again", .serialized)
struct WaysOutRetryTests {
    /// Runs version 1 of `held` to its sleep, then version 2 until it is suspended at `b`.
    private func suspended(path: String, clock: ManualClock) async throws {
        try await WorkflowRuntime.withLMDB(path: path, workflows: [Held(version: 1, gate: nil)], runtime: .init(clock: clock)) { runtime throws in
            try await runtime.start(Held.self, id: "w", input: "")
            try await runtime.waitForTimers(1)
        }
        try await WorkflowRuntime.withLMDB(path: path, workflows: [Held(version: 2, gate: nil)], runtime: .init(clock: clock)) { runtime throws in
            try await runtime.waitForStatus(of: "w", .suspended)
        }
    }

    @Test("a resume asked again while the workflow sleeps is refused, and the workflow still completes")
    func refusedWhileSleeping() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            try await suspended(path: path, clock: clock)
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Held(version: 2, gate: nil)], runtime: .init(clock: clock)) { runtime throws in
                try await runtime.reset("w", toStep: "b", by: "ops", reason: "first")
                try await runtime.waitForTimers(1)
                let again = await errorOf { try await runtime.resume("w", by: "ops", reason: "asked again") }
                #expect(again != nil, "a running workflow was resumed")
                clock.advance(by: .seconds(60))
                try await runtime.waitForStatus(of: "w", .completed, timeout: .seconds(5))
            }
        }
    }

    @Test("a resume asked again while a step of the workflow runs is refused, and the workflow still completes")
    func refusedWhileRunning() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            try await suspended(path: path, clock: clock)
            let gate = Gate()
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Held(version: 2, gate: gate)], runtime: .init(clock: clock)) { runtime throws in
                try await runtime.reset("w", toStep: "b", by: "ops", reason: "first")
                try await runtime.waitForTimers(1)
                clock.advance(by: .seconds(60))
                try await eventually { gate.arrived == 1 }  // c runs, held
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        let again = await errorOf { try await runtime.resume("w", by: "ops", reason: "asked again") }
                        #expect(again != nil, "a running workflow was resumed")
                    }
                    try await Task.sleep(for: .milliseconds(200))
                    gate.open()
                    try await group.waitForAll()
                }
                try await runtime.waitForStatus(of: "w", .completed, timeout: .seconds(5))
            }
        }
    }
}
