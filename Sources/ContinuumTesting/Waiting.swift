@_spi(Testing) public import Continuum

extension WorkflowRuntime {
    /// Waits until at least `count` sleeps, event timeouts or retry backoffs of workflows in
    /// memory wait on the runtime's timers, each with its start committed: after this, moving
    /// a `ManualClock` past their deadlines fires them.
    ///
    /// ```swift
    /// try await runtime.start(Reminder.self, id: "r", input: "ada")
    /// try await runtime.waitForTimers(1)      // asleep, and the sleep is in history
    /// clock.advance(by: .seconds(3 * 86_400))
    /// ```
    public func waitForTimers(_ count: Int, timeout: Duration = .seconds(10), isolation: isolated (any Actor)? = #isolation) async throws {
        try await eventually(timeout: timeout) { pendingTimers >= count }
    }

    /// Waits until the store's due-time index holds at least `count` timers: that many waits
    /// with a deadline are committed, whether their workflows are in memory or already parked.
    /// Use it rather than ``waitForTimers(_:timeout:isolation:)`` when workflows may be parked
    /// (a short `idleTimeout`): a parked workflow's timer no longer waits in memory.
    public func waitForIndexedTimers(_ count: Int, timeout: Duration = .seconds(10), isolation: isolated (any Actor)? = #isolation) async throws {
        let deadline = ContinuousClock.now + timeout
        while try await store.timers(after: nil, limit: count).count < count {
            guard ContinuousClock.now < deadline else { throw ConditionTimeout(timeout: timeout) }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

/// Waits until `condition` holds, checking every few milliseconds.
///
/// - Throws: ``ConditionTimeout`` when it still does not hold after `timeout`.
public func eventually(
    timeout: Duration = .seconds(10),
    isolation: isolated (any Actor)? = #isolation,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw ConditionTimeout(timeout: timeout) }
        try await Task.sleep(for: .milliseconds(5))
    }
}

/// A condition awaited with ``eventually(timeout:isolation:_:)`` did not hold in time.
public struct ConditionTimeout: Error, CustomStringConvertible {
    /// How long was waited.
    public var timeout: Duration
    public var description: String { "condition not met within \(timeout)" }
}

/// The error `operation` throws, or `nil` when it returns.
public func errorOf(isolation: isolated (any Actor)? = #isolation, _ operation: () async throws -> Void) async -> (any Error)? {
    do {
        try await operation()
        return nil
    } catch {
        return error
    }
}
