@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumMacros
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import MetricsTestKit
import Testing

/// Signs a user up, sleeps a day, then follows up: version 1, as deployed when the workflows
/// started. Its step bodies are fingerprinted with `#step`.
struct FollowUpV1: Workflow {
    static let name = "follow-up"
    let ledger: Ledger

    func run(_ ctx: WorkflowContext, input: String) async throws -> String {
        let a = try await #step(ctx, "a") { () -> String in
            ledger.record("a")
            return "a:\(input)"
        }
        let b = try await #step(ctx, "b") { step -> String in
            ledger.record("b v1 \(step.idempotencyKey)")
            return "b1"
        }
        try await ctx.sleep(for: .seconds(86_400), name: "wait-a-day")
        let c = try await #step(ctx, "c") { () -> String in
            ledger.record("c")
            return "c"
        }
        return [a, b, c].joined(separator: " ")
    }
}

/// Version 2: `b`'s body was edited (another result). Everything else is the same code.
struct FollowUpV2: Workflow {
    static let name = "follow-up"
    let ledger: Ledger

    func run(_ ctx: WorkflowContext, input: String) async throws -> String {
        let a = try await #step(ctx, "a") { () -> String in
            ledger.record("a")
            return "a:\(input)"
        }
        let b = try await #step(ctx, "b") { step -> String in
            ledger.record("b v2 \(step.idempotencyKey)")
            return "b2"
        }
        try await ctx.sleep(for: .seconds(86_400), name: "wait-a-day")
        let c = try await #step(ctx, "c") { () -> String in
            ledger.record("c")
            return "c"
        }
        return [a, b, c].joined(separator: " ")
    }
}

/// Version 1 again with comments and other spacing only: the same fingerprints.
struct FollowUpV1Reformatted: Workflow {
    static let name = "follow-up"
    let ledger: Ledger

    func run(_ ctx: WorkflowContext, input: String) async throws -> String {
        let a = try await #step(ctx, "a") { () -> String in
            // Record the call.
            ledger.record( "a" )
            return "a:\(input)"  // the signup
        }
        let b = try await #step(ctx, "b") {
            step -> String in ledger.record("b v1 \(step.idempotencyKey)")
            /* unchanged */ return "b1"
        }
        try await ctx.sleep(for: .seconds(86_400), name: "wait-a-day")
        let c = try await #step(ctx, "c") { () -> String in ledger.record("c"); return "c" }
        return [a, b, c].joined(separator: " ")
    }
}

@Suite("Evolution", .serialized)
struct EvolutionTests {
    /// Runs version 1 of `follow-up` for workflow `id` on the store at `path` until it sleeps after `b`.
    private func startV1(path: String, clock: ManualClock, ids: [String] = ["u1"], ledger: Ledger) async throws {
        try await WorkflowRuntime.withLMDB(path: path, workflows: [FollowUpV1(ledger: ledger)], runtime: .init(clock: clock)) { runtime throws in
            for id in ids { try await runtime.start(FollowUpV1.self, id: id, input: id) }
            try await runtime.waitForTimers(ids.count)
        }
    }

    private func configuration(_ clock: ManualClock, _ policy: WorkflowRuntime.CodeChangePolicy) -> WorkflowRuntime.Configuration {
        var configuration = WorkflowRuntime.Configuration(clock: clock)
        configuration.codeChange = policy
        configuration.build = "v2"
        return configuration
    }

