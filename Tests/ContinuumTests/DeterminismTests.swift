@_spi(Testing) import Continuum
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

/// Steps started concurrently with `async let` and a task group, then a gated final step.
struct FanOut: Workflow {
    static let name = "fan-out"
    let ledger: Ledger
    let gate: Gate?

    func run(_ ctx: WorkflowContext, input width: Int) async throws -> [String] {
        async let left = ctx.step("left") { () -> String in
            ledger.record("left")
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...3)))
            return "L"
        }
        async let right = ctx.step("right") { () -> String in
            ledger.record("right")
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...3)))
            return "R"
        }
        let fetched = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for index in 0..<width {
                group.addTask {
                    let value = try await ctx.step("fetch-\(index)") { () -> String in
                        ledger.record("fetch-\(index)")
                        try await Task.sleep(for: .milliseconds(Int.random(in: 0...3)))
                        return "f\(index)"
                    }
                    // A second step in each branch, called after a completion whose order varies.
                    let checked = try await ctx.step("check-\(index)") { () -> String in
                        ledger.record("check-\(index)")
                        return value + "!"
                    }
                    return (index, checked)
                }
            }
            var results = [String](repeating: "", count: width)
            for try await (index, value) in group { results[index] = value }
            return results
        }
        let pair = try await [left, right]
        let final = try await ctx.step("final") { () -> String in
            ledger.record("final")
            if let gate { try await gate.wait() }
            return "done"
        }
        return pair + fetched + [final]
    }
}

@Suite("Determinism")
struct DeterminismTests {
    @Test("replay after a change of step order suspends the workflow with a named error and appends nothing")
    func reorderedSteps() async throws {
        try await expectDivergence(v2: ["b", "a", "c", "d"], mentioning: ["'a'", "'b'"])
    }

    @Test("replay after a step was renamed suspends the workflow")
    func renamedStep() async throws {
        try await expectDivergence(v2: ["a", "x", "c", "d"], mentioning: ["'b'", "'x'"])
    }

    @Test("replay after a step was removed suspends the workflow")
    func removedStep() async throws {
        try await expectDivergence(v2: ["a", "c", "d"], mentioning: ["'b'", "'c'"])
    }

    @Test("replay after a step was inserted before recorded ones suspends the workflow")
    func insertedStep() async throws {
        try await expectDivergence(v2: ["a", "new", "b", "c", "d"], mentioning: ["'b'", "'new'"])
    }

