@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Synchronization
import Testing

struct Flaky: Error {}
struct Fatal: Error {}

/// Fails its step with `Flaky` until attempt `succeedOn`, recording every attempt number.
struct FlakyWorkflow: Workflow {
    static let name = "flaky"
    let attempts: Ledger
    let policy: RetryPolicy

    struct Input: Codable, Sendable {
        var succeedOn: Int
        var fatal = false
    }

    func run(_ ctx: WorkflowContext, input: Input) async throws -> UInt32 {
        try await ctx.step("call-api", retry: policy) { (step: StepContext) -> UInt32 in
            attempts.record("attempt-\(step.attempt)")
            if input.fatal { throw Fatal() }
            if step.attempt < input.succeedOn { throw Flaky() }
            return step.attempt
        }
    }
}


private let policy = RetryPolicy.exponential(maxAttempts: 4, initial: .seconds(10), factor: 2, jitter: 0).nonRetryable(Fatal.self)

@Suite("Retries")
struct RetryTests {
    @Test("a failing step is retried after durable backoffs, each attempt and its error in history")
    func retriesWithBackoff() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let attempts = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [FlakyWorkflow(attempts: attempts, policy: policy)]) { runtime throws in
                let handle = try await runtime.start(FlakyWorkflow.self, id: "f", input: .init(succeedOn: 3))
                let start = clock.now()
                try await runtime.waitForTimers(1)
                clock.advance(by: .seconds(9))
                try await Task.sleep(for: .milliseconds(20))
                #expect(attempts.count("attempt-2") == 0, "the backoff ended early")
                clock.advance(by: .seconds(1))
                try await eventually { attempts.count("attempt-2") == 1 }
                try await runtime.waitForTimers(1)
                clock.advance(by: .seconds(20))
                #expect(try await handle.result() == 3)
                let retries = try await runtime.history(of: "f").compactMap { event -> (UInt32, Int64, String)? in
                    if case .stepRetrying(_, let attempt, let failure, let next) = event.kind { return (attempt, next, failure.type) }
                    return nil
                }
                #expect(retries.map(\.0) == [1, 2])
                #expect(retries.map(\.1) == [start + 10_000_000_000, start + 30_000_000_000])
                #expect(retries.allSatisfy { $0.2.contains("Flaky") })
            }
            #expect(attempts.total == 3)
        }
    }

    @Test("a non-retryable error fails the step at once")
    func nonRetryable() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let attempts = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [FlakyWorkflow(attempts: attempts, policy: policy)]) { runtime throws in
                let error = await #expect(throws: ContinuumError.self) {
                    try await runtime.start(FlakyWorkflow.self, id: "f", input: .init(succeedOn: 1, fatal: true)).result()
                }
                #expect(error?.code == .workflowFailed)
                #expect(attempts.total == 1)
                #expect(!(try await runtime.history(of: "f")).contains { if case .stepRetrying = $0.kind { true } else { false } })
            }
        }
    }

    @Test("after the last attempt the step fails with its last error")
    func exhausted() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let attempts = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [FlakyWorkflow(attempts: attempts, policy: policy)]) { runtime throws in
                let handle = try await runtime.start(FlakyWorkflow.self, id: "f", input: .init(succeedOn: 99))
                for _ in 0..<3 {
                    try await runtime.waitForTimers(1)
                    clock.advance(by: .seconds(60))
                }
                let error = await #expect(throws: ContinuumError.self) { try await handle.result() }
                #expect(error?.message.contains("Flaky") == true)
                #expect(attempts.total == 4)
            }
        }
    }

    @Test("a backoff that ended during downtime runs the next attempt at once after a restart")
    func backoffOverdueAfterRestart() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let attempts = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [FlakyWorkflow(attempts: attempts, policy: policy)]) { runtime throws in
                try await runtime.start(FlakyWorkflow.self, id: "f", input: .init(succeedOn: 2))
                try await runtime.waitForTimers(1)
            }
            clock.advance(by: .seconds(60))
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [FlakyWorkflow(attempts: attempts, policy: policy)]) { runtime throws in
                #expect(try await runtime.handle(FlakyWorkflow.self, id: "f").result() == 2)
            }
            #expect(attempts.count("attempt-2") == 1)
        }
    }

    @Test("a restart during a backoff resumes it: not restarted, not skipped")
    func backoffAcrossRestart() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let attempts = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [FlakyWorkflow(attempts: attempts, policy: policy)]) { runtime throws in
                try await runtime.start(FlakyWorkflow.self, id: "f", input: .init(succeedOn: 2))
                try await runtime.waitForTimers(1)
            }
            #expect(attempts.total == 1)
            clock.advance(by: .seconds(4))  // down for 4 of the 10 seconds
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [FlakyWorkflow(attempts: attempts, policy: policy)]) { runtime throws in
                try await runtime.waitForTimers(1)
                clock.advance(by: .seconds(5))
                try await Task.sleep(for: .milliseconds(20))
                #expect(attempts.total == 1, "the backoff was skipped or shortened")
                clock.advance(by: .seconds(1))
                #expect(try await runtime.handle(FlakyWorkflow.self, id: "f").result() == 2)
            }
            #expect(attempts.count("attempt-2") == 1)
        }
    }
}
