public import Continuum
import Synchronization
#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// A clock that moves only when the test says, so a workflow that sleeps three days runs in
/// milliseconds.
///
/// ```swift
/// let clock = ManualClock()
/// let runtime = WorkflowRuntime(store: store, workflows: [Reminder()], configuration: .init(clock: clock))
/// …
/// try await runtime.waitForTimers(1)   // the workflow is asleep (see `WorkflowRuntime.waitForTimers`)
/// clock.advance(by: .seconds(3 * 86_400))
/// ```
public final class ManualClock: WorkflowClock {
    private struct Sleeper {
        var deadline: Int64
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Int64
        var sleepers: [UInt64: Sleeper] = [:]
        var nextID: UInt64 = 0
    }

    private let state: Mutex<State>

    /// Creates a clock reading `start` (default: 2026-01-01T00:00:00Z).
    public init(start: Date = Date(timeIntervalSince1970: 1_767_225_600)) {
        state = Mutex(State(now: Int64(start.timeIntervalSince1970 * 1_000_000_000)))
    }

    public func now() -> Int64 { state.withLock { $0.now } }

    /// How many tasks are sleeping on the clock.
    public var sleepers: Int { state.withLock { $0.sleepers.count } }

    public func sleep(until deadline: Int64) async throws {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resume: Result<Void, any Error>? = state.withLock { state in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if state.now >= deadline { return .success(()) }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return nil
                }
                if let resume { continuation.resume(with: resume) }
            }
        } onCancel: {
            state.withLock { $0.sleepers.removeValue(forKey: id) }?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the clock forward and wakes every sleeper whose deadline has come.
    public func advance(by duration: Duration) {
        let (seconds, attoseconds) = duration.components
        advance(toNanoseconds: now() + seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// Moves the clock to `nanoseconds` since 1970 (never backwards) and wakes the sleepers that are due.
    public func advance(toNanoseconds nanoseconds: Int64) {
        let due = state.withLock { state in
            state.now = max(state.now, nanoseconds)
            let due = state.sleepers.filter { $0.value.deadline <= state.now }
            for id in due.keys { state.sleepers[id] = nil }
            return due.values.sorted { $0.deadline < $1.deadline }
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Waits until at least `count` tasks sleep on the clock.
    public func waitForSleepers(_ count: Int, timeout: Duration = .seconds(30)) async throws {
        try await eventually(timeout: timeout) { sleepers >= count }
    }
}
