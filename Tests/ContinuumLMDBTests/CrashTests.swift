@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

/// What the crash worker's ledger says, parsed.
struct CrashLedger {
    struct StepKey: Hashable { var workflow: String; var step: String }

    /// Every value a step body produced, in ledger order.
    var runs: [StepKey: [String]] = [:]
    /// Every value the workflow code received from a step, in ledger order.
    var seen: [StepKey: [String]] = [:]
    /// Every result line per workflow.
    var results: [String: [String]] = [:]
    /// For each step, the ledger line numbers of its runs and of the first time its result was seen.
    var runLines: [StepKey: [Int]] = [:]
    var firstSeenLine: [StepKey: Int] = [:]
    /// Every event value whose send the runtime acknowledged, per workflow.
    var acks: [String: [String]] = [:]
    /// How many attempts of a step failed on purpose, per workflow.
    var failedAttempts: [String: Int] = [:]

    init(path: String) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            let fields = line.split(separator: " ").map(String.init)
            switch (fields.first, fields.count) {
            case ("run", 4):
                let key = StepKey(workflow: fields[1], step: fields[2])
                runs[key, default: []].append(fields[3])
                runLines[key, default: []].append(number)
            case ("done", 4):
                let key = StepKey(workflow: fields[1], step: fields[2])
                seen[key, default: []].append(fields[3])
                if firstSeenLine[key] == nil { firstSeenLine[key] = number }
            case ("result", 3):
                results[fields[1], default: []].append(fields[2])
            case ("ack", 4):
                acks[fields[1], default: []].append(fields[2])
            case ("fail", 4):
                failedAttempts[fields[1], default: 0] += 1
            default:
                continue  // a line cut short by SIGKILL
            }
        }
    }

    /// Checks the step oracle and returns the step's committed value: the step ran, the workflow
    /// saw one result across all runs, that result is the last any run of the body produced,
    /// and no body ran after the workflow first saw it.
    func committedValue(workflow: String, step: String, reproduce: String) -> String? {
        let key = StepKey(workflow: workflow, step: step)
        let runs = runs[key] ?? []
        let seen = Set(seen[key] ?? [])
        #expect(!runs.isEmpty, "\(workflow) \(step) never ran; \(reproduce)")
        #expect(seen.count == 1, "\(workflow) \(step) returned different results across runs: \(seen); \(reproduce)")
        guard let value = seen.first else { return nil }
        #expect(runs.last == value, "\(workflow) \(step) ran again after its result \(value) was committed (runs: \(runs)); \(reproduce)")
        if let firstSeen = firstSeenLine[key] {
            let late = (runLines[key] ?? []).filter { $0 > firstSeen }
            #expect(late.isEmpty, "\(workflow) \(step) ran after the workflow had seen its committed result; \(reproduce)")
        }
        return value
    }
}

/// Launches the crash worker in rounds, each launch SIGKILLed at a random moment (up to
/// `jitter`) until `requiredKills`, a round ending when a launch finishes its workflows; returns
/// the rounds' prefixes (named `prefix` and the round's number) and the counts, or `nil` after
/// recording why it could not finish.
func killInRounds(
    worker: String, prefix: String, requiredKills: Int, jitter: ClosedRange<Int>, random: inout SeededGenerator, reproduce: String,
    arguments: (String) -> [String]
) async throws -> (rounds: [String], kills: Int, launches: Int)? {
    var kills = 0
    var launches = 0
    var rounds: [String] = []
    var roundFinished = true
    while true {
        if roundFinished {
            if kills >= requiredKills { return (rounds, kills, launches) }
            rounds.append("\(prefix)\(rounds.count)-")
            roundFinished = false
        }
        let child = try ChildProcess(executable: worker, arguments: arguments(rounds[rounds.count - 1]))
        launches += 1
        try await child.waitForLine("ready")
        if kills < requiredKills {
            try await Task.sleep(for: .milliseconds(Int.random(in: jitter, using: &random)))
            child.kill()
        }
        switch await child.exit() {
        case .signalled(SIGKILL): kills += 1
        case .exited(0): roundFinished = true
        case let other:
            Issue.record("worker \(other) (launch \(launches)); \(reproduce)")
            return nil
        }
        guard launches < 200 else {
            Issue.record("the workload does not finish; \(reproduce)")
            return nil
        }
    }
}

