import Continuum
import ContinuumLMDB
import Foundation
import Logging

/// `Onboarding worker`: the service process. It opens the event log in the state directory,
/// starts the runtime (which first resumes every unfinished workflow), starts `OnboardUser`
/// for user-42 (or finds the run already started) and waits for its result.
enum Worker {
    /// The workflow the demo runs; starting the same id twice finds the first run.
    static let workflowID = "onboard-user-42"
    /// Its input.
    static let input = OnboardUser.Input(userID: "user-42", email: "ada@example.com")

    /// Runs the worker; returns the process's exit status.
    static func run(stateDirectory: String, crashAfterStep: Int?) async -> Int32 {
        do {
            let store = try LMDBStore(path: stateDirectory, configuration: .quiet)
            let ledger = Ledger(path: stateDirectory + "/ledger.txt")
            let workflow = OnboardUser(
                payments: Payments(ledger: ledger), database: CustomerDatabase(ledger: ledger), mailer: Mailer(ledger: ledger),
                crashAfterStep: crashAfterStep)
            let runtime = WorkflowRuntime(store: store, workflows: [workflow], configuration: .init(logger: .quiet))

            if let summary = try await runtime.status(of: workflowID), summary.status == .running {
                let done = try await runtime.history(of: workflowID).filter { if case .stepCompleted = $0.kind { true } else { false } }
                say("found \(workflowID) unfinished in the event log (\(done.count) of 3 steps done): resuming it")
            }
            let output = try await runtime.withRunning { runtime in
                // Idempotent: after a crash this returns a handle to the run already in the log.
                let handle = try await runtime.start(OnboardUser.self, id: workflowID, input: input)
                return try await handle.result()
            }
            await store.close()
            say("workflow finished: \(output.userID) is customer \(output.customerID)")
            return 0
        } catch {
            Console.complain("worker (pid \(getpid())) failed: \(error)")
            return 1
        }
    }

    /// Narrates one line, marked as coming from this worker process.
    static func say(_ line: String) {
        Console.say("   [worker pid \(getpid())] \(line)")
    }
}

extension Logger {
    /// A logger that prints only warnings and errors, so the runtime does not drown the story.
    static var quiet: Logger {
        var logger = Logger(label: "onboarding")
        logger.logLevel = .warning
        return logger
    }
}

extension LMDBStore.Configuration {
    /// The default configuration, logging only warnings and errors.
    static var quiet: Self {
        var configuration = Self()
        configuration.logger = .quiet
        return configuration
    }
}
