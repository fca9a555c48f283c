import Continuum
import ContinuumLMDB
import Foundation

/// `Evolution story [--state DIR]`: what `make evolution` runs. A workflow's code changes while
/// runs of it sleep: the deploy gate sees it coming, development mode reruns the changed step,
/// and production suspends the runs and offers the ways out: resume, reset, fork, cancel.
///
/// Every stage checks what it tells; a stage that sees something else says so and the story
/// ends with exit status 1.
enum Story {
    static func run(stateDirectory: String) async -> Int32 {
        do {
            try removeState(stateDirectory)
            try await development(path: stateDirectory + "/development")
            try await production(path: stateDirectory + "/production")
            Console.heading("Done")
            Console.say("✓ every stage behaved as told")
            return 0
        } catch {
            Console.say("✗ \(error)")
            return 1
        }
    }

    // MARK: Development

    private static func development(path: String) async throws {
        Console.heading("1. Version 1 runs in its own process until dev-1 sleeps after b")
        try await runVersion1(path: path, ids: ["dev-1"])

        Console.heading("2. The deploy gate replays the store against version 2 (b's body edited, c renamed to c2)")
        let report = try await gate(path: path)
        guard report.breaking == 1, let entry = report.entries.first, entry.id == "dev-1", entry.verdict == .codeChanged, entry.step == "'b'" else {
            throw StoryError("the gate should have found dev-1 breaking at step 'b', but reported:\n\(report.text(all: true))")
        }
        Console.say("gate verdict: \(report.breaking) of \(report.checked) workflow(s) would break, at step \(entry.step ?? "?") (\(entry.verdict.rawValue))")
        Console.say("the rename of c does not count: no history recorded c yet, so no run can miss it")

        Console.heading("3. Development: version 2 runs with codeChange: .rerun")
        var configuration = WorkflowRuntime.Configuration.development
        configuration.logger = .quiet
        configuration.build = "v2"
        try await withRuntime(path: path, FollowUpV2(narrator: Narrator(who: "v2")), configuration) { runtime in
            // Recovery replays dev-1: a matches, b's fingerprint differs, so it is reset to b.
            let result = try await runtime.handle(FollowUpV2.self, id: "dev-1").result()
            guard result == "a:dev-1 b2 c2" else { throw StoryError("dev-1 completed with \"\(result)\", expected \"a:dev-1 b2 c2\"") }
            Console.say("rerun: dev-1 completed with \"\(result)\"")
            let history = try await runtime.history(of: "dev-1")
            let a = completions(of: "a", in: history)
            let b = completions(of: "b", in: history)
            guard a == ["\"a:dev-1\""], b == ["\"b1\"", "\"b2\""] else {
                throw StoryError("dev-1's history should hold a once and b twice (b1, b2): a \(a), b \(b)")
            }
            Console.say("a ran once in all (its code did not change); b ran twice: \(b.joined(separator: " then ")), the first kept as superseded")
        }
    }

    // MARK: Production

    private static let ids = ["resume-me", "reset-me", "fork-me", "cancel-me"]