@Suite("Crash recovery", .serialized)
struct CrashTests {
    @Test("SIGKILL at random moments: every workflow completes, no step runs again after its completion was committed")
    func killAtRandomMoments() async throws {
        let worker = try #require(builtExecutable(named: "CrashWorker"), "CrashWorker is not built beside the test bundle; run `swift build --build-tests` first")
        let seed = ProcessInfo.processInfo.environment["CONTINUUM_CRASH_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 0 ... .max)
        let requiredKills = ProcessInfo.processInfo.environment["CONTINUUM_CRASH_KILLS"].flatMap(Int.init) ?? 30
        var random = SeededGenerator(seed: seed)
        let workflowsPerRound = 40
        let steps = 6
        let reproduce = "reproduce with CONTINUUM_CRASH_SEED=\(seed) swift test --filter CrashTests"

        try await withTemporaryDirectory(prefix: "continuum-crash") { directory in
            let state = directory + "/state"
            let ledgerPath = directory + "/ledger.txt"
            var kills = 0
            var launches = 0
            var rounds: [String] = []
            var prefix = ""
            var roundFinished = true
            while true {
                if roundFinished {
                    if kills >= requiredKills { break }
                    prefix = "r\(rounds.count)-wf"
                    rounds.append(prefix)
                    roundFinished = false
                }
                let child = try ChildProcess(
                    executable: worker,
                    arguments: [
                        "--state", state, "--ledger", ledgerPath, "--prefix", prefix,
                        "--workflows", "\(workflowsPerRound)", "--steps", "\(steps)",
                    ])
                launches += 1
                try await child.waitForLine("ready")
                if kills < requiredKills {
                    try await Task.sleep(for: .milliseconds(Int.random(in: 0...60, using: &random)))
                    child.kill()
                }
                switch await child.exit() {
                case .signalled(SIGKILL):
                    kills += 1
                case .exited(0):
                    roundFinished = true
                case let other:
                    Issue.record("worker \(other) (launch \(launches)); \(reproduce)")
                    return
                }
                #expect(launches < 400, "the workload does not finish; \(reproduce)")
                if launches >= 400 { return }
            }
            #expect(kills >= requiredKills)

            let ledger = try CrashLedger(path: ledgerPath)
            for prefix in rounds {
                for index in 0..<workflowsPerRound {
                    let workflow = "\(prefix)\(index)"
                    var committed: [String] = []
                    for step in 0..<steps {
                        guard let value = ledger.committedValue(workflow: workflow, step: "s\(step)", reproduce: reproduce) else { continue }
                        committed.append(value)
                    }
                    let results = Set(ledger.results[workflow] ?? [])
                    #expect(results == [committed.joined(separator: "|")], "\(workflow) result \(results) ≠ its committed steps; \(reproduce)")
                }
            }

            // The store agrees: every workflow completed.
            try await LMDBStore.withStore(path: state) { store throws in
                let completed = try await store.list(status: .completed, after: nil, limit: 10_000).count
                #expect(completed == rounds.count * workflowsPerRound)
                #expect(try await store.list(status: .running, after: nil, limit: 10).isEmpty)
                let rerun = ledger.runs.values.reduce(0) { $0 + $1.count - 1 }
                print(
                    "crash test: seed \(seed), \(kills) kills over \(launches) launches, \(rounds.count) round(s), "
                        + "\(completed) workflows completed, \(rerun) step bodies re-run before their completion was committed")
            }
        }
    }

    @Test(
        "SIGKILL while parents wait for children: each child starts once, runs each step once, and its parent gets its output once; also with every waiting workflow dormant at once",
        arguments: [false, true])
    func childrenAcrossKills(dormant: Bool) async throws {
        let worker = try #require(builtExecutable(named: "CrashWorker"), "CrashWorker is not built beside the test bundle")
        let seed = ProcessInfo.processInfo.environment["CONTINUUM_CRASH_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 0 ... .max)
        var random = SeededGenerator(seed: seed)
        let reproduce = "reproduce with CONTINUUM_CRASH_SEED=\(seed) swift test --filter childrenAcrossKills"
        let (parents, children, steps, requiredKills) = (12, 4, 3, 12)
        try await withTemporaryDirectory(prefix: "continuum-children") { directory in
            let ledgerPath = directory + "/ledger.txt"
            // Rounds of `parents` families, each launch killed at a random moment, until enough kills.
            guard
                let (rounds, kills, launches) = try await killInRounds(
                    worker: worker, prefix: "f", requiredKills: requiredKills, jitter: 0...60, random: &random, reproduce: reproduce,
                    arguments: { round in
                        [
                            "--state", directory + "/state", "--ledger", ledgerPath, "--prefix", round,
                            "--workflows", "\(parents)", "--steps", "\(steps)", "--parallel", "\(parents)", "--children", "\(children)",
                        ] + (dormant ? ["--dormant-ms", "0"] : [])
                    })
            else { return }
            let families = rounds.flatMap { round in (0..<parents).map { "\(round)\($0)" } }

            let ledger = try CrashLedger(path: ledgerPath)
            let text = try String(contentsOfFile: ledgerPath, encoding: .utf8)
            var gathered: [String: Set<String>] = [:]
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: " ").map(String.init)
                if fields.count == 3, fields[0] == "children" { gathered[fields[1], default: []].insert(fields[2]) }
            }
            for parent in families {
                var outputs: [String] = []
                for index in 0..<children {
                    let id = "\(parent)/c\(index)"
                    let values = (0..<steps).compactMap { ledger.committedValue(workflow: id, step: "s\($0)", reproduce: reproduce) }
                    outputs.append(values.joined(separator: "|"))
                }
                // Every run of the parent saw the same outputs: the ones its children committed.
                #expect(gathered[parent] == [outputs.joined(separator: ",")], "\(parent) saw \(gathered[parent] ?? []); \(reproduce)")
                let gather = ledger.committedValue(workflow: parent, step: "gather", reproduce: reproduce)
                #expect(Set(ledger.results[parent] ?? []) == Set(gather.map { [$0] } ?? []), "\(parent); \(reproduce)")
            }
            try await LMDBStore.withStore(path: directory + "/state") { store throws in
                let all = families.count * (children + 1)
                #expect(try await store.list(status: .completed, after: nil, limit: 10_000).count == all)
                #expect(try await store.list(status: nil, after: nil, limit: 10_000).count == all, "a child was started twice")
                for parent in families {
                    let events = try #require(try await store.load(id: parent)).events
                    let notices = events.filter { if case .eventReceived(let name, _, _) = $0.kind { name.hasPrefix("continuum.child:") } else { false } }
                    #expect(notices.count == children, "\(parent) recorded \(notices.count) child outcomes; \(reproduce)")
                }
            }
            print("children crash test: seed \(seed), \(kills) kills over \(launches) launches, \(families.count) families")
        }
    }

