@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Synchronization
import Testing

struct ThreeSteps: Workflow {
    static let name = "three-steps"
    let ledger: Ledger

    func run(_ ctx: WorkflowContext, input: Int) async throws -> String {
        let a = try await ctx.step("a") { () -> Int in ledger.record("a"); return input + 1 }
        let b = try await ctx.step("b") { () -> Int in ledger.record("b"); return a * 2 }
        try await ctx.step("c") { ledger.record("c") }
        return "\(a)-\(b)"
    }
}

/// A workflow whose steps are given by its input; version 2 can reorder or rename them.
struct Scripted: Workflow {
    static let name = "scripted"
    let steps: [String]
    let ledger: Ledger
    let gate: Gate?

    func run(_ ctx: WorkflowContext, input: String) async throws -> [String] {
        var results: [String] = []
        for (index, step) in steps.enumerated() {
            results.append(
                try await ctx.step(step) { () -> String in
                    ledger.record(step)
                    if index == 2, let gate { try await gate.wait() }
                    return "\(step)-done"
                })
        }
        return results
    }
}

@Suite("Runtime")
struct RuntimeTests {
    @Test("runs a workflow's steps once and returns its output")
    func runsWorkflow() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            let output = try await WorkflowRuntime.withLMDB(path: path, workflows: [ThreeSteps(ledger: ledger)]) { runtime throws in
                try await runtime.start(ThreeSteps.self, id: "w1", input: 4).result()
            }
            #expect(output == "5-10")
            #expect(ledger.count("a") == 1 && ledger.count("b") == 1 && ledger.count("c") == 1)
        }
    }

    @Test("starting the same id twice gives the same run")
    func idempotentStart() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, workflows: [ThreeSteps(ledger: ledger)]) { runtime throws in
                let first = try await runtime.start(ThreeSteps.self, id: "same", input: 1)
                let second = try await runtime.start(ThreeSteps.self, id: "same", input: 1)
                #expect(try await first.result() == "2-4")
                #expect(try await second.result() == "2-4")
                let third = try await runtime.start(ThreeSteps.self, id: "same", input: 1)
                #expect(try await third.result() == "2-4")
                // Another input for the same id is refused, as over HTTP.
                let other = await #expect(throws: ContinuumError.self) { try await runtime.start(ThreeSteps.self, id: "same", input: 99) }
                #expect(other?.code == .workflowIDConflict)
                #expect(ledger.count("a") == 1)
                #expect(try await runtime.list().count == 1)
                #expect(try await runtime.history(of: "same").count == 5)
            }
        }
    }

    @Test("fifty concurrent starts of one id create one workflow")
    func concurrentStarts() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, workflows: [ThreeSteps(ledger: ledger)]) { runtime throws in
                try await withThrowingTaskGroup(of: String.self) { group in
                    for _ in 0..<50 {
                        group.addTask { try await runtime.start(ThreeSteps.self, id: "race", input: 5).result() }
                    }
                    var outputs = Set<String>()
                    for try await output in group { outputs.insert(output) }
                    #expect(outputs.count == 1)
                }
                #expect(ledger.count("a") == 1)
                #expect(try await runtime.history(of: "race").count == 5)
            }
        }
    }

    @Test("one runtime runs again after it stopped, and a workflow started while stopped begins at the next run")
    func runTwice() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            try await LMDBStore.withStore(path: path) { store throws in
                let runtime = WorkflowRuntime(store: store, workflows: [ThreeSteps(ledger: ledger)])
                let first = try await runtime.withRunning { runtime in
                    try await runtime.start(ThreeSteps.self, id: "first", input: 1).result()
                }
                let parked = try await runtime.start(ThreeSteps.self, id: "parked", input: 2)
                #expect(try await runtime.status(of: "parked")?.status == .running)
                #expect(ledger.count("a") == 1, "nothing runs while the runtime is stopped")
                let (second, parkedOutput) = try await runtime.withRunning { runtime in
                    (try await runtime.start(ThreeSteps.self, id: "second", input: 3).result(), try await parked.result())
                }
                #expect(first == "2-4" && second == "4-8" && parkedOutput == "3-6")
                #expect(ledger.count("a") == 3)
            }
        }
    }

    @Test("the store's writer and the timer thread carry their names, as top -H and perf show them")
    func threadNames() async throws {
        /// The names of this process's threads, as the kernel keeps them.
        func threadNames() throws -> Set<String> {
            let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")
            return Set(tasks.compactMap { try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8).trimmingCharacters(in: .newlines) })
        }
        try await withTemporaryDirectory { path in
            try await LMDBStore.withStore(path: path) { store throws in
                let runtime = WorkflowRuntime(store: store, workflows: [ThreeSteps(ledger: Ledger())])
                try await runtime.withRunning { runtime in
                    _ = try await runtime.start(ThreeSteps.self, id: "named", input: 1).result()
                    // Each thread names itself once it starts.
                    try await eventually {
                        let names = try threadNames()
                        return names.contains("continuum-lmdb") && names.contains("continuum-timer")
                    }
                }
            }
        }
    }

    @Test("a handle waiting when the runtime stops gets a named error")
    func waiterAtShutdown() async throws {
        try await withTemporaryDirectory { path in
            let gate = Gate()
            let ledger = Ledger()
            try await LMDBStore.withStore(path: path) { store throws in
                let runtime = WorkflowRuntime(store: store, workflows: [Scripted(steps: ["a", "b", "c"], ledger: ledger, gate: gate)])
                let handle = try await runtime.start(Scripted.self, id: "slow", input: "")
                let running = Task { try await runtime.run() }
                try await gate.waitUntilArrived(1)
                async let waited = errorOf { _ = try await handle.result() }
                try await Task.sleep(for: .milliseconds(20))
                running.cancel()
                try await running.value
                // Whether the waiter registered before the stop or after it, it is told, not left hanging.
                let error = await waited as? ContinuumError
                #expect(error?.code == .storeClosed || error?.code == .notRunning, "got \(String(describing: error))")
                let late = await #expect(throws: ContinuumError.self) { try await handle.result() }
                #expect(late?.code == .notRunning)
            }
        }
    }

    @Test("a result can be read after a restart")
    func resultAfterRestart() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, workflows: [ThreeSteps(ledger: ledger)]) { runtime throws in
                _ = try await runtime.start(ThreeSteps.self, id: "kept", input: 10).result()
            }
            try await WorkflowRuntime.withLMDB(path: path, workflows: [ThreeSteps(ledger: ledger)]) { runtime throws in
                #expect(try await runtime.handle(ThreeSteps.self, id: "kept").result() == "11-22")
                #expect(try await runtime.status(of: "kept")?.status == .completed)
                #expect(try await runtime.list(status: .completed).map(\.id) == ["kept"])
                #expect(try await runtime.list(status: .running).isEmpty)
            }
            #expect(ledger.total == 3)
        }
    }

    @Test("a workflow stopped mid-way resumes without re-running completed steps")
    func resumesAfterStop() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            let gate = Gate()
            let steps = ["one", "two", "three", "four"]
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Scripted(steps: steps, ledger: ledger, gate: gate)]) { runtime throws in
                try await runtime.start(Scripted.self, id: "resume", input: "")
                try await gate.waitUntilArrived(1)
            }
            #expect(ledger.count("one") == 1 && ledger.count("two") == 1 && ledger.count("three") == 1)
            let events = try await WorkflowRuntime.withLMDB(path: path, workflows: [Scripted(steps: steps, ledger: ledger, gate: nil)]) { runtime throws in
                #expect(try await runtime.handle(Scripted.self, id: "resume").result() == steps.map { "\($0)-done" })
                return try await runtime.history(of: "resume")
            }
            #expect(ledger.count("one") == 1, "a completed step ran again")
            #expect(ledger.count("two") == 1, "a completed step ran again")
            #expect(ledger.count("three") == 2, "the interrupted step runs again")
            #expect(ledger.count("four") == 1)
            #expect(events.count == 6)
            #expect(events.map(\.sequence) == Array(0..<6))
        }
    }

    @Test("a failing step fails the workflow with a named error, recorded in history")
    func stepFailure() async throws {
        struct Boom: Error {}
        struct Failing: Workflow {
            func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
                try await ctx.step("explode") { () -> Int in throw Boom() }
            }
        }
        try await withTemporaryDirectory { path in
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Failing()]) { runtime throws in
                let error = await #expect(throws: ContinuumError.self) {
                    try await runtime.start(Failing.self, id: "f", input: 1).result()
                }
                #expect(error?.code == .workflowFailed)
                #expect(error?.message.contains("explode") == true)
                let history = try await runtime.history(of: "f")
                guard case .stepFailed(let step, let failure) = history[1].kind else {
                    Issue.record("expected stepFailed, got \(history[1].kind)")
                    return
                }
                #expect(step.name == "explode")
                #expect(failure.type.contains("Boom"))
                guard case .workflowFailed = history[2].kind else {
                    Issue.record("expected workflowFailed")
                    return
                }
                #expect(try await runtime.status(of: "f")?.status == .failed)
            }
        }
    }

    @Test("an unregistered type is refused at start")
    func unknownTypeAtStart() async throws {
        try await withTemporaryDirectory { path in
            try await WorkflowRuntime.withLMDB(path: path, workflows: []) { runtime throws in
                let error = await #expect(throws: ContinuumError.self) {
                    try await runtime.start(ThreeSteps.self, id: "x", input: 1)
                }
                #expect(error?.code == .unknownWorkflowType)
                #expect(try await runtime.list().isEmpty)
            }
        }
    }

    @Test("an id used by another type is refused")
    func idConflict() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(
                path: path, workflows: [ThreeSteps(ledger: ledger), Scripted(steps: [], ledger: ledger, gate: nil)]
            ) { runtime throws in
                _ = try await runtime.start(ThreeSteps.self, id: "taken", input: 1).result()
                let error = await #expect(throws: ContinuumError.self) {
                    try await runtime.start(Scripted.self, id: "taken", input: "")
                }
                #expect(error?.code == .workflowIDConflict)
            }
        }
    }

    @Test("an unknown workflow type on recovery suspends that workflow, not the runtime")
    func unknownTypeOnRecovery() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            let gate = Gate()
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Scripted(steps: ["a", "b", "c"], ledger: ledger, gate: gate)]) { runtime throws in
                try await runtime.start(Scripted.self, id: "orphan", input: "")
                try await gate.waitUntilArrived(1)
            }
            let before = try await WorkflowRuntime.withLMDB(path: path, workflows: []) { runtime throws in
                try await eventually { try await runtime.suspension(of: "orphan") != nil }
                let error = await #expect(throws: ContinuumError.self) {
                    try await runtime.handle(Scripted.self, id: "orphan").result()
                }
                #expect(error?.code == .unknownWorkflowType)
                #expect(try await runtime.status(of: "orphan")?.status == .suspended)
                #expect(try await runtime.list(status: .suspended).map(\.id) == ["orphan"])
                #expect(try await runtime.suspension(of: "orphan")?.code == "unknownWorkflowType")
                return try await runtime.history(of: "orphan").count
            }
            #expect(before == 4, "only the suspension was appended")
        }
    }

    @Test("ctx.now, uuid and random are recorded and return the same values on replay")
    func deterministicValues() async throws {
        struct Values: Codable, Equatable { var now: Date; var uuid: UUID; var random: UInt64 }
        struct Draws: Workflow {
            let gate: Gate?
            func run(_ ctx: WorkflowContext, input: Int) async throws -> [Values] {
                let first = Values(now: try await ctx.now(), uuid: try await ctx.uuid(), random: try await ctx.random())
                try await ctx.step("pause") { if let gate { try await gate.wait() } }
                return [first]
            }
        }
        try await withTemporaryDirectory { path in
            let gate = Gate()
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Draws(gate: gate)]) { runtime throws in
                try await runtime.start(Draws.self, id: "d", input: 0)
                try await gate.waitUntilArrived(1)
            }
            let recorded = try await WorkflowRuntime.withLMDB(path: path, workflows: [Draws(gate: nil)]) { runtime throws in
                try await runtime.handle(Draws.self, id: "d").result()
            }
            let history = try await WorkflowRuntime.withLMDB(path: path, workflows: []) { try await $0.history(of: "d") }
            guard case .stepCompleted(_, let uuidBytes) = history[2].kind else {
                Issue.record("expected the uuid step at sequence 2")
                return
            }
            let storedUUID = try JSONDecoder().decode(UUID.self, from: Data(uuidBytes))
            #expect(recorded[0].uuid == storedUUID)
        }
    }
}