    /// Runs v1 (a, b, c, d) until it blocks in c, then replays with `v2` and expects a
    /// nondeterminism suspension; then v1 again resumes and completes.
    private func expectDivergence(v2: [String], mentioning words: [String]) async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            let gate = Gate()
            let v1 = ["a", "b", "c", "d"]
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Scripted(steps: v1, ledger: ledger, gate: gate)]) { runtime throws in
                try await runtime.start(Scripted.self, id: "evolving", input: "")
                try await gate.waitUntilArrived(1)
            }
            let v2Ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Scripted(steps: v2, ledger: v2Ledger, gate: nil)]) { runtime throws in
                let error = await #expect(throws: ContinuumError.self) {
                    try await runtime.handle(Scripted.self, id: "evolving").result()
                }
                #expect(error?.code == .nondeterminism)
                for word in words {
                    #expect(error?.message.contains(word) == true, "message should mention \(word): \(error?.message ?? "")")
                }
                #expect(error?.workflowID == "evolving")
                #expect(try await runtime.status(of: "evolving")?.status == .suspended)
                let history = try await runtime.history(of: "evolving")
                #expect(history.count == 4, "a suspended workflow appends only its suspension")
                guard case .workflowSuspended(let record)? = history.last?.kind else {
                    Issue.record("the suspension is not in history: \(history.map(\.kindName))")
                    return
                }
                #expect(record.code == "nondeterminism" && record.recorded != nil && record.requested != nil, "\(record)")
            }
            #expect(v2Ledger.count("c") == 0 && v2Ledger.count("d") == 0, "no step after the divergence ran")
            // The suspension is stored: after a restart with the original code it is still
            // suspended, until someone resumes it; then it completes.
            let output = try await WorkflowRuntime.withLMDB(path: path, workflows: [Scripted(steps: v1, ledger: ledger, gate: nil)]) { runtime in
                #expect(try await runtime.status(of: "evolving")?.status == .suspended)
                #expect(try await runtime.list(status: .suspended).map(\.id) == ["evolving"])
                try await runtime.resume("evolving", by: "test", reason: "v1 deployed again")
                return try await runtime.handle(Scripted.self, id: "evolving").result()
            }
            #expect(output == v1.map { "\($0)-done" })
            #expect(ledger.count("a") == 1 && ledger.count("b") == 1)
        }
    }

    @Test("concurrent steps (async let, task group) replay to the same results without divergence", arguments: 0..<3)
    func concurrentStepsReplay(round: Int) async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            let width = 8
            // Stop in the final step, then replay the concurrent part several times.
            for restart in 0..<4 {
                let gate = Gate()
                try await WorkflowRuntime.withLMDB(path: path, workflows: [FanOut(ledger: ledger, gate: gate)]) { runtime throws in
                    if restart == 0 { try await runtime.start(FanOut.self, id: "fan", input: width) }
                    try await eventually {
                        if gate.arrived == 1 { return true }
                        return try await runtime.suspension(of: "fan") != nil
                    }
                    let suspension = try await runtime.suspension(of: "fan")
                    #expect(suspension == nil, "replay diverged: \(String(describing: suspension))")
                }
            }
            let output = try await WorkflowRuntime.withLMDB(path: path, workflows: [FanOut(ledger: ledger, gate: nil)]) { runtime in
                try await runtime.handle(FanOut.self, id: "fan").result()
            }
            #expect(output == ["L", "R"] + (0..<width).map { "f\($0)!" } + ["done"])
            for name in ["left", "right"] + (0..<width).flatMap({ ["fetch-\($0)", "check-\($0)"] }) {
                #expect(ledger.count(name) == 1, "\(name) ran \(ledger.count(name)) times")
            }
            #expect(ledger.count("final") == 5)
        }
    }

    @Test("two steps of the same name running at once fail loud with ambiguousStep")
    func ambiguousConcurrentNames() async throws {
        struct SameNames: Workflow {
            func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for index in 0..<3 {
                        group.addTask {
                            try await ctx.step("fetch") { () -> Int in
                                try await Task.sleep(for: .milliseconds(50))
                                return index
                            }
                        }
                    }
                    return try await group.reduce(0, +)
                }
            }
        }
        try await withTemporaryDirectory { path in
            try await WorkflowRuntime.withLMDB(path: path, workflows: [SameNames()]) { runtime throws in
                let error = await #expect(throws: ContinuumError.self) {
                    try await runtime.start(SameNames.self, id: "same-names", input: 0).result()
                }
                #expect(error?.code == .workflowFailed)
                #expect(error?.message.contains("ambiguousStep") == true)
            }
        }
    }

    @Test("each step's idempotency key is stable across runs and distinct between steps")
    func idempotencyKeys() async throws {
        struct Keys: Workflow {
            let gate: Gate?
            let ledger: Ledger
            func run(_ ctx: WorkflowContext, input: Int) async throws -> [String] {
                let first = try await ctx.step("charge") { step in step.idempotencyKey }
                let second = try await ctx.step("charge") { step in step.idempotencyKey }
                let third = try await ctx.step("refund") { (step: StepContext) -> String in
                    ledger.record(step.idempotencyKey)
                    if let gate { try await gate.wait() }
                    return step.idempotencyKey
                }
                return [first, second, third]
            }
        }
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            let gate = Gate()
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Keys(gate: gate, ledger: ledger)]) { runtime throws in
                try await runtime.start(Keys.self, id: "order-7", input: 0)
                try await gate.waitUntilArrived(1)
            }
            let keys = try await WorkflowRuntime.withLMDB(path: path, workflows: [Keys(gate: nil, ledger: ledger)]) { runtime in
                try await runtime.handle(Keys.self, id: "order-7").result()
            }
            #expect(keys == ["order-7/charge/0", "order-7/charge/1", "order-7/refund/0"])
            #expect(ledger.count("order-7/refund/0") == 2, "the interrupted step ran twice with the same key")
        }
    }
}