    @Test("SIGKILL while workflows and steps wait on queues: no process ever ran more bodies or steps than the queues allow, and every workflow completes")
    func queuesAcrossKills() async throws {
        let worker = try #require(builtExecutable(named: "CrashWorker"), "CrashWorker is not built beside the test bundle")
        let seed = ProcessInfo.processInfo.environment["CONTINUUM_CRASH_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 0 ... .max)
        var random = SeededGenerator(seed: seed)
        let reproduce = "reproduce with CONTINUUM_CRASH_SEED=\(seed) swift test --filter queuesAcrossKills"
        let (workflows, steps, requiredKills) = (24, 4, 10)
        try await withTemporaryDirectory(prefix: "continuum-queues") { directory in
            let ledgerPath = directory + "/ledger.txt"
            guard
                let (rounds, kills, launches) = try await killInRounds(
                    worker: worker, prefix: "q", requiredKills: requiredKills, jitter: 0...80, random: &random, reproduce: reproduce,
                    arguments: { round in
                        [
                            "--state", directory + "/state", "--ledger", ledgerPath, "--prefix", round, "--workflows", "\(workflows)",
                            "--steps", "\(steps)", "--parallel", "\(workflows)", "--queue", "1",
                        ]
                    })
            else { return }
            // Per process (a killed one's open intervals end with it): the most inside at once.
            let text = try String(contentsOfFile: ledgerPath, encoding: .utf8)
            var inside: [String: [String: Int]] = [:]
            var most: [String: Int] = ["body": 0, "step": 0]
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: " ").map(String.init)
                guard fields.count == 4, fields[0] == "enter" || fields[0] == "leave" else { continue }
                let (pid, kind) = (fields[1], fields[3])
                inside[pid, default: [:]][kind, default: 0] += fields[0] == "enter" ? 1 : -1
                most[kind] = max(most[kind] ?? 0, inside[pid]?[kind] ?? 0)
            }
            #expect(most["body"] ?? 0 <= 3, "\(most["body"] ?? 0) workflow bodies ran at once on a queue of 3; \(reproduce)")
            #expect(most["step"] ?? 0 <= 2, "\(most["step"] ?? 0) steps ran at once on a queue of 2; \(reproduce)")
            #expect(most["body"] == 3 && most["step"] == 2, "the queues were never full, so the test proves little: \(most)")
            let ledger = try CrashLedger(path: ledgerPath)
            for round in rounds {
                for index in 0..<workflows {
                    let id = "\(round)\(index)"
                    let values = (0..<steps).compactMap { ledger.committedValue(workflow: id, step: "s\($0)", reproduce: reproduce) }
                    #expect(Set(ledger.results[id] ?? []) == [values.joined(separator: "|")], "\(id); \(reproduce)")
                }
            }
            print("queue crash test: seed \(seed), \(kills) kills over \(launches) launches, most at once \(most)")
        }
    }

    @Test("SIGKILL while a schedule fires every second: every slot from the first to the last starts its workflow exactly once")
    func scheduleAcrossKills() async throws {
        let worker = try #require(builtExecutable(named: "CrashWorker"), "CrashWorker is not built beside the test bundle")
        let seed = ProcessInfo.processInfo.environment["CONTINUUM_CRASH_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 0 ... .max)
        var random = SeededGenerator(seed: seed)
        let reproduce = "reproduce with CONTINUUM_CRASH_SEED=\(seed) swift test --filter scheduleAcrossKills"
        try await withTemporaryDirectory(prefix: "continuum-schedule") { directory in
            let ledgerPath = directory + "/ledger.txt"
            let arguments = ["--state", directory + "/state", "--ledger", ledgerPath, "--prefix", "unused", "--workflows", "0", "--steps", "0"]
            var kills = 0
            // Killed at random moments, with pauses between launches so that slots are missed too.
            while kills < 8 {
                let child = try ChildProcess(executable: worker, arguments: arguments + ["--schedule", "60"])
                try await child.waitForLine("ready")
                try await Task.sleep(for: .milliseconds(Int.random(in: 200...1_500, using: &random)))
                child.kill()
                let exit = await child.exit()
                #expect(exit == .signalled(SIGKILL), "worker \(exit); \(reproduce)")
                kills += 1
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...1_200, using: &random)))
            }
            // A last launch catches up and runs on for a while, then ends on its own.
            let last = try ChildProcess(executable: worker, arguments: arguments + ["--schedule", "3"])
            #expect(await last.exit() == .exited(0), "\(reproduce)")

            let ledger = try CrashLedger(path: ledgerPath)
            try await LMDBStore.withStore(path: directory + "/state") { store throws in
                var ids: [String] = []
                var after: StreamID?
                while true {
                    let page = try await store.list(status: nil, after: after, limit: 1_000)
                    ids += page.map(\.summary.id).filter { $0.hasPrefix("tick@") }
                    guard page.count == 1_000, let next = page.last?.stream else { break }
                    after = next
                }
                #expect(Set(ids).count == ids.count)
                let slots = ids.compactMap { try? Date(String($0.dropFirst("tick@".count)), strategy: .iso8601) }.sorted()
                let first = try #require(slots.first, "no slot started; \(reproduce)")
                let lastSlot = try #require(slots.last)
                let span = Int(lastSlot.timeIntervalSince(first)) + 1
                #expect(slots.count == span, "\(span - slots.count) of \(span) slots between the first and the last started no workflow; \(reproduce)")
                for id in ids {
                    let status = try await store.summary(id: id)?.status
                    #expect(status == .completed, "\(id) is \(String(describing: status)); \(reproduce)")
                    _ = ledger.committedValue(workflow: id, step: "stamp", reproduce: reproduce)
                }
                print("schedule crash test: seed \(seed), \(kills) kills, \(slots.count) slots over \(span) s, each started once")
            }
        }
    }

    @Test("sleeping workflows survive SIGKILL: not woken early, overdue timers fire once at restart", arguments: [false, true])
    func sleepAcrossKill(overdue: Bool) async throws {
        let worker = try #require(builtExecutable(named: "CrashWorker"), "CrashWorker is not built beside the test bundle")
        try await withTemporaryDirectory(prefix: "continuum-sleep") { directory in
            // Long enough that a loaded CI machine never lets the first launch finish before the kill.
            let sleep = 3_000
            let count = 20
            let arguments = [
                "--state", directory + "/state", "--ledger", directory + "/ledger.txt", "--prefix", "sleepy",
                "--workflows", "\(count)", "--steps", "0", "--parallel", "\(count)", "--sleep-ms", "\(sleep)",
            ]
            let first = try ChildProcess(executable: worker, arguments: arguments)
            try await first.waitForLine("ready")
            // Killed once every workflow has recorded its start and is asleep.
            try await eventually(timeout: .seconds(60)) {
                let ledger = (try? String(contentsOfFile: directory + "/ledger.txt", encoding: .utf8)) ?? ""
                return ledger.split(separator: "\n").count { $0.hasPrefix("start ") } == count
            }
            first.kill()
            let killed = await first.exit()
            #expect(killed == .signalled(SIGKILL), "the first launch \(killed) before it was killed")
            // Restart at once (timers not due yet) or after the deadline passed (timers overdue).
            if overdue { try await Task.sleep(for: .milliseconds(sleep + 200)) }
            let second = try ChildProcess(executable: worker, arguments: arguments)
            #expect(await second.exit() == .exited(0))

            let text = try String(contentsOfFile: directory + "/ledger.txt", encoding: .utf8)
            var starts: [String: Set<Int64>] = [:]
            var runs: [String: [Int64]] = [:]
            var results: [String: String] = [:]
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: " ").map(String.init)
                switch (fields.first, fields.count) {
                case ("start", 3): starts[fields[1], default: []].insert(Int64(fields[2]) ?? -1)
                case ("run", 4): runs[fields[1], default: []].append(Int64(fields[3]) ?? -1)
                case ("result", 3): results[fields[1]] = fields[2]
                default: continue
                }
            }
            for index in 0..<count {
                let id = "sleepy\(index)"
                #expect(starts[id]?.count == 1, "\(id): ctx.now() differed across the restart: \(starts[id] ?? [])")
                guard let start = starts[id]?.first, let woke = runs[id] else {
                    Issue.record("\(id) never woke")
                    continue
                }
                #expect(woke.count == 1, "\(id): the step after the sleep ran \(woke.count) times")
                #expect(woke[0] >= start + Int64(sleep) * 1_000_000, "\(id) woke \((start + Int64(sleep) * 1_000_000 - woke[0]) / 1_000_000) ms early")
                #expect(results[id] == "\(start)-\(woke[0])")
            }
        }
    }

    @Test("the reader slot of a process killed mid-read is cleared when the store opens, while another reader lives")
    func staleReaderCleared() async throws {
        let worker = try #require(builtExecutable(named: "CrashWorker"), "CrashWorker is not built beside the test bundle")
        try await withTemporaryDirectory(prefix: "continuum-readers") { directory in
            await (try LMDBStore(path: directory)).close()
            // A live reader (a backup tool, say) keeps the environment open, so LMDB does not
            // reset its reader table on open: the dead process's slot must be found and cleared.
            let live = try ChildProcess(executable: worker, arguments: ["--hold-reader", directory])
            try await live.waitForLine("holding")
            defer { live.kill() }
            let dead = try ChildProcess(executable: worker, arguments: ["--hold-reader", directory])
            try await dead.waitForLine("holding")
            dead.kill()
            #expect(await dead.exit() == .signalled(SIGKILL))
            try await LMDBStore.withStore(path: directory) { store throws in
                #expect(store.staleReadersCleared == 1)
                _ = try await store.create(CreateRequest(
                    id: "after", type: "t", started: HistoryEvent(sequence: 0, timestamp: 1, kind: .workflowStarted(type: "t", input: [])), owner: OwnerID("test")))
                #expect(try await store.summary(id: "after") != nil)
            }
        }
    }

    @Test("a second process on the same directory is refused with a named error")
    func secondProcessRefused() async throws {
        let worker = try #require(builtExecutable(named: "CrashWorker"), "CrashWorker is not built beside the test bundle")
        try await withTemporaryDirectory(prefix: "continuum-lock") { directory in
            let state = directory + "/state"
            let child = try ChildProcess(
                executable: worker,
                arguments: ["--state", state, "--ledger", directory + "/ledger.txt", "--prefix", "w", "--workflows", "200", "--steps", "50"])
            try await child.waitForLine("ready")
            let error = #expect(throws: ContinuumError.self) { try LMDBStore(path: state) }
            #expect(error?.code == .storeLocked)
            #expect(error?.message.contains("pid \(child.pid)") == true)
            child.kill()
            _ = await child.exit()
            // Once the owner is gone, the directory opens again.
            let store = try LMDBStore(path: state)
            await store.close()
        }
    }
}
