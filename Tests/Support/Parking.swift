@_spi(Testing) public import Continuum
public import ContinuumTesting

/// Moves `clock` forward a tenth of a second at a time until every workflow of `runtime` has
/// left memory: parking runs on the runtime's clock, so on a manual clock waiting workflows
/// park only as the test moves time.
public func parkAll(_ runtime: WorkflowRuntime, clock: ManualClock, timeout: Duration = .seconds(30)) async throws {
    try await eventually(timeout: timeout) {
        if runtime.residentWorkflows == 0 { return true }
        clock.advance(by: .milliseconds(100))
        return false
    }
}

/// Runs `body` while a background task moves `clock` forward by `step` every millisecond of
/// real time, as a system clock would move: workflows that only wait park meanwhile.
public func withClockRunning<R: Sendable>(
    _ clock: ManualClock, step: Duration = .milliseconds(20), isolation: isolated (any Actor)? = #isolation,
    _ body: () async throws -> R
) async throws -> R {
    try await withThrowingTaskGroup(of: Void.self, isolation: isolation) { group in
        group.addTask {
            while !Task.isCancelled {
                clock.advance(by: step)
                try? await Task.sleep(for: .milliseconds(1))
            }
        }
        defer { group.cancelAll() }
        return try await body()
    }
}
