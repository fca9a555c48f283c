@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

/// Waits for "done"; when stopped, compensates and rethrows.
struct Errand: Workflow {
    static let name = "errand"
    let ledger: Ledger

    func run(_ ctx: WorkflowContext, input: String) async throws -> String {
        try await ctx.step("begin") { ledger.record("begin") }
        do {
            _ = try await ctx.waitForEvent("done", as: Int.self)
        } catch let error as ContinuumError where error.code == .timedOut {
            try await ctx.step("undo") { ledger.record("undo") }
            throw error
        }
        return "done \(input)"
    }
}

/// A step whose first `slow` attempts hang past their limit.
struct Impatient: Workflow {
    static let name = "impatient"
    let ledger: Ledger

    func run(_ ctx: WorkflowContext, input slow: Int) async throws -> String {
        let ledger = self.ledger
        return try await ctx.step(
            "call", timeout: .milliseconds(200), retry: .exponential(maxAttempts: 4, initial: .milliseconds(10), jitter: 0)
        ) { step in
            ledger.record("attempt")
            if step.attempt <= slow { try await Task.sleep(for: .seconds(30)) }
            return "answered on attempt \(step.attempt)"
        }
    }
}

/// Runs an `Errand` as a child with a deadline.
struct Delegator: Workflow {
    static let name = "delegator"

    func run(_ ctx: WorkflowContext, input: Int) async throws -> String {
        do {
            return try await ctx.child(Errand.self, name: "errand", input: "child", timeout: .seconds(input))
        } catch let error as ContinuumError where error.code == .childFailed {
            return "child failed: \((error.cause as? FailureRecord)?.type ?? "?")"
        }
    }
}

/// Gives a slow child a minute, then reads its result again once told to.
struct Hurried: Workflow {
    static let name = "hurried"

    func run(_ ctx: WorkflowContext, input: Int) async throws -> String {
        let child = try await ctx.startChild(Scrape.self, name: "slow", input: .init(source: input, waitForGo: true))
        if let page = try await child.result(timeout: .seconds(60)) { return "in time: \(page)" }
        try await ctx.publish("phase", "gave up waiting")
        _ = try await ctx.waitForEvent("again", as: Int.self)
        return "late: \(try await child.result())"
    }
}

/// Sleeps or waits for a time past what nanoseconds since 1970 can hold.
struct FarFuture: Workflow {
    static let name = "far-future"

    func run(_ ctx: WorkflowContext, input: Int) async throws -> String {
        switch input {
        case 0: try await ctx.sleep(for: .seconds(9_223_372_036))
        case 1: _ = try await ctx.waitForEvent("never", as: Int.self, timeout: .seconds(Int64.max))
        default: try await ctx.sleep(until: Date(timeIntervalSince1970: 1e300))
        }
        return "woke"
    }
}

/// Catches its deadline's timedOut and returns anyway.
struct Forgiving: Workflow {
    static let name = "forgiving"

    func run(_ ctx: WorkflowContext, input: Int) async throws -> String {
        do {
            _ = try await ctx.waitForEvent("never", as: Int.self)
        } catch let error as ContinuumError where error.code == .timedOut {
            return "returned anyway"
        }
        return "got it"
    }
}