    private static func production(path: String) async throws {
        Console.heading("4. Production, a fresh store: version 1 starts four workflows in its own process")
        try await runVersion1(path: path, ids: ids)

        Console.heading("5. Version 2 is deployed with codeChange: .suspend (the default)")
        var configuration = WorkflowRuntime.Configuration.quiet
        configuration.build = "v2"
        try await withRuntime(path: path, FollowUpV2(narrator: Narrator(who: "v2")), configuration) { runtime in
            for id in ids {
                let record = try await suspension(of: id, runtime: runtime)
                guard record.code == "codeChanged", record.recorded?.name == "b" else {
                    throw StoryError("\(id) was suspended for another reason: \(record)")
                }
                Console.say("suspended: \(id) — \(record.code) at step 'b' (build \(record.build ?? "?")); nothing ran, nothing else was appended")
            }
        }
        let before = try await histories(path: path)

        Console.heading("6. After a restart (version 2 again) they are still suspended; three ways out")
        try await withRuntime(path: path, FollowUpV2(narrator: Narrator(who: "v2")), configuration) { runtime in
            let suspended = try await runtime.list(status: .suspended).map(\.id).sorted()
            guard suspended == ids.sorted() else { throw StoryError("after the restart, suspended: \(suspended)") }
            Console.say("still suspended after the restart: \(suspended.joined(separator: ", "))")

            Console.say("-- reset reset-me to step b: version 2 runs b again, the old b stays in history as superseded")
            try await runtime.reset("reset-me", toStep: "b", by: "ops", reason: "take version 2's b")
            let reset = try await runtime.handle(FollowUpV2.self, id: "reset-me").result()
            guard reset == "a:reset-me b2 c2" else { throw StoryError("reset-me completed with \"\(reset)\"") }
            Console.say("reset: reset-me completed with \"\(reset)\"")

            Console.say("-- fork fork-me at step b as fork-me-v2: a copy runs version 2, the original is not touched")
            try await runtime.fork("fork-me", toStep: "b", as: "fork-me-v2", by: "dev", reason: "try version 2 on a real run")
            let forked = try await runtime.handle(FollowUpV2.self, id: "fork-me-v2").result()
            guard forked == "a:fork-me b2 c2" else { throw StoryError("fork-me-v2 completed with \"\(forked)\"") }
            let original = try await runtime.history(of: "fork-me")
            guard try await runtime.status(of: "fork-me")?.status == .suspended, original == before["fork-me"] else {
                throw StoryError("the fork changed its original fork-me")
            }
            Console.say("fork: fork-me-v2 completed with \"\(forked)\"; fork-me is still suspended, its \(original.count) events unchanged")

            Console.say("-- cancel cancel-me")
            try await runtime.cancel("cancel-me", reason: "not needed any more")
            let status = try await runtime.status(of: "cancel-me")?.status
            guard status == .cancelled else { throw StoryError("cancel-me is \(String(describing: status)) after cancel") }
            Console.say("cancel: cancel-me ended cancelled")
        }

        Console.heading("7. Version 1 deployed again (a rollback): resume resume-me with the code it ran")
        try await withRuntime(path: path, FollowUpV1(narrator: Narrator(who: "v1")), .quiet) { runtime in
            try await runtime.resume("resume-me", by: "ops", reason: "version 1 is back")
            let result = try await runtime.handle(FollowUpV1.self, id: "resume-me").result()
            guard result == "a:resume-me b1 c" else { throw StoryError("resume-me completed with \"\(result)\"") }
            Console.say("resume: resume-me completed with \"\(result)\" (b's recorded result, the sleep it had begun)")
        }

        Console.heading("8. Nothing recorded was deleted: the history of reset-me")
        let after = try await histories(path: path)
        for id in ids {
            guard let old = before[id], let new = after[id], new.starts(with: old) else {
                throw StoryError("the history of \(id) before the ways out is not a prefix of its history after them")
            }
        }
        try await LMDBStore.withStore(path: path, configuration: .quiet) { store in
            // Not run: a runtime answers questions about history without driving anything.
            let runtime = WorkflowRuntime(store: store, workflows: [], configuration: .quiet)
            let history = try await runtime.history(of: "reset-me")
            let effective = Set(try await runtime.history(of: "reset-me", includingSuperseded: false).map(\.sequence))
            for event in history {
                let mark = effective.contains(event.sequence) ? "  " : "~ "
                Console.say("  \(mark)#\(event.sequence) \(describe(event))" + (effective.contains(event.sequence) ? "" : "   (superseded)"))
            }
            let superseded = history.count - effective.count
            Console.say(
                "history: \(history.count) events, \(superseded) superseded by the reset and kept; the first b's result \"b1\" is still there")
        }
        Console.say("every workflow's history before the ways out is a prefix of its history after them: nothing was rewritten or deleted")
    }

    // MARK: Helpers

