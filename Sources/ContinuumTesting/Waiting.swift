@_spi(Testing) public import Continuum

extension WorkflowRuntime {
    /// Waits until at least `count` sleeps, event timeouts or retry backoffs of workflows in
    /// memory wait on the runtime's timers, each with its start committed: after this, moving
    /// a `ManualClock` past their deadlines fires them. Dormant workflows' sleeps and event
    /// timeouts count (`WorkflowRuntime.Configuration.dormantAfter`).
    ///
    /// ```swift
    /// try await runtime.start(Reminder.self, id: "r", input: "ada")
    /// try await runtime.waitForTimers(1)      // asleep, and the sleep is in history
    /// clock.advance(by: .seconds(3 * 86_400))
    /// ```
    public func waitForTimers(_ count: Int, timeout: Duration = .seconds(30), isolation: isolated (any Actor)? = #isolation) async throws {
        try await eventually(timeout: timeout) { pendingTimers >= count }
    }

    /// Waits until the store's due-time index holds at least `count` timers: that many waits
    /// with a deadline are committed, whether their workflows are in memory or already parked.
    /// Use it rather than ``waitForTimers(_:timeout:isolation:)`` when workflows may be parked
    /// (a short `parkAfter`): a parked workflow's timer no longer waits in memory.
    public func waitForIndexedTimers(_ count: Int, timeout: Duration = .seconds(30), isolation: isolated (any Actor)? = #isolation) async throws {
        let deadline = ContinuousClock.now + timeout
        while try await store.timers(after: nil, limit: count).count < count {
            guard ContinuousClock.now < deadline else { throw ConditionTimeout(timeout: timeout) }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

/// Waits until `condition` holds, checking every few milliseconds.
///
/// The waits of this kit give up after 30 seconds unless told otherwise: a condition that holds
/// returns at once, and a shared CI machine running a whole suite in parallel can stall a test
/// for many seconds (10 seconds was not enough on a two-core machine).
///
/// - Throws: ``ConditionTimeout`` when it still does not hold after `timeout`.
public func eventually(
    timeout: Duration = .seconds(30),
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

    /// A timeout after `timeout`.
    public init(timeout: Duration) { self.timeout = timeout }
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

extension WorkflowRuntime {
    /// Waits until workflow `id`'s history satisfies `condition`, checking it now and again after
    /// every change the runtime commits for the workflow (no polling); returns that history.
    ///
    /// ```swift
    /// try await runtime.start(Approval.self, id: "po-1", input: order)
    /// try await runtime.waitForHistory(of: "po-1") { $0.contains { $0.kindName == "waitStarted" } }
    /// ```
    ///
    /// - Throws: ``ConditionTimeout`` when it does not hold within `timeout`.
    @discardableResult
    public func waitForHistory(
        of id: String, timeout: Duration = .seconds(30), isolation: isolated (any Actor)? = #isolation,
        _ condition: @escaping @Sendable ([HistoryEvent]) -> Bool
    ) async throws -> [HistoryEvent] {
        // Subscribed first, checked second: a change committed in between is in the stream.
        let changes = changes(of: id)
        return try await withTimeout(timeout) {
            if let history = try await self.historyIfKnown(id), condition(history) { return history }
            for await _ in changes {
                if let history = try await self.historyIfKnown(id), condition(history) { return history }
            }
            throw CancellationError()
        }
    }

    /// Waits until workflow `id` has `status`, checking now and after every change committed for it.
    ///
    /// - Throws: ``ConditionTimeout`` when it does not within `timeout`.
    public func waitForStatus(
        of id: String, _ status: WorkflowStatus, timeout: Duration = .seconds(30), isolation: isolated (any Actor)? = #isolation
    ) async throws {
        let changes = changes(of: id)
        try await withTimeout(timeout) {
            if try await self.status(of: id)?.status == status { return }
            for await _ in changes where try await self.status(of: id)?.status == status { return }
            throw CancellationError()
        }
    }

    private func historyIfKnown(_ id: String) async throws -> [HistoryEvent]? {
        do {
            return try await history(of: id)
        } catch where error.code == .unknownWorkflow {
            return nil
        }
    }
}

/// Runs `operation`, or throws ``ConditionTimeout`` once `timeout` passes first (cancelling it),
/// so that a test waiting for something that never happens fails instead of hanging.
///
/// ```swift
/// let total = try await withTimeout(.seconds(30)) { try await handle.result() }
/// ```
public func withTimeout<R: Sendable>(_ timeout: Duration, _ operation: @escaping @Sendable () async throws -> R) async throws -> R {
    try await withThrowingTaskGroup(of: R?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let result = first else { throw ConditionTimeout(timeout: timeout) }
        return result
    }
}
