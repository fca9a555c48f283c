import Continuum
import ContinuumLMDB
import Foundation

/// `Onboarding demo`: the story told by `make run`. It runs the worker as a child process
/// twice, the first time with a crash right after step 1, then checks the ledger.
enum Demo {
    /// How a worker process ended.
    enum Termination: Equatable, CustomStringConvertible {
        case exited(Int32)
        case killed(signal: Int32)

        var description: String {
            switch self {
            case .exited(let status): "exit status \(status)"
            case .killed(let signal): "exit signal \(signal)"
            }
        }
    }

    /// Runs the demo; returns the process's exit status.
    static func run(stateDirectory: String) async -> Int32 {
        do {
            return try await tell(stateDirectory: stateDirectory) ? 0 : 1
        } catch {
            Console.complain("demo failed: \(error)")
            return 1
        }
    }

    private static func tell(stateDirectory: String) async throws -> Bool {
        try removeState(stateDirectory)

        Console.say("▶ starting the onboarding workflow for \(Worker.input.userID)…")
        let first = try await launchWorker(stateDirectory: stateDirectory, crashAfterStep: 1)
        guard first == .killed(signal: SIGKILL) else {
            Console.say("✗ expected the first worker to be killed with SIGKILL, but it ended with \(first)")
            return false
        }
        Console.say("⚡ the process was killed with SIGKILL after step 1 (\(first))")

        Console.say("▶ restarting the process…")
        let second = try await launchWorker(stateDirectory: stateDirectory, crashAfterStep: nil)
        guard second == .exited(0) else {
            Console.say("✗ expected the second worker to finish the workflow, but it ended with \(second)")
            return false
        }

        let output = try await finishedOutput(stateDirectory: stateDirectory)
        let ledger = Ledger(path: stateDirectory + "/ledger.txt")
        let lines = try ledger.lines()
        Console.say("📒 \(ledger.path), what the outside world saw:")
        for line in lines { Console.say("   \(line)") }
        return verdict(ledger: lines, output: output)
    }

    /// Deletes what an earlier demo left in `directory`, refusing to delete anything else.
    private static func removeState(_ directory: String) throws {
        let files = FileManager.default
        guard files.fileExists(atPath: directory) else { return }
        let ours: Set = ["data.mdb", "lock.mdb", "continuum.lock", "ledger.txt"]
        guard try files.contentsOfDirectory(atPath: directory).allSatisfy(ours.contains) else {
            throw DemoError("\(directory) holds files the demo did not write; refusing to delete it. Pass another --state DIR.")
        }
        try files.removeItem(atPath: directory)
    }

    /// Checks that the customer was created once, and that the workflow returned that customer.
    private static func verdict(ledger: [String], output: OnboardUser.Output) -> Bool {
        let created = ledger.filter { $0.hasPrefix("payments.createCustomer ") }
        guard created.count == 1 else {
            Console.say("✗ payments.createCustomer ran \(created.count) times; expected exactly once")
            return false
        }
        // "payments.createCustomer user-42 -> cus_1a2b3c4d (pid …)": the word after "->".
        let words = created[0].split(separator: " ")
        let ledgerID = words.firstIndex(of: "->").flatMap { words.indices.contains($0 + 1) ? String(words[$0 + 1]) : nil }
        guard ledgerID == output.customerID else {
            Console.say("✗ the workflow returned \(output.customerID) but the ledger created \(ledgerID ?? "nothing")")
            return false
        }
        Console.say("✓ payments.createCustomer ran exactly once, and the workflow returned that customer (\(output.customerID))")
        return true
    }

    /// Launches this executable as `worker` and waits for it to end.
    private static func launchWorker(stateDirectory: String, crashAfterStep: Int?) async throws -> Termination {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ownExecutable)
        process.arguments = ["worker", "--state", stateDirectory] + (crashAfterStep.map { ["--crash-after-step", "\($0)"] } ?? [])
        return try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { process in
                switch process.terminationReason {
                case .exit: continuation.resume(returning: .exited(process.terminationStatus))
                case .uncaughtSignal: continuation.resume(returning: .killed(signal: process.terminationStatus))
                @unknown default: continuation.resume(returning: .exited(process.terminationStatus))
                }
            }
            do {
                try process.run()
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }

    /// The path of the running executable, so the demo can launch itself as the worker.
    private static var ownExecutable: String {
        #if os(Linux)
        "/proc/self/exe"
        #else
        Bundle.main.executablePath ?? CommandLine.arguments[0]
        #endif
    }

    /// The workflow's result, read back from the event log the workers left behind.
    ///
    /// A handle returns the stored output of a finished workflow without the runtime running,
    /// so this process reads the result without ever being able to run a step itself (it
    /// registers no workflow types either).
    private static func finishedOutput(stateDirectory: String) async throws -> OnboardUser.Output {
        let store = try LMDBStore(path: stateDirectory, configuration: .quiet)
        let runtime = WorkflowRuntime(store: store, workflows: [], configuration: .init(logger: .quiet))
        let output: Result<OnboardUser.Output, any Error>
        do {
            guard let summary = try await runtime.status(of: Worker.workflowID), summary.status == .completed else {
                throw DemoError("workflow \(Worker.workflowID) is not completed in \(stateDirectory)")
            }
            output = .success(try await runtime.handle(OnboardUser.self, id: Worker.workflowID).result())
        } catch {
            output = .failure(error)
        }
        await store.close()
        return try output.get()
    }
}

/// A failure of the demo itself.
struct DemoError: Error, CustomStringConvertible {
    /// What went wrong.
    var description: String

    init(_ description: String) { self.description = description }
}
