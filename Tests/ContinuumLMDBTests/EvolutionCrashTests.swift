@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

/// What the evolution worker's ledger says (the line format is in Tests/CrashWorker/Evolution.swift).
struct EvolutionLedger {
    /// How many times each request ("op id") was asked, acknowledged, refused as already done.
    var asks: [String: Int] = [:]
    var acks: [String: Int] = [:]
    var refusals: [String: [String]] = [:]
    /// How many times each step body ran, by "id step version".
    var runs: [String: Int] = [:]
    /// Every result the operator saw per workflow (spaces as `_`), and every error it ended with.
    var results: [String: [String]] = [:]
    var ended: [String: [String]] = [:]

    init(path: String) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            switch (fields.first, fields.count) {
            case ("ask", 3): asks["\(fields[1]) \(fields[2])", default: 0] += 1
            case ("ack", 3): acks["\(fields[1]) \(fields[2])", default: 0] += 1
            case ("refused", 4): refusals["\(fields[1]) \(fields[2])", default: []].append(fields[3])
            case ("run", 4): runs["\(fields[1]) \(fields[2]) \(fields[3])", default: 0] += 1
            case ("result", 3): results[fields[1], default: []].append(fields[2])
            case ("ended", 3): ended[fields[1], default: []].append(fields[2])
            default: continue
            }
        }
    }

    func runs(_ id: String, _ step: String, _ version: Int) -> Int { runs["\(id) \(step) \(version)", default: 0] }

    /// Whether the operator saw an answer to request `operation` of `id`.
    func answered(_ operation: String, _ id: String) -> Bool {
        acks["\(operation) \(id)", default: 0] > 0 || !refusals["\(operation) \(id)", default: []].isEmpty
    }
}

/// The ways out of a code change under SIGKILL: workflows suspended by a deploy are resumed,
/// reset, forked and cancelled by an operator who repeats every request it saw no answer to,
/// while the process is killed at seeded random moments.
///
/// "Once", per way out (requests are repeated after a restart until the operator sees an answer):
/// - resume: the history holds exactly one `workflowResumed` (a resume asked again once the first
///   took effect is refused: the workflow is no longer suspended), and the workflow completes once,
///   with the result recorded before the change (`b1`);
/// - reset: between one `workflowReset` and as many as were asked (a reset asked again after its
///   answer was lost is a new, deliberate reset once `b` ran again; before that it is refused,
///   `b` being superseded), generations 1, 2, …; the effective history holds one `b`, the new one
///   (`b2`), and one terminal event; the superseded `b1` stays in the stream;
/// - fork: the copy exists with exactly one `workflowForked` naming its original and where, its
///   first events are the original's; a fork asked again is refused (`workflowIDConflict`); the
///   original gets nothing from it;
/// - cancel: exactly one `cancelRequested` and one `workflowCancelled` appended (and the end of
///   the nap it was suspended in, when that had not fired), nothing else.
///
/// After every launch each workflow's stored events begin with the events stored after the
/// launch before: nothing recorded is rewritten or deleted, superseded events included.
@Suite("Evolution under SIGKILL", .serialized)
struct EvolutionCrashTests {
    static let workflowsPerRound = 12
    static let killsPerRound = 4

