@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

/// An order that uses every kind of call a history records: steps, a recorded time, concurrent
/// steps, a retried step, a durable sleep, an event wait with a timeout. `version` changes it
/// the ways a deploy might.
struct Order: Workflow {
    static let name = "order"

    enum Version: Sendable {
        /// As recorded.
        case original
        /// `reserve` renamed to `hold`.
        case renamedStep
        /// A new step after everything history holds.
        case addedStepAtEnd
        /// `charge` returns another type than the one recorded.
        case changedResultType
        /// `notify` removed: the code finishes without a step history holds.
        case removedLastStep
    }

    struct Input: Codable, Sendable { var item: String; var amount: Int }

    let version: Version
    let ledger: Ledger

    func run(_ ctx: WorkflowContext, input: Input) async throws -> String {
        let placed = try await ctx.now()
        let reservation = try await ctx.step(version == .renamedStep ? "hold" : "reserve") { () -> String in
            ledger.record("reserve")
            return "res-\(input.item)"
        }
        async let fraud = ctx.step("fraud-check") { () -> Bool in
            ledger.record("fraud-check")
            return input.amount < 10_000
        }
        async let stock = ctx.step("stock-check") { () -> Int in
            ledger.record("stock-check")
            return 3
        }
        let (clean, available) = try await (fraud, stock)
        let receipt: String
        if version == .changedResultType {
            receipt = String(try await ctx.step("charge") { () -> Int in 42 })
        } else {
            receipt = try await ctx.step("charge", retry: .exponential(maxAttempts: 3, initial: .seconds(1), jitter: 0)) { step -> String in
                ledger.record("charge")
                if step.attempt == 1 { throw Declined() }
                return "paid-\(input.amount)"
            }
        }
        try await ctx.sleep(for: .seconds(3600), name: "cool-off")
        let approval = try await ctx.waitForEvent("approve", as: String.self, timeout: .seconds(86_400))
        if version != .removedLastStep {
            try await ctx.step("notify") { ledger.record("notify") }
        }
        if version == .addedStepAtEnd {
            try await ctx.step("archive") { ledger.record("archive") }
        }
        return "\(reservation) \(clean) \(available) \(receipt) \(approval ?? "none") \(placed.timeIntervalSince1970 > 0)"
    }

    struct Declined: Error {}
}

/// Where this file's recorded histories live.
private let historiesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Histories")

@Suite("Replayer")
struct ReplayerTests {
    /// Runs the original order to the end (or to its event wait when `approve` is nil) on an
    /// in-memory store and returns its history.
    private func record(id: String, approve: String?, ledger: Ledger = Ledger()) async throws -> WorkflowHistory {
        let clock = ManualClock()
        let store = InMemoryStore()
        try await WorkflowRuntime.withRuntime(
            store: store, workflows: [Order(version: .original, ledger: ledger)], configuration: .init(clock: clock, parkAfter: nil)
        ) { runtime in
            let handle = try await runtime.start(Order.self, id: id, input: .init(item: "lamp", amount: 120))
            // The charge's backoff, then the cool-off sleep.
            try await runtime.waitForHistory(of: id) { $0.contains { $0.kindName == "stepRetrying" } }
            try await runtime.waitForTimers(1)
            clock.advance(by: .seconds(1))
            try await runtime.waitForHistory(of: id) { history in history.contains { if case .waitStarted(_, .timer, _) = $0.kind { true } else { false } } }
            try await runtime.waitForTimers(1)
            clock.advance(by: .seconds(3600))
            try await runtime.waitForHistory(of: id) { history in history.contains { if case .waitStarted(_, .event, _) = $0.kind { true } else { false } } }
            if let approve {
                try await runtime.send("approve", to: id, payload: approve, dedupKey: "approval-1")
                _ = try await handle.result()
            }
        }
        let stored = try #require(try await store.load(id: id))
        return WorkflowHistory(stored)
    }

    @Test("a recorded history replays against unchanged code, running no step body")
    func unchanged() async throws {
        let history = try await record(id: "o1", approve: "ops")
        #expect(history.status == .completed)
        let ledger = Ledger()
        let result = await WorkflowReplayer(workflows: [Order(version: .original, ledger: ledger)]).replay(history)
        #expect(result.isCompatible, "\(result)")
        guard case .compatible(stoppedAt: nil) = result.outcome else {
            Issue.record("a finished history did not replay to the end: \(result)")
            return
        }
        #expect(ledger.total == 0, "a step body ran during the replay")
    }

