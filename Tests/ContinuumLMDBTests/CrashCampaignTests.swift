@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

/// The crash campaign: the CrashWorker's mixed load (steps, sleeps, retries, events from an
/// outside sender, cancellations, failures), SIGKILLed at seeded random moments, then checked
/// against the fsynced ledger and the store.
///
/// CI runs at least 50 kills (`CONTINUUM_CAMPAIGN_KILLS` to change it). The soak mode runs
/// rounds until `CONTINUUM_SOAK_MINUTES` have passed:
///
/// ```
/// CONTINUUM_SOAK_MINUTES=30 swift test --filter CrashCampaignTests
/// ```
@Suite("Crash campaign", .serialized)
struct CrashCampaignTests {
    /// Which variant workflow `index` of a round runs (the rule in CrashWorker's `MixedWorkflow.variant`).
    static func variant(_ index: Int) -> String {
        index % 5 == 4 ? "cancel" : index % 7 == 3 ? "fail" : "plain"
    }

    @Test("mixed load under SIGKILL: one terminal state each with the right result, no step after its commit, every acknowledged event consumed once")
    func campaign() async throws {
        let worker = try #require(builtExecutable(named: "CrashWorker"), "CrashWorker is not built beside the test bundle; run `swift build --build-tests` first")
        let environment = ProcessInfo.processInfo.environment
        let seed = environment["CONTINUUM_CRASH_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 0 ... .max)
        let requiredKills = environment["CONTINUUM_CAMPAIGN_KILLS"].flatMap(Int.init) ?? 50
        let soak = environment["CONTINUUM_SOAK_MINUTES"].flatMap(Double.init).map { Duration.seconds($0 * 60) }
        let workflowsPerRound = 30
        let steps = 3
        let events = 3
        let reproduce = "reproduce the kill schedule with CONTINUUM_CRASH_SEED=\(seed) swift test --filter CrashCampaignTests"

        try await withTemporaryDirectory(prefix: "continuum-campaign") { directory in
            try await Self.run(
                worker: worker, directory: directory, seed: seed, requiredKills: requiredKills, soak: soak,
                workflowsPerRound: workflowsPerRound, steps: steps, events: events, reproduce: reproduce)
        }
    }

    /// Runs `body` and waits for `child` to exit, killing it if that takes over two minutes: a
    /// hang fails the test instead of blocking CI. Returns how it exited and whether it hung.
    private static func watched(
        _ child: ChildProcess, _ body: @Sendable () async throws -> Void
    ) async throws -> (ChildProcess.Exit, hung: Bool) {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                do {
                    try await Task.sleep(for: .seconds(120))
                } catch {
                    return false
                }
                // The worker prints what each workflow's task and the runtime are doing on SIGUSR1.
                child.signal(SIGUSR1)
                try? await Task.sleep(for: .seconds(3))
                print("campaign watchdog: launch pid \(child.pid) still running after 2 minutes\n" + Self.diagnose(child))
                child.kill()
                return true
            }
            try await body()
            let exit = await child.exit()
            group.cancelAll()
            return (exit, try await group.next() ?? false)
        }
    }

    /// What a launch that seems hung is doing: its state in /proc (a zombie means the parent
    /// missed its exit), its last output (with the worker's dump), and every thread's stack
    /// when gdb can attach.
    private static func diagnose(_ child: ChildProcess) -> String {
        let pid = child.pid
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? "no /proc entry (exited and reaped)"
        var report = "stat: \(stat)\nlast output: \(child.output.suffix(30_000))\n"
        let gdb = Process()
        gdb.executableURL = URL(fileURLWithPath: "/usr/bin/gdb")
        gdb.arguments = ["-p", "\(pid)", "-batch", "-ex", "thread apply all bt 30"]
        let pipe = Pipe()
        gdb.standardOutput = pipe
        gdb.standardError = pipe
        if (try? gdb.run()) != nil {
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            gdb.waitUntilExit()
            report += output.suffix(60_000)
        }
        return report
    }

    /// Kills and relaunches the worker until enough kills and rounds are done, then checks the oracles.
    private static func run(
        worker: String, directory: String, seed: UInt64, requiredKills: Int, soak: Duration?,
        workflowsPerRound: Int, steps: Int, events: Int, reproduce: String
    ) async throws {
            var random = SeededGenerator(seed: seed)
            let soakEnd = soak.map { ContinuousClock.now + $0 }
            let state = directory + "/state"
            let ledgerPath = directory + "/ledger.txt"
            var kills = 0
            var launches = 0
            var rounds: [String] = []
            var prefix = ""
            var roundFinished = true
            while true {
                if roundFinished {
                    let soaking = soakEnd.map { ContinuousClock.now < $0 } ?? false
                    if kills >= requiredKills && !soaking { break }
                    prefix = "r\(rounds.count)-m"
                    rounds.append(prefix)
                    roundFinished = false
                }
                let child = try ChildProcess(
                    executable: worker,
                    arguments: [
                        "--state", state, "--ledger", ledgerPath, "--prefix", prefix, "--workflows", "\(workflowsPerRound)",
                        "--steps", "\(steps)", "--mixed", "\(events)", "--parallel", "10",
                    ])
                launches += 1
                let delay = Int.random(in: 0...150, using: &random)
                // Every third launch in a round runs to its end, so rounds finish under any schedule.
                let killed = launches % 3 != 0
                let (exit, hung) = try await Self.watched(child) {
                    try await child.waitForLine("ready")
                    if killed {
                        try await Task.sleep(for: .milliseconds(delay))
                        child.kill()
                    }
                }
                if hung {
                    Issue.record("launch \(launches) did not finish within 2 minutes (a hang); \(reproduce)")
                    return
                }
                switch exit {
                case .signalled(SIGKILL): kills += 1
                case .exited(0): roundFinished = true
                case let other:
                    Issue.record("worker \(other) (launch \(launches)); \(reproduce)")
                    return
                }
                let limit = soak == nil ? max(1_000, requiredKills * 4) : 1_000_000
                if launches >= limit {
                    Issue.record("the workload does not finish after \(launches) launches; \(reproduce)")
                    return
                }
            }
            #expect(kills >= requiredKills)

            let ledger = try CrashLedger(path: ledgerPath)
            // Closed explicitly at the end; an error before that leaves it to deinit.
            let store = try LMDBStore(path: state)
            var expected: [WorkflowStatus: Int] = [:]
            var acknowledged = 0
            for prefix in rounds {
                for index in 0..<workflowsPerRound {
                    let workflow = "\(prefix)\(index)"
                    let variant = Self.variant(index)
                    // Steps: ran, one committed value, nothing ran after the workflow saw it.
                    var names = (0..<steps).map { "s\($0)" } + ["flaky"]
                    if variant == "cancel" { names.append("undo") }
                    var committed: [String] = []
                    for name in names {
                        if let value = ledger.committedValue(workflow: workflow, step: name, reproduce: reproduce) { committed.append(value) }
                    }
                    #expect(ledger.failedAttempts[workflow, default: 0] >= 1, "\(workflow): the flaky step's first attempt never failed")
                    // One terminal state, with the right result.
                    let results = Set(ledger.results[workflow] ?? [])
                    let summary = try await store.summary(id: workflow)
                    switch variant {
                    case "plain":
                        let sent = (0..<events).map { "\(workflow)-e\($0)" }
                        #expect(results == [(committed + sent).joined(separator: "|")], "\(workflow) ended with \(results); \(reproduce)")
                        // Every acknowledged event is in the result exactly once.
                        let acks = ledger.acks[workflow] ?? []
                        #expect(Set(acks) == Set(sent), "\(workflow): acknowledged \(Set(acks)) of \(sent)")
                        for ack in Set(acks) {
                            let consumed = results.first?.split(separator: "|").filter { $0 == ack }.count ?? 0
                            #expect(consumed == 1, "\(workflow): acknowledged event \(ack) consumed \(consumed) times; \(reproduce)")
                        }
                        acknowledged += Set(acks).count
                        #expect(summary?.status == .completed)
                        expected[.completed, default: 0] += 1
                    case "cancel":
                        #expect(results == ["ended:cancelled"], "\(workflow) ended with \(results); \(reproduce)")
                        #expect(summary?.status == .cancelled)
                        expected[.cancelled, default: 0] += 1
                    default:
                        #expect(results == ["ended:workflowFailed"], "\(workflow) ended with \(results); \(reproduce)")
                        #expect(summary?.status == .failed)
                        expected[.failed, default: 0] += 1
                    }
                }
            }
            for status in [WorkflowStatus.completed, .failed, .cancelled] {
                // Paged: a soak leaves well over 100,000 workflows.
                var count = 0
                var after: StreamID?
                while true {
                    let page = try await store.list(status: status, after: after, limit: 10_000)
                    count += page.count
                    guard let last = page.last, page.count == 10_000 else { break }
                    after = last.stream
                }
                #expect(count == expected[status, default: 0], "\(count) workflows \(status) in the store, \(expected[status, default: 0]) expected")
            }
            #expect(try await store.list(status: .running, after: nil, limit: 10).isEmpty)
            #expect(try store.verify().isClean)
            let rerun = ledger.runs.values.reduce(0) { $0 + $1.count - 1 }
            print(
                "crash campaign: seed \(seed), \(kills) kills over \(launches) launches, \(rounds.count * workflowsPerRound) workflows "
                    + "(\(expected[.completed, default: 0]) completed, \(expected[.failed, default: 0]) failed, "
                    + "\(expected[.cancelled, default: 0]) cancelled), \(acknowledged) acknowledged events each consumed once, "
                    + "\(rerun) step bodies re-run before their completion was committed")
            await store.close()
    }
}