    @Test("fingerprints ignore comments and spacing, and change with the code")
    func fingerprints() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            try await startV1(path: path, clock: clock, ledger: Ledger())
            let recorded = try await LMDBStore.withStore(path: path) { store throws in
                try #require(try await store.load(id: "u1")).events.compactMap { event -> String? in
                    if case .stepCompleted(let step, _) = event.kind { step.fingerprint } else { nil }
                }
            }
            #expect(recorded.count == 2 && recorded.allSatisfy { $0.hasPrefix("h") && $0.count == 17 }, "\(recorded)")
            let history = try await LMDBStore.withStore(path: path) { store throws in WorkflowHistory(try #require(try await store.load(id: "u1"))) }
            let reformatted = await WorkflowReplayer(workflows: [FollowUpV1Reformatted(ledger: Ledger())]).replay(history)
            #expect(reformatted.isCompatible && reformatted.changedSteps.isEmpty, "\(reformatted)")
            let edited = await WorkflowReplayer(workflows: [FollowUpV2(ledger: Ledger())]).replay(history)
            guard case .codeChanged(let step, .suspend) = edited.outcome else {
                Issue.record("the edited body was not noticed: \(edited)")
                return
            }
            #expect(step == StepKey(name: "b", occurrence: 0))
        }
    }

    @Test("development: a workflow asleep after b reruns from b with version 2 and completes with its result; nothing is deleted")
    func developmentReruns() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await startV1(path: path, clock: clock, ledger: ledger)
            try await WorkflowRuntime.withLMDB(path: path, workflows: [FollowUpV2(ledger: ledger)], runtime: configuration(clock, .rerun)) { runtime throws in
                try await runtime.waitForTimers(1)
                clock.advance(by: .seconds(86_400))
                #expect(try await runtime.handle(FollowUpV2.self, id: "u1").result() == "a:u1 b2 c")
                let history = try await runtime.history(of: "u1")
                let effective = try await runtime.history(of: "u1", includingSuperseded: false)
                #expect(history.count > effective.count, "the superseded tail is kept")
                #expect(history.contains { if case .stepCompleted(let step, let result) = $0.kind { step.name == "b" && result == Array("\"b1\"".utf8) } else { false } })
                guard let reset = history.first(where: { $0.kindName == "workflowReset" }), case .workflowReset(_, let generation, let action) = reset.kind else {
                    Issue.record("no reset recorded: \(history.map(\.kindName))")
                    return
                }
                #expect(generation == 1 && action.reason.contains("'b'"), "\(action)")
            }
            #expect(ledger.count("a") == 1, "a's code did not change: it must not run again")
            #expect(ledger.count("b v1 u1/b/0") == 1)
            #expect(ledger.count("b v2 u1/b/0/reset-1") == 1, "the rerun step gets a new idempotency key")
        }
    }

    @Test("production: the workflow is suspended naming b, stays suspended across a restart, and each way out works")
    func productionSuspends() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await startV1(path: path, clock: clock, ids: ["resumed", "reset", "cancelled", "forked"], ledger: ledger)
            // The deploy gate, before version 2 runs: every one would break at b.
            let report = try await LMDBStore.withStore(path: path) { store throws in
                try await WorkflowReplayer(workflows: [FollowUpV2(ledger: Ledger())]).check(store: store)
            }
            #expect(!report.passed && report.breaking == 4)
            #expect(report.entries.allSatisfy { $0.verdict == .codeChanged && $0.step == "'b'" && $0.outcome == "suspend" }, "\(report.text())")

            try await WorkflowRuntime.withLMDB(path: path, workflows: [FollowUpV2(ledger: ledger)], runtime: configuration(clock, .suspend)) { runtime throws in
                for id in ["resumed", "reset", "cancelled", "forked"] {
                    try await runtime.waitForStatus(of: id, .suspended)
                    let record = try #require(try await runtime.suspension(of: id))
                    #expect(record.code == "codeChanged" && record.recorded == StepKey(name: "b", occurrence: 0) && record.build == "v2", "\(record)")
                }
                #expect(try await runtime.counts()[.suspended] == 4)
            }
            #expect(ledger.count("c") == 0 && !ledger.names.contains { $0.hasPrefix("b v2") }, "a suspended workflow ran a step")

            // After a restart they are still suspended; the ways out.
            try await WorkflowRuntime.withLMDB(path: path, workflows: [FollowUpV2(ledger: ledger)], runtime: configuration(clock, .suspend)) { runtime throws in
                #expect(Set(try await runtime.list(status: .suspended).map(\.id)) == ["resumed", "reset", "cancelled", "forked"])
                // Reset to b: version 2 runs b again and completes with its result.
                try await runtime.reset("reset", toStep: "b", by: "ops", reason: "take the new b")
                try await runtime.waitForTimers(1)
                clock.advance(by: .seconds(86_400))
                #expect(try await runtime.handle(FollowUpV2.self, id: "reset").result() == "a:reset b2 c")
                // Fork: a new workflow from the copy up to b, run with version 2; the original stays suspended.
                try await runtime.fork("forked", toStep: "b", as: "forked-copy", by: "dev", reason: "try version 2")
                #expect(try await runtime.status(of: "forked")?.status == .suspended)
                try await runtime.waitForTimers(1)
                clock.advance(by: .seconds(86_400))
                #expect(try await runtime.handle(FollowUpV2.self, id: "forked-copy").result() == "a:forked b2 c")
                // Cancel: it ends cancelled at once.
                try await runtime.cancel("cancelled", reason: "not needed")
                #expect(try await runtime.status(of: "cancelled")?.status == .cancelled)
                let cancelled = await #expect(throws: ContinuumError.self) { try await runtime.handle(FollowUpV2.self, id: "cancelled").result() }
                #expect(cancelled?.code == .cancelled)
                #expect(try await runtime.counts()[.suspended] == 2)
                // Resuming with version 2 still does not match: suspended again, with a second record.
                try await runtime.resume("resumed", by: "ops", reason: "try v2")
                try await runtime.waitForHistory(of: "resumed") { $0.filter { $0.kindName == "workflowSuspended" }.count == 2 }
                #expect(try await runtime.status(of: "resumed")?.status == .suspended)
            }
            // Version 1 deployed again: resume completes it with the recorded b.
            try await WorkflowRuntime.withLMDB(path: path, workflows: [FollowUpV1(ledger: ledger)], runtime: .init(clock: clock)) { runtime throws in
                try await runtime.resume("resumed", by: "ops", reason: "v1 is back")
                // Its sleep came due while it was suspended: it fires at once.
                #expect(try await runtime.handle(FollowUpV1.self, id: "resumed").result() == "a:resumed b1 c")
                let kinds = try await runtime.history(of: "resumed").map(\.kindName)
                #expect(kinds.filter { $0 == "workflowResumed" }.count == 2 && kinds.filter { $0 == "workflowSuspended" }.count == 2, "\(kinds)")
                // Nothing recorded is lost: the reset workflow keeps b's first result.
                let reset = try await runtime.history(of: "reset")
                #expect(reset.contains { if case .stepCompleted(let step, let result) = $0.kind { step.name == "b" && result == Array("\"b1\"".utf8) } else { false } })
            }
        }
    }

    @Test("accept keeps the recorded result of a changed step")
    func acceptKeeps() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await startV1(path: path, clock: clock, ledger: ledger)
            try await WorkflowRuntime.withLMDB(path: path, workflows: [FollowUpV2(ledger: ledger)], runtime: configuration(clock, .accept)) { runtime throws in
                try await runtime.waitForTimers(1)
                clock.advance(by: .seconds(86_400))
                #expect(try await runtime.handle(FollowUpV2.self, id: "u1").result() == "a:u1 b1 c")
            }
        }
    }

    @Test("a suspended workflow keeps the events sent to it and consumes them once resumed")
    func eventsWhileSuspended() async throws {
        struct Waiter: Workflow {
            static let name = "waiter"
            let version: Int
            func run(_ ctx: WorkflowContext, input: String) async throws -> String {
                try await ctx.step("prepare", version: version) { }
                let got = try await ctx.waitForEvent("go", as: String.self)
                return got ?? "none"
            }
        }
        try await withTemporaryDirectory { path in
            // Not parked (a parked workflow is found changed only when it wakes), however slow the machine.
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Waiter(version: 1)], runtime: .init(parkAfter: nil)) { runtime throws in
                try await runtime.start(Waiter.self, id: "w", input: "")
                try await runtime.waitForHistory(of: "w") { $0.contains { $0.kindName == "waitStarted" } }
            }
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Waiter(version: 2)]) { runtime throws in
                try await runtime.waitForStatus(of: "w", .suspended)
                let receipt = try await runtime.send("go", to: "w", payload: "hello", dedupKey: "k1")
                let again = try await runtime.send("go", to: "w", payload: "hello", dedupKey: "k1")
                #expect(!receipt.duplicate && again.duplicate && again.sequence == receipt.sequence)
                #expect(try await runtime.status(of: "w")?.status == .suspended)
            }
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Waiter(version: 1)]) { runtime throws in
                try await runtime.resume("w")
                #expect(try await runtime.handle(Waiter.self, id: "w").result() == "hello")
            }
        }
    }

    @Test("version markers: runs from before the change keep the old branch, new runs take and record the new one")
    func markers() async throws {
        struct Billing: Workflow {
            static let name = "billing"
            let patched: Bool
            let ledger: Ledger
            func run(_ ctx: WorkflowContext, input: String) async throws -> String {
                try await ctx.step("invoice") { ledger.record("invoice \(input)") }
                var channel = "email"
                if patched, try await ctx.patched("sms-2026") {
                    channel = "sms"
                    try await ctx.step("sms") { ledger.record("sms \(input)") }
                }
                try await ctx.sleep(for: .seconds(60))
                try await ctx.step("close") { ledger.record("close \(input)") }
                return channel
            }
        }
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Billing(patched: false, ledger: ledger)], runtime: .init(clock: clock)) { runtime throws in
                try await runtime.start(Billing.self, id: "old", input: "old")
                try await runtime.waitForTimers(1)
            }
            let report = try await LMDBStore.withStore(path: path) { store throws in
                try await WorkflowReplayer(workflows: [Billing(patched: true, ledger: Ledger())]).check(store: store)
            }
            #expect(report.passed, "\(report.text())")
            #expect(report.markers["sms-2026"] == CheckReport.MarkerUse(oldBranch: 1, newBranch: 0), "\(report.markers)")
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Billing(patched: true, ledger: ledger)], runtime: .init(clock: clock)) { runtime throws in
                try await runtime.start(Billing.self, id: "new", input: "new")
                try await runtime.waitForTimers(2)
                clock.advance(by: .seconds(60))
                #expect(try await runtime.handle(Billing.self, id: "old").result() == "email")
                #expect(try await runtime.handle(Billing.self, id: "new").result() == "sms")
                let kinds = try await runtime.history(of: "new").map(\.kindName)
                #expect(kinds.contains("markerRecorded"))
                #expect(!(try await runtime.history(of: "old").map(\.kindName).contains("markerRecorded")))
            }
            #expect(ledger.count("sms old") == 0 && ledger.count("sms new") == 1)
        }
    }

    @Test("a step renamed inside a task group suspends before its body runs; nothing of it is appended")
    func renamedInTaskGroup() async throws {
        struct Fan: Workflow {
            static let name = "fan"
            let names: [String]
            let ledger: Ledger
            let gate: Gate?
            func run(_ ctx: WorkflowContext, input: Int) async throws -> [String] {
                let fetched = try await withThrowingTaskGroup(of: String.self) { group in
                    for name in names {
                        group.addTask { try await ctx.step(name) { () -> String in ledger.record(name); return name } as String }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                _ = try await ctx.step("after") { () -> Int in
                    ledger.record("after")
                    if let gate { try await gate.wait() }
                    return 1
                }
                return fetched.sorted()
            }
        }
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            let gate = Gate()
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Fan(names: ["f-1", "f-2", "f-3"], ledger: ledger, gate: gate)]) { runtime throws in
                try await runtime.start(Fan.self, id: "fan", input: 0)
                try await gate.waitUntilArrived(1)
            }
            let before = try await LMDBStore.withStore(path: path) { store throws in try #require(try await store.load(id: "fan")).events.count }
            let renamed = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Fan(names: ["f-1", "g-2", "f-3"], ledger: renamed, gate: nil)]) { runtime throws in
                try await runtime.waitForStatus(of: "fan", .suspended)
                let record = try #require(try await runtime.suspension(of: "fan"))
                #expect(record.code == "nondeterminism" && record.requested == StepKey(name: "g-2", occurrence: 0), "\(record)")
            }
            #expect(renamed.count("g-2") == 0, "the renamed step's body ran")
            let after = try await LMDBStore.withStore(path: path) { store throws in try #require(try await store.load(id: "fan")).events }
            #expect(after.count == before + 1 && after.last?.kindName == "workflowSuspended", "only the suspension was appended: \(after.map(\.kindName))")
        }
    }

    @Test("now, uuid and random with names work in concurrent branches and replay to the same values")
    func namedValuesInBranches() async throws {
        struct Stamps: Workflow {
            static let name = "stamps"
            let gate: Gate?
            func run(_ ctx: WorkflowContext, input: Int) async throws -> [String] {
                let values = try await withThrowingTaskGroup(of: String.self) { group in
                    for branch in 0..<4 {
                        group.addTask {
                            let id = try await ctx.uuid(name: "branch-\(branch)")
                            let draw = try await ctx.random(name: "branch-\(branch)")
                            let time = try await ctx.now(name: "branch-\(branch)")
                            return "\(branch) \(id) \(draw) \(time.timeIntervalSince1970)"
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }.sorted()
                }
                try await ctx.step("hold") { if let gate { try await gate.wait() } }
                return values
            }
        }
        try await withTemporaryDirectory { path in
            let gate = Gate()
            let first = try await WorkflowRuntime.withLMDB(path: path, workflows: [Stamps(gate: gate)]) { runtime throws in
                try await runtime.start(Stamps.self, id: "s", input: 0)
                try await gate.waitUntilArrived(1)
                return try await runtime.history(of: "s").count
            }
            #expect(first == 13, "twelve named values and the start")
            let replayed = try await WorkflowRuntime.withLMDB(path: path, workflows: [Stamps(gate: nil)]) { runtime throws in
                try await runtime.handle(Stamps.self, id: "s").result()
            }
            let recorded = try await LMDBStore.withStore(path: path) { store throws in try #require(try await store.load(id: "s")).events }
            for branch in 0..<4 {
                let uuid = recorded.compactMap { event -> String? in
                    if case .stepCompleted(let step, let result) = event.kind, step.name == "continuum.uuid:branch-\(branch)" {
                        return try? JSONDecoder().decode(UUID.self, from: Data(result)).uuidString
                    }
                    return nil
                }
                #expect(uuid.count == 1 && replayed[branch].contains(uuid[0]), "branch \(branch): \(replayed[branch])")
            }
        }
    }

    @Test("the suspended gauge counts suspended workflows, from the store after a restart")
    func suspendedGauge() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            try await startV1(path: path, clock: clock, ids: ["x", "y"], ledger: Ledger())
            let metrics = TestMetrics()
            var first = configuration(clock, .suspend)
            first.metricsFactory = metrics
            try await WorkflowRuntime.withLMDB(path: path, workflows: [FollowUpV2(ledger: Ledger())], runtime: first) { runtime throws in
                try await runtime.waitForStatus(of: "x", .suspended)
                try await runtime.waitForStatus(of: "y", .suspended)
                try await eventually { metrics.gauge("continuum_workflows_suspended") == 2 }
                try await runtime.cancel("x")
                #expect(metrics.gauge("continuum_workflows_suspended") == 1)
            }
            let second = TestMetrics()
            var again = configuration(clock, .suspend)
            again.metricsFactory = second
            try await WorkflowRuntime.withLMDB(path: path, workflows: [FollowUpV2(ledger: Ledger())], runtime: again) { runtime throws in
                try await eventually { runtime.isReady }
                #expect(second.gauge("continuum_workflows_suspended") == 1)
            }
        }
    }
}

extension TestMetrics {
    /// The last value recorded by the gauge with this label, if any.
    func gauge(_ label: String) -> Double? {
        (try? expectGauge(label))?.lastValue
    }
}