    @Test("an unfinished history is compatible up to its end; what the code does next is new and allowed")
    func unfinished() async throws {
        let history = try await record(id: "o2", approve: nil)
        #expect(history.status == .running)
        for version in [Order.Version.original, .addedStepAtEnd, .removedLastStep] {
            let result = await WorkflowReplayer(workflows: [Order(version: version, ledger: Ledger())]).replay(history)
            #expect(result.isCompatible, "\(version): \(result)")
        }
    }

    @Test("a renamed step diverges, naming the position, what history recorded and what the code asked for")
    func renamed() async throws {
        let history = try await record(id: "o3", approve: "ops")
        let result = await WorkflowReplayer(workflows: [Order(version: .renamedStep, ledger: Ledger())]).replay(history)
        guard case .diverged(let error) = result.outcome else {
            Issue.record("a renamed step was not reported: \(result)")
            return
        }
        #expect(error.code == .nondeterminism)
        #expect(error.message.contains("'reserve'") && error.message.contains("'hold'"), "\(error.message)")
    }

    @Test("a removed step that history holds diverges when the code finishes without it")
    func removed() async throws {
        let history = try await record(id: "o4", approve: "ops")
        let result = await WorkflowReplayer(workflows: [Order(version: .removedLastStep, ledger: Ledger())]).replay(history)
        guard case .diverged(let error) = result.outcome else {
            Issue.record("a removed step was not reported: \(result)")
            return
        }
        #expect(error.message.contains("'notify'"), "\(error.message)")
    }

    @Test("a recorded result that no longer decodes as the code's type fails the replay with payloadCoding")
    func changedType() async throws {
        let history = try await record(id: "o5", approve: "ops")
        let result = await WorkflowReplayer(workflows: [Order(version: .changedResultType, ledger: Ledger())]).replay(history)
        guard case .failed(let error) = result.outcome else {
            Issue.record("a changed result type was not reported: \(result)")
            return
        }
        #expect(error.code == .payloadCoding)
        #expect(!result.isCompatible)
    }

    @Test("an unregistered type and an inconsistent history are reported, not thrown")
    func unknownAndDamaged() async throws {
        var history = try await record(id: "o6", approve: nil)
        let replayer = WorkflowReplayer(workflows: [Order(version: .original, ledger: Ledger())])
        history.type = "no-such-type"
        guard case .unknownType = await replayer.replay(history).outcome else {
            Issue.record("an unknown type was not reported")
            return
        }
        history.type = Order.name
        history.events.remove(at: 2)
        guard case .unreadable(let error) = await replayer.replay(history).outcome else {
            Issue.record("a history with a gap was not reported")
            return
        }
        #expect(error.code == .corruptedData)
    }

    @Test("an exported history file reads back equal, every field of every event kept")
    func fileRoundTrip() async throws {
        let history = try await record(id: "o7", approve: "ops")
        let read = try WorkflowHistory(json: try history.json())
        #expect(read == history)
        let kinds = Set(history.events.map(\.kindName))
        #expect(kinds.isSuperset(of: ["workflowStarted", "stepCompleted", "stepRetrying", "waitStarted", "waitEnded", "eventReceived", "workflowCompleted"]))
        let notHistory = #expect(throws: ContinuumError.self) { try WorkflowHistory(json: Data("{\"hello\": 1}".utf8)) }
        #expect(notHistory?.code == .invalidArgument)
        var future = history
        future.format = WorkflowHistory.currentFormat + 1
        let newer = #expect(throws: ContinuumError.self) { try WorkflowHistory(json: try future.json()) }
        #expect(newer?.message.contains("format") == true)
    }

    /// Histories recorded by an earlier build and kept in `Histories/`: today's code must still
    /// replay them. Set `CONTINUUM_RECORD_HISTORIES` to a directory to write fresh ones there.
    @Test("histories recorded by earlier builds still replay")
    func recordedFiles() async throws {
        if let directory = ProcessInfo.processInfo.environment["CONTINUUM_RECORD_HISTORIES"] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try await record(id: "order-finished", approve: "ops").json().write(to: URL(fileURLWithPath: directory + "/order-finished.json"))
            try await record(id: "order-waiting", approve: nil).json().write(to: URL(fileURLWithPath: directory + "/order-waiting.json"))
        }
        let files = try FileManager.default.contentsOfDirectory(at: historiesDirectory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "json" }
        #expect(files.count >= 2, "no recorded histories in \(historiesDirectory.path)")
        let replayer = WorkflowReplayer(workflows: [Order(version: .original, ledger: Ledger())])
        for file in files {
            let result = try await replayer.replay(contentsOf: file)
            #expect(result.isCompatible, "\(file.lastPathComponent): \(result)")
        }
    }

    @Test("every unfinished workflow of a store is replayed: compatible, diverged and unknown each reported")
    func wholeStore() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Scripted(steps: ["a", "b"], ledger: Ledger(), gate: nil), Reminder(ledger: Ledger())],
                runtime: .init(clock: clock)) { runtime throws in
                _ = try await runtime.start(Scripted.self, id: "done", input: "x").result()
                try await runtime.start(Reminder.self, id: "asleep", input: "y")
                try await runtime.waitForTimers(1)
            }
            try await LMDBStore.withStore(path: path) { store throws in
                // This build renamed the reminder's first step and dropped the scripted type.
                let replayer = WorkflowReplayer(workflows: [RenamedReminder()])
                let results = try await replayer.replay(store: store)
                #expect(results.map(\.id) == ["asleep"], "only unfinished workflows are replayed")
                guard case .diverged(let error) = results.first?.outcome else {
                    Issue.record("the renamed step was not reported: \(results)")
                    return
                }
                #expect(error.message.contains("'signup'") && error.message.contains("'register'"))
                let all = try await replayer.replay(store: store, statuses: [.completed, .running])
                #expect(all.map(\.isCompatible) == [false, false])
                guard case .unknownType = all.first?.outcome else {
                    Issue.record("an unregistered type was not reported: \(all)")
                    return
                }
            }
        }
    }
}

