import Continuum
import ContinuumLMDB
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `Evolution v1 --state DIR --ids ID,ID…`: the service process with version 1 deployed. It
/// starts `follow-up` for each id, waits until every one sleeps after `b` (the sleep's start is
/// committed), and then dies with `SIGKILL`, as a process does when a deploy replaces it.
enum Worker {
    static func run(stateDirectory: String, ids: [String]) async -> Int32 {
        let who = "v1 pid \(getpid())"
        do {
            let store = try LMDBStore(path: stateDirectory, configuration: .quiet)
            let runtime = WorkflowRuntime(store: store, workflows: [FollowUpV1(narrator: Narrator(who: who))], configuration: .quiet)
            try await runtime.withRunning { runtime in
                for id in ids { try await runtime.start(FollowUpV1.self, id: id, input: id) }
                for id in ids {
                    let due = try await sleepDeadline(of: id, runtime: runtime)
                    let left = String(format: "%.1f", due.timeIntervalSinceNow)
                    Console.say("   [\(who)] \(id) sleeps after b, due in \(left) s (its deadline is committed)")
                }
                Console.say("   [\(who)] killing myself with SIGKILL, as a deploy replaces this process")
                kill(getpid(), SIGKILL)
            }
            return 1  // not reached: SIGKILL
        } catch {
            Console.complain("version 1 worker (pid \(getpid())) failed: \(error)")
            return 1
        }
    }

    /// Waits until workflow `id` has committed the start of its sleep, and returns its deadline.
    private static func sleepDeadline(of id: String, runtime: WorkflowRuntime) async throws -> Date {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            for event in try await runtime.history(of: id) {
                if case .waitStarted(let step, .timer, let due?) = event.kind, step.name == "wait-a-day" {
                    return Date(timeIntervalSince1970: Double(due) / 1e9)
                }
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw StoryError("\(id) did not reach its sleep within 30 seconds")
    }
}

extension Logger {
    /// A logger that prints only critical messages: the story narrates the suspensions (which
    /// the runtime logs as errors) itself.
    static var quiet: Logger {
        var logger = Logger(label: "evolution")
        logger.logLevel = .critical
        return logger
    }
}

extension LMDBStore.Configuration {
    /// The default configuration, logging only critical messages.
    static var quiet: Self {
        var configuration = Self()
        configuration.logger = .quiet
        return configuration
    }
}

extension WorkflowRuntime.Configuration {
    /// The production defaults (``WorkflowRuntime/CodeChangePolicy/suspend``), logging only critical messages.
    static var quiet: Self {
        Self(logger: .quiet)
    }
}

/// A failure of the story itself: something did not happen as told.
struct StoryError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) { self.description = description }
}