    @Test("SIGKILL during resume, reset, fork and cancel: one terminal state each with the result the way out calls for, each way out recorded once, no event lost")
    func waysOutUnderKill() async throws {
        let worker = try #require(builtExecutable(named: "CrashWorker"), "CrashWorker is not built beside the test bundle; run `swift build --build-tests` first")
        let environment = ProcessInfo.processInfo.environment
        let seed = environment["CONTINUUM_CRASH_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 0 ... .max)
        let requiredKills = environment["CONTINUUM_EVOLUTION_KILLS"].flatMap(Int.init) ?? 24
        let reproduce = "reproduce the kill schedule with CONTINUUM_CRASH_SEED=\(seed) swift test --filter EvolutionCrashTests"
        var random = SeededGenerator(seed: seed)

        try await withTemporaryDirectory(prefix: "continuum-evolution") { directory in
            let state = directory + "/state"
            let ledgerPath = directory + "/ledger.txt"
            var kills = 0
            var launches = 0
            var rounds: [String] = []
            var prepared: [String: [HistoryEvent]] = [:]
            var stored: [String: [HistoryEvent]] = [:]
            let started = ContinuousClock.now

            func arguments(_ phase: String, _ prefix: String) -> [String] {
                ["--evolve", phase, "--state", state, "--ledger", ledgerPath, "--prefix", prefix, "--workflows", "\(Self.workflowsPerRound)", "--nap-ms", "150"]
            }
            /// Every workflow of the rounds so far, fork copies included.
            func allIDs() -> [String] {
                rounds.flatMap { prefix in
                    (0..<Self.workflowsPerRound).flatMap { index in
                        index % 4 == 2 ? ["\(prefix)\(index)", "\(prefix)\(index)-fork"] : ["\(prefix)\(index)"]
                    }
                }
            }
            /// Loads every workflow and checks that each one's events begin with those stored before.
            func checkNothingLost(after what: String) async throws -> Bool {
                let now = try await Self.load(state: state, ids: allIDs())
                var intact = true
                for (id, before) in stored {
                    guard let after = now[id] else {
                        Issue.record("\(id) disappeared after \(what); \(reproduce)")
                        intact = false
                        continue
                    }
                    if !after.starts(with: before) {
                        let changed = zip(before, after).first { $0 != $1 }.map { "event \($0.0.sequence): \($0.0.kindName) became \($0.1.kindName)" }
                        Issue.record(
                            "\(id): its stored events after \(what) do not begin with those stored before (\(before.count) before, \(after.count) after; \(changed ?? "cut short")); \(reproduce)")
                        intact = false
                    }
                }
                stored = now
                return intact
            }

            while kills < requiredKills {
                let prefix = "r\(rounds.count)-w"
                rounds.append(prefix)
                // Version 1 until every workflow naps, then version 2 until each is suspended (not killed).
                let preparation = try ChildProcess(executable: worker, arguments: arguments("prepare", prefix))
                let prepareExit = try await Self.exit(of: preparation)
                guard prepareExit == .exited(0) else {
                    Issue.record("preparing round \(prefix) \(prepareExit?.description ?? "hung"); \(reproduce)")
                    return
                }
                guard try await checkNothingLost(after: "preparing \(prefix)") else { return }
                for index in 0..<Self.workflowsPerRound {
                    let id = "\(prefix)\(index)"
                    prepared[id] = stored[id]
                    guard case .workflowSuspended(let record)? = stored[id]?.last?.kind, record.code == "codeChanged" else {
                        Issue.record("\(id) is not suspended by the code change after preparing: \(stored[id]?.map(\.kindName) ?? [])")
                        return
                    }
                }
                // The ways out, killed at seeded moments, until a launch finishes them all.
                var inRound = 0
                while true {
                    inRound += 1
                    launches += 1
                    let killed = inRound <= Self.killsPerRound
                    // Half the kills land while the operator's requests are in flight, the others anywhere.
                    let delay = Bool.random(using: &random) ? Int.random(in: 0...40, using: &random) : Int.random(in: 0...250, using: &random)
                    let child = try ChildProcess(executable: worker, arguments: arguments("ways", prefix))
                    if killed {
                        try await child.waitForLine("ready")
                        try await Task.sleep(for: .milliseconds(delay))
                        child.kill()
                    }
                    let exit = try await Self.exit(of: child)
                    switch exit {
                    case .signalled(SIGKILL)?: kills += 1
                    case .exited(0)?: break
                    default:
                        // Where each unfinished workflow of the round stands, for a hang.
                        let now = try await Self.load(state: state, ids: allIDs())
                        let unfinished = now.filter { !["workflowCompleted", "workflowCancelled"].contains($0.value.last?.kindName ?? "") }
                            .sorted { $0.key < $1.key }
                            .map { "\($0.key): \($0.value.suffix(5).map(\.kindName))" }
                        let output = String(child.output.suffix(2_000))
                        Issue.record(
                            "launch \(launches) (round \(prefix)) \(exit?.description ?? "hung for 60 s"):\n\(output)\nunfinished: \(unfinished.joined(separator: "\n"))\n\(reproduce)")
                        return
                    }
                    guard try await checkNothingLost(after: "launch \(launches)") else { return }
                    if exit == .exited(0) { break }
                    if inRound > 50 {
                        Issue.record("round \(prefix) does not finish after 50 launches; \(reproduce)")
                        return
                    }
                }
            }
            #expect(kills >= requiredKills)

            let ledger = try EvolutionLedger(path: ledgerPath)
            var checked = 0
            for prefix in rounds {
                for index in 0..<Self.workflowsPerRound {
                    let id = "\(prefix)\(index)"
                    try Self.check(
                        id: id, group: index % 4, prepared: try #require(prepared[id]), stored: stored, ledger: ledger, reproduce: reproduce)
                    checked += 1
                }
            }
            try await LMDBStore.withStore(path: state) { store throws in
                #expect(try await store.list(status: .running, after: nil, limit: 10).isEmpty, "a workflow is still running")
                #expect(try await store.list(status: .suspended, after: nil, limit: 10).isEmpty, "a workflow is still suspended")
                #expect(try store.verify().isClean)
            }
            let resets = stored.values.reduce(0) { $0 + $1.count { $0.kindName == "workflowReset" } }
            let askedAgain = ledger.asks.values.reduce(0) { $0 + $1 - 1 }
            let refused = ledger.refusals.values.reduce(0) { $0 + $1.count }
            print(
                "evolution under SIGKILL: seed \(seed), \(kills) kills over \(launches) launches of the ways out, \(rounds.count) rounds, "
                    + "\(checked) suspended workflows resumed, reset, forked or cancelled; \(askedAgain) requests asked again after a kill, "
                    + "\(refused) of them refused as already done, \(resets) resets recorded for \(checked / 4) requested; "
                    + "\(Int((ContinuousClock.now - started) / .milliseconds(1))) ms")
        }
    }

    /// Checks workflow `id` of group `group` (0 resume, 1 reset, 2 fork then cancel, 3 cancel)
    /// against its events as prepared, the store and the ledger.
    private static func check(
        id: String, group: Int, prepared: [HistoryEvent], stored: [String: [HistoryEvent]], ledger: EvolutionLedger, reproduce: String
    ) throws {
        let events = try #require(stored[id])
        let added = Array(events.dropFirst(prepared.count))
        let effective = try WorkflowState.effective(events)
        let terminal = effective.filter { ["workflowCompleted", "workflowFailed", "workflowCancelled"].contains($0.kindName) }
        #expect(terminal.count == 1 && terminal.first == effective.last, "\(id): terminal events in effect: \(effective.map(\.kindName)); \(reproduce)")
        #expect(ledger.runs(id, "a", 1) == 1, "\(id): a ran \(ledger.runs(id, "a", 1)) times; it ran once, before the change; \(reproduce)")
        #expect(ledger.runs(id, "b", 1) == 1, "\(id): version 1's b ran \(ledger.runs(id, "b", 1)) times; \(reproduce)")
        #expect(events.count { $0.kindName == "workflowSuspended" } == 1, "\(id): suspended again: \(events.map(\.kindName))")

        func output(_ events: [HistoryEvent]) -> String? {
            guard case .workflowCompleted(let output)? = events.last?.kind else { return nil }
            return try? JSONDecoder().decode(String.self, from: Data(output))
        }
        func count(_ kind: String, in events: [HistoryEvent]) -> Int { events.count { $0.kindName == kind } }
        /// Whether `added` is one cancellation of a suspended workflow: the request, the end of the
        /// wait it was suspended in (its nap, when it had not fired yet), the end.
        func cancelledOnce(_ added: [HistoryEvent]) -> Bool {
            let waits = added.filter { $0.kindName == "waitEnded" }
            return added.filter { $0.kindName != "waitEnded" }.map(\.kindName) == ["cancelRequested", "workflowCancelled"]
                && waits.count <= 1 && waits.allSatisfy { if case .waitEnded(_, .cancelled) = $0.kind { true } else { false } }
                && added.first?.kindName == "cancelRequested"
        }

        switch group {
        case 0:  // resume
            #expect(output(effective) == "a:\(id) b1 c", "\(id) resumed: \(effective.map(\.kindName)); \(reproduce)")
            #expect(count("workflowResumed", in: events) == 1, "\(id): \(count("workflowResumed", in: events)) resumes recorded; \(reproduce)")
            #expect(added.first?.kindName == "workflowResumed", "\(id): after the suspension came \(added.map(\.kindName))")
            #expect(count("workflowReset", in: events) == 0)
            #expect(ledger.asks["resume \(id)", default: 0] >= 1 && ledger.answered("resume", id), "\(id): resume unanswered")
            #expect(ledger.runs(id, "b", 2) == 0, "\(id): the new b ran on a resumed workflow; \(reproduce)")
            #expect(ledger.runs(id, "c", 1) >= 1)
            #expect(!(ledger.results[id] ?? []).isEmpty && Set(ledger.results[id] ?? []) == ["a:\(id)_b1_c"], "\(id): results seen \(ledger.results[id] ?? [])")
        case 1:  // reset
            #expect(output(effective) == "a:\(id) b2 c", "\(id) reset: \(effective.map(\.kindName)); \(reproduce)")
            let resets = events.compactMap { event -> UInt32? in
                if case .workflowReset(_, let generation, _) = event.kind { generation } else { nil }
            }
            let asked = ledger.asks["reset \(id)", default: 0]
            #expect(!resets.isEmpty && resets.count <= asked, "\(id): \(resets.count) resets recorded for \(asked) asked; \(reproduce)")
            #expect(resets == Array(1...UInt32(max(1, resets.count))), "\(id): reset generations \(resets)")
            #expect(ledger.answered("reset", id), "\(id): reset unanswered")
            #expect(count("workflowResumed", in: events) == 0)
            let bs = effective.compactMap { event -> String? in
                if case .stepCompleted(let step, let result) = event.kind, step.name == "b" { String(decoding: result, as: UTF8.self) } else { nil }
            }
            #expect(bs == ["\"b2\""], "\(id): b in effect \(bs)")
            #expect(ledger.runs(id, "b", 2) >= 1)
            #expect(!(ledger.results[id] ?? []).isEmpty && Set(ledger.results[id] ?? []) == ["a:\(id)_b2_c"], "\(id): results seen \(ledger.results[id] ?? [])")
        case 2:  // fork, then cancel the original
            #expect(cancelledOnce(added), "\(id): the original got \(added.map(\.kindName)); \(reproduce)")
            let copyID = "\(id)-fork"
            let copy = try #require(stored[copyID], "\(copyID) does not exist; \(reproduce)")
            let forks = copy.enumerated().compactMap { position, event -> (Int, String, UInt32)? in
                if case .workflowForked(let from, let sequence, _) = event.kind { (position, from, sequence) } else { nil }
            }
            #expect(forks.count == 1, "\(copyID): \(forks.count) fork records; \(reproduce)")
            if let (position, from, target) = forks.first {
                #expect(from == id && position == Int(target), "\(copyID) forked from \(from) at \(target), recorded at \(position)")
                #expect(
                    copy.prefix(position).map(\.kind) == prepared.prefix(position).map(\.kind),
                    "\(copyID): its first events are not its original's: \(copy.prefix(position).map(\.kindName))")
            }
            #expect(output(copy) == "a:\(id) b2 c", "\(copyID): \(copy.map(\.kindName)); \(reproduce)")
            #expect(["workflowSuspended", "workflowReset", "workflowResumed"].allSatisfy { count($0, in: copy) == 0 }, "\(copyID): \(copy.map(\.kindName))")
            #expect(ledger.asks["fork \(id)", default: 0] >= 1 && ledger.answered("fork", id), "\(id): fork unanswered")
            #expect(ledger.answered("cancel", id))
            #expect(ledger.runs(copyID, "a", 1) == 0, "\(copyID): a ran, though it was copied")
            #expect(ledger.runs(copyID, "b", 2) >= 1)
            #expect(ledger.runs(id, "b", 2) == 0 && ledger.runs(id, "c", 1) == 0, "\(id): a step of the original ran after the fork")
            #expect(Set(ledger.results[copyID] ?? []) == ["a:\(id)_b2_c"], "\(copyID): results seen \(ledger.results[copyID] ?? [])")
            #expect(Set(ledger.ended[id] ?? []) == ["cancelled"])
        default:  // cancel
            #expect(cancelledOnce(added), "\(id): cancelling appended \(added.map(\.kindName)); \(reproduce)")
            #expect(ledger.answered("cancel", id))
            #expect(ledger.runs(id, "b", 2) == 0 && ledger.runs(id, "c", 1) == 0, "\(id): a step ran on a cancelled suspended workflow")
            #expect(Set(ledger.ended[id] ?? []) == ["cancelled"])
        }
    }

    /// Every stored event of each of `ids` that exists.
    private static func load(state: String, ids: [String]) async throws -> [String: [HistoryEvent]] {
        try await LMDBStore.withStore(path: state) { store throws in
            var events: [String: [HistoryEvent]] = [:]
            for id in ids {
                if let workflow = try await store.load(id: id) { events[id] = workflow.events }
            }
            return events
        }
    }

    /// How `child` exited, or `nil` (after killing it) when it runs for over 60 seconds.
    private static func exit(of child: ChildProcess) async throws -> ChildProcess.Exit? {
        try await child.exit(within: .seconds(60))
    }
}
