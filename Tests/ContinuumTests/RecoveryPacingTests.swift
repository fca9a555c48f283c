@_spi(Testing) @_spi(Diagnostics) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Synchronization
import Testing

/// Step bodies running at once: how many now, the most seen, and a gate that holds them.
private final class Bodies: Sendable {
    private struct State {
        var running = 0
        var most = 0
        var started = 0
        var open = false
    }

    private let state = Mutex(State())

    var running: Int { state.withLock { $0.running } }
    var most: Int { state.withLock { $0.most } }
    var started: Int { state.withLock { $0.started } }

    /// Lets every body held at the gate (and every later one) go on.
    func open() { state.withLock { $0.open = true } }

    /// Counts a body in, holds it at the gate (unless `held` is false) and for `pause`, counts it out.
    func run(held: Bool, pause: Duration) async throws {
        state.withLock { state in
            state.running += 1
            state.started += 1
            state.most = max(state.most, state.running)
        }
        defer { state.withLock { $0.running -= 1 } }
        // Polled, so that a stopping runtime's cancellation ends the wait.
        while held, !state.withLock({ $0.open }) { try await Task.sleep(for: .milliseconds(5)) }
        try await Task.sleep(for: pause)
    }
}

/// One step whose body the test watches; returns its input.
private struct Paced: Workflow {
    static let name = "test.paced"
    let bodies: Bodies
    /// Whether the body waits at the gate.
    let held: Bool
    let pause: Duration

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        _ = try await ctx.step("work") { _ in try await bodies.run(held: held, pause: pause) }
        return input
    }
}

/// A step, then a wait for "go"; returns its input.
private struct Waiter: Workflow {
    static let name = "test.paced-waiter"

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        _ = try await ctx.step("first") { input }
        _ = try await ctx.waitForEvent("go", as: Int.self)
        return input
    }
}

@Suite("Recovery pacing")
struct RecoveryPacingTests {
    private func configuration(concurrency: Int, hold: Duration) -> WorkflowRuntime.Configuration {
        var configuration = WorkflowRuntime.Configuration(parkAfter: nil)
        configuration.recoveryConcurrency = concurrency
        configuration.recoveryHold = hold
        return configuration
    }

    /// Starts `count` workflows whose step bodies hold until the runtime stops: each is in flight,
    /// its step unrecorded, when the next runtime opens the store.
    private func leaveInFlight(_ count: Int, path: String) async throws {
        let bodies = Bodies()
        try await WorkflowRuntime.withLMDB(path: path, workflows: [Paced(bodies: bodies, held: true, pause: .zero)]) { runtime throws in
            for index in 0..<count { try await runtime.start(Paced.self, id: "p\(index)", input: index) }
            try await eventually { bodies.running == count }
        }
    }

    @Test("recovery starts at most recoveryConcurrency of the workflows it finds at once, and runs every one to the end")
    func boundedStarts() async throws {
        try await withTemporaryDirectory { path in
            try await leaveInFlight(40, path: path)
            let bodies = Bodies()
            let workflow = Paced(bodies: bodies, held: false, pause: .milliseconds(50))
            try await WorkflowRuntime.withLMDB(
                path: path, workflows: [workflow], runtime: configuration(concurrency: 4, hold: .seconds(600))
            ) { runtime throws in
                for index in 0..<40 { #expect(try await runtime.handle(Paced.self, id: "p\(index)").result() == index) }
            }
            #expect(bodies.started == 40)
            #expect(bodies.most == 4, "recovery ran \(bodies.most) step bodies at once, with room for 4")
        }
    }

    @Test("a recovered workflow that only waits lets the next one start")
    func waitingEndsTheTurn() async throws {
        try await withTemporaryDirectory { path in
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Waiter()], runtime: .init(parkAfter: nil)) { runtime throws in
                for index in 0..<6 { try await runtime.start(Waiter.self, id: "w\(index)", input: index) }
                try await eventually {
                    for index in 0..<6 where try await runtime.history(of: "w\(index)").count != 3 { return false }
                    return true
                }
            }
            // One at a time, each counting until it finishes or the hold of ten minutes passes
            // unless its wait ends its turn: all six in memory at once shows that it does.
            try await WorkflowRuntime.withLMDB(
                path: path, workflows: [Waiter()], runtime: configuration(concurrency: 1, hold: .seconds(600))
            ) { runtime throws in
                try await eventually { runtime.residentWorkflows == 6 }
                for index in 0..<6 { try await runtime.send("go", to: "w\(index)", payload: 1) }
                for index in 0..<6 { #expect(try await runtime.handle(Waiter.self, id: "w\(index)").result() == index) }
            }
        }
    }

    @Test("a recovered step that runs long holds recovery back no longer than the hold")
    func longStepsDoNotStall() async throws {
        try await withTemporaryDirectory { path in
            try await leaveInFlight(3, path: path)
            let bodies = Bodies()
            try await WorkflowRuntime.withLMDB(
                path: path, workflows: [Paced(bodies: bodies, held: true, pause: .zero)],
                runtime: configuration(concurrency: 1, hold: .milliseconds(100))
            ) { runtime throws in
                // Every body is held until all three run: the first two outlast their turn.
                try await eventually { bodies.running == 3 }
                // The last one's turn passes too, though nothing is left to start: recovery is over.
                try await eventually { runtime.diagnostics.contains("recovery 0 starting, 0 queued") }
                bodies.open()
                for index in 0..<3 { #expect(try await runtime.handle(Paced.self, id: "p\(index)").result() == index) }
            }
        }
    }
}