@Suite("Timeouts")
struct TimeoutTests {
    @Test("a workflow past its deadline: its wait throws timedOut, it compensates, and it ends failed with timedOut")
    func workflowDeadline() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [Errand(ledger: ledger), Delegator()]) { runtime throws in
                let handle = try await runtime.start(Errand.self, id: "e", input: "x", timeout: .seconds(86_400))
                try await runtime.waitForHistory(of: "e") { $0.contains { $0.kindName == "waitStarted" } }
                clock.advance(by: .seconds(86_399))
                try await Task.sleep(for: .milliseconds(20))
                #expect(try await runtime.status(of: "e")?.status == .running, "the deadline passed early")
                clock.advance(by: .seconds(1))
                let error = await errorOf { _ = try await handle.result() }
                #expect((error as? ContinuumError)?.code == .timedOut, "\(String(describing: error))")
                #expect(try await runtime.status(of: "e")?.status == .failed)
                let kinds = try await runtime.history(of: "e").map(\.kindName)
                #expect(kinds.contains("deadlineSet") && kinds.contains("deadlinePassed"))
                // Nothing is left in the due-time index.
                #expect(try await runtime.store.timers(after: nil, limit: 10).isEmpty)

                // A workflow that ends first is not touched by its deadline.
                let quick = try await runtime.start(Errand.self, id: "q", input: "y", timeout: .seconds(60))
                try await runtime.waitForHistory(of: "q") { $0.contains { $0.kindName == "waitStarted" } }
                try await runtime.send("done", to: "q", payload: 1)
                #expect(try await quick.result() == "done y")
                clock.advance(by: .seconds(120))
                #expect(try await runtime.status(of: "q")?.status == .completed)
                #expect(try await runtime.store.timers(after: nil, limit: 10).isEmpty)

                // A child past its deadline fails; its parent learns it as childFailed.
                let parent = try await runtime.start(Delegator.self, id: "d", input: 30)
                try await runtime.waitForHistory(of: "d/errand") { $0.contains { $0.kindName == "waitStarted" } }
                clock.advance(by: .seconds(30))
                #expect(try await parent.result() == "child failed: ContinuumError.timedOut")
            }
            #expect(ledger.count("undo") == 2)
        }
    }

    @Test("a wait for a child raced against a timeout returns nil when the timeout passes first; the child goes on")
    func childResultTimeout() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [Hurried(), Scrape(ledger: ledger)]) { runtime throws in
                let handle = try await runtime.start(Hurried.self, id: "h", input: 4)
                try await runtime.waitForHistory(of: "h/slow") { $0.contains { $0.kindName == "waitStarted" } }
                try await runtime.waitForTimers(1)
                clock.advance(by: .seconds(60))
                try await runtime.waitForHistory(of: "h") { $0.contains { $0.kind == .waitEnded(StepKey(name: "event:continuum.child:slow", occurrence: 0), outcome: .timedOut) } }
                // Published just before the next wait begins.
                try await runtime.waitForHistory(of: "h") { $0.contains { if case .waitStarted(_, .event("again"), _) = $0.kind { true } else { false } } }
                #expect(try await runtime.query("h", "phase", as: String.self) == "gave up waiting")
                try await runtime.send("go", to: "h/slow", payload: 1)
                try await runtime.waitForStatus(of: "h/slow", .completed)
                try await runtime.send("again", to: "h", payload: 1)
                #expect(try await handle.result() == "late: page-4")
            }
        }
    }

    @Test("a sleep, a timeout or a deadline past the end of time waits for ever instead of overflowing and crashing the process")
    func farFuture() async throws {
        try await withTemporaryDirectory { path in
            try await WorkflowRuntime.withLMDB(path: path, workflows: [FarFuture()]) { runtime throws in
                for input in 0..<3 {
                    try await runtime.start(FarFuture.self, id: "f\(input)", input: input, timeout: .seconds(Int64.max))
                    let history = try await runtime.waitForHistory(of: "f\(input)") { $0.contains { $0.kindName == "waitStarted" } }
                    #expect(history.contains { $0.kind == .deadlineSet(due: .max) })
                    #expect(history.contains { if case .waitStarted(_, _, .max?) = $0.kind { true } else { false } }, "\(history.map(\.kind))")
                }
            }
            // And again after a restart, which replays them.
            try await WorkflowRuntime.withLMDB(path: path, workflows: [FarFuture()]) { runtime throws in
                #expect(try await runtime.status(of: "f2")?.status == .running)
            }
        }
    }

    @Test("a body that catches its deadline and returns still ends failed with timedOut, here as in the store")
    func deadlineOverridesReturn() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [Forgiving()]) { runtime throws in
                let handle = try await runtime.start(Forgiving.self, id: "f", input: 0, timeout: .seconds(10))
                try await runtime.waitForHistory(of: "f") { $0.contains { $0.kindName == "waitStarted" } }
                clock.advance(by: .seconds(10))
                let error = await errorOf { _ = try await handle.result() }
                #expect((error as? ContinuumError)?.code == .timedOut, "\(String(describing: error))")
                #expect(try await runtime.status(of: "f")?.status == .failed)
            }
        }
    }

    @Test("a deadline holds across a restart and while the workflow is parked: it passes once, at its time")
    func deadlineAcrossRestart() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            let configuration = WorkflowRuntime.Configuration(clock: clock, parkAfter: .milliseconds(50), timerHorizon: .seconds(1))
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Errand(ledger: ledger)], runtime: configuration) { runtime throws in
                try await runtime.start(Errand.self, id: "p", input: "x", timeout: .seconds(3_600))
                try await runtime.waitForHistory(of: "p") { $0.contains { $0.kindName == "waitStarted" } }
                try await parkAll(runtime, clock: clock)
                #expect(runtime.residentWorkflows == 0)
            }
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Errand(ledger: ledger)], runtime: configuration) { runtime throws in
                #expect(try await runtime.status(of: "p")?.status == .running)
                clock.advance(by: .seconds(3_600))
                let error = await errorOf { _ = try await runtime.handle(Errand.self, id: "p").result() }
                #expect((error as? ContinuumError)?.code == .timedOut, "\(String(describing: error))")
                let passed = try await runtime.history(of: "p").filter { $0.kindName == "deadlinePassed" }
                #expect(passed.count == 1)
            }
            #expect(ledger.count("begin") == 1 && ledger.count("undo") == 1)
        }
    }

    @Test("a step attempt past its limit is cancelled and fails with timedOut, and the retry policy tries again")
    func stepAttemptTimeout() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Impatient(ledger: ledger)]) { runtime throws in
                let started = ContinuousClock.now
                #expect(try await runtime.start(Impatient.self, id: "i", input: 2).result() == "answered on attempt 3")
                #expect(ContinuousClock.now - started < .seconds(20), "a hung attempt was waited for")
                let retries = try await runtime.history(of: "i").compactMap { event -> FailureRecord? in
                    if case .stepRetrying(_, _, let failure, _) = event.kind { failure } else { nil }
                }
                #expect(retries.count == 2 && retries.allSatisfy { $0.type == "ContinuumError.timedOut" }, "\(retries)")

                // Out of attempts: the step fails with the timeout as its failure.
                let error = await errorOf { _ = try await runtime.start(Impatient.self, id: "j", input: 9).result() }
                #expect((error as? ContinuumError)?.code == .workflowFailed)
                #expect((error as? ContinuumError)?.message.contains("ContinuumError.timedOut") == true, "\(String(describing: error))")
            }
            #expect(ledger.count("attempt") == 3 + 4)
        }
    }
}