    /// Launches this executable as the version 1 process and waits for it to kill itself.
    private static func runVersion1(path: String, ids: [String]) async throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let exit = try await launch(["v1", "--state", path, "--ids", ids.joined(separator: ",")])
        guard exit == .uncaughtSignal(SIGKILL) else { throw StoryError("the version 1 process should have been killed with SIGKILL; it ended with \(exit)") }
        Console.say("⚡ the version 1 process is gone (SIGKILL); asleep in the store: \(ids.joined(separator: ", "))")
    }

    /// How a child process ended.
    enum Exit: Equatable, CustomStringConvertible {
        case exit(Int32)
        case uncaughtSignal(Int32)

        var description: String {
            switch self {
            case .exit(let status): "exit status \(status)"
            case .uncaughtSignal(let signal): "signal \(signal)"
            }
        }
    }

    /// Runs this executable with `arguments` and waits for it to end.
    private static func launch(_ arguments: [String]) async throws -> Exit {
        let process = Process()
        #if os(Linux)
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        #else
        process.executableURL = URL(fileURLWithPath: Bundle.main.executablePath ?? CommandLine.arguments[0])
        #endif
        process.arguments = arguments
        return try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { process in
                switch process.terminationReason {
                case .uncaughtSignal: continuation.resume(returning: .uncaughtSignal(process.terminationStatus))
                default: continuation.resume(returning: .exit(process.terminationStatus))
                }
            }
            do {
                try process.run()
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }

    /// Runs `body` with a runtime on the store at `path` running `workflow`, then closes both.
    private static func withRuntime(
        path: String, _ workflow: any Workflow, _ configuration: WorkflowRuntime.Configuration,
        _ body: (WorkflowRuntime) async throws -> Void
    ) async throws {
        try await LMDBStore.withStore(path: path, configuration: .quiet) { store in
            let runtime = WorkflowRuntime(store: store, workflows: [workflow], configuration: configuration)
            try await runtime.withRunning(body)
        }
    }

    /// The deploy gate, as `continuum check` runs it: the store opened read-only, every
    /// unfinished workflow replayed against version 2, nothing run, nothing written.
    private static func gate(path: String) async throws -> CheckReport {
        var configuration = LMDBStore.Configuration.quiet
        configuration.readOnly = true
        let report = try await LMDBStore.withStore(path: path, configuration: configuration) { store in
            try await WorkflowReplayer(workflows: [FollowUpV2(narrator: Narrator(who: "gate"))], logger: .quiet).check(store: store)
        }
        for line in report.text().split(separator: "\n") { Console.say("  \(line)") }
        return report
    }

    /// Waits until workflow `id` is suspended and returns why.
    private static func suspension(of id: String, runtime: WorkflowRuntime) async throws -> SuspensionRecord {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if try await runtime.status(of: id)?.status == .suspended, let record = try await runtime.suspension(of: id) { return record }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw StoryError("\(id) was not suspended within 30 seconds")
    }

    /// Every stored event of every workflow of the store at `path`.
    private static func histories(path: String) async throws -> [String: [HistoryEvent]] {
        try await LMDBStore.withStore(path: path, configuration: .quiet) { store in
            var histories: [String: [HistoryEvent]] = [:]
            for id in ids { histories[id] = try await store.load(id: id)?.events }
            return histories
        }
    }

    /// The recorded results of step `name`, in history order, superseded ones included.
    private static func completions(of name: String, in history: [HistoryEvent]) -> [String] {
        history.compactMap { event in
            if case .stepCompleted(let step, let result) = event.kind, step.name == name { String(decoding: result, as: UTF8.self) } else { nil }
        }
    }

    /// One line for an event.
    private static func describe(_ event: HistoryEvent) -> String {
        func json(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
        switch event.kind {
        case .workflowStarted(let type, let input, _): return "workflowStarted \(type), input \(json(input))"
        case .stepCompleted(let step, let result): return "stepCompleted \(step.name) → \(json(result)) (fingerprint \(step.fingerprint ?? "none"))"
        case .waitStarted(let step, _, _): return "waitStarted \(step.name)"
        case .waitEnded(let key, let outcome):
            switch outcome {
            case .fired: return "waitEnded \(key.name): the timer fired"
            case .cancelled: return "waitEnded \(key.name): cancelled"
            case .timedOut: return "waitEnded \(key.name): timed out"
            case .received(let sequence): return "waitEnded \(key.name): received event #\(sequence)"
            }
        case .workflowSuspended(let record):
            return "workflowSuspended \(record.code) at \(record.recorded.map(\.description) ?? "?") (build \(record.build ?? "?"))"
        case .workflowResumed(let action): return "workflowResumed by \(action.by): \(action.reason)"
        case .workflowReset(let target, let generation, let action):
            return "workflowReset to #\(target), generation \(generation), by \(action.by): \(action.reason)"
        case .workflowForked(let from, let sequence, let action): return "workflowForked from \(from) at #\(sequence), by \(action.by): \(action.reason)"
        case .workflowCompleted(let output): return "workflowCompleted → \(json(output))"
        case .cancelRequested(let reason, let by): return "cancelRequested\(by.map { " by \($0)" } ?? ""): \(reason)"
        case .workflowCancelled(let reason): return "workflowCancelled: \(reason)"
        default: return String(describing: event.kind)
        }
    }

    /// Deletes what an earlier run left in `directory`, refusing to delete anything else.
    private static func removeState(_ directory: String) throws {
        let files = FileManager.default
        guard files.fileExists(atPath: directory) else { return }
        let ours: Set = ["development", "production"]
        guard try files.contentsOfDirectory(atPath: directory).allSatisfy(ours.contains) else {
            throw StoryError("\(directory) holds files the story did not write; refusing to delete it. Pass another --state DIR.")
        }
        try files.removeItem(atPath: directory)
    }
}