/// The reminder with its first step renamed.
private struct RenamedReminder: Workflow {
    static let name = "reminder"

    func run(_ ctx: WorkflowContext, input: String) async throws -> String {
        try await ctx.step("register") {}
        try await ctx.sleep(for: .seconds(3 * 86_400))
        return input
    }
}

/// Runs the steps its input names, sleeping a day at the given position; `rename` and
/// `insertFirst` change the code the ways a deploy might.
private struct Generated: Workflow {
    static let name = "generated"
    struct Script: Codable, Sendable { var steps: [String]; var sleepAt: Int }
    var rename: (from: String, to: String)? = nil
    var insertFirst: String? = nil

    func run(_ ctx: WorkflowContext, input: Script) async throws -> Int {
        if let insertFirst { try await ctx.step(insertFirst) {} }
        for (position, name) in input.steps.enumerated() {
            if position == input.sleepAt { try await ctx.sleep(for: .seconds(86_400)) }
            let actual = rename.map { name == $0.from ? $0.to : name } ?? name
            try await ctx.step(actual) {}
        }
        return input.steps.count
    }
}

@Suite("Deploy gate")
struct DeployGateTests {
    @Test("on generated histories it flags exactly the workflows a change would break", arguments: [11 as UInt64, 29, 4242])
    func generated(seed: UInt64) async throws {
        var random = SeededGenerator(seed: seed)
        let pool = (0..<8).map { "s\($0)" }
        var scripts: [String: Generated.Script] = [:]
        for index in 0..<60 {
            let steps = (0..<Int.random(in: 1...6, using: &random)).map { _ in pool.randomElement(using: &random)! }
            scripts["g\(index)"] = Generated.Script(steps: steps, sleepAt: Int.random(in: 0...steps.count, using: &random))
        }
        let clock = ManualClock()
        let store = InMemoryStore()
        try await WorkflowRuntime.withRuntime(store: store, workflows: [Generated()], configuration: .init(clock: clock, parkAfter: nil)) { runtime in
            for (id, script) in scripts { try await runtime.start(Generated.self, id: id, input: script) }
            // Each asleep at its position, or finished when it sleeps after its last step.
            for (id, script) in scripts where script.sleepAt < script.steps.count {
                try await runtime.waitForHistory(of: id) { $0.contains { $0.kindName == "waitStarted" } }
            }
        }
        let unfinished = scripts.filter { $0.value.sleepAt < $0.value.steps.count }
        let same = try await WorkflowReplayer(workflows: [Generated()]).check(store: store)
        #expect(same.passed && same.checked == unfinished.count, "\(same.text())")
        // Renaming s3 breaks the workflows that recorded s3 before their sleep.
        let renamed = try await WorkflowReplayer(workflows: [Generated(rename: ("s3", "s3-renamed"))]).check(store: store)
        let expected = Set(unfinished.filter { $0.value.steps.prefix($0.value.sleepAt).contains("s3") }.keys)
        #expect(Set(renamed.entries.filter(\.breaks).map(\.id)) == expected, "seed \(seed): \(renamed.text())")
        #expect(renamed.entries.filter(\.breaks).allSatisfy { $0.verdict == .wouldSuspend })
        // A step inserted first breaks every unfinished workflow: each recorded something at position 0.
        let inserted = try await WorkflowReplayer(workflows: [Generated(insertFirst: "new")]).check(store: store)
        #expect(inserted.breaking == unfinished.count, "seed \(seed): \(inserted.text())")
    }
}
