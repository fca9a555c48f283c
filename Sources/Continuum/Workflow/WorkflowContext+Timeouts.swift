/// Steps whose every attempt has a time limit.
///
/// An attempt that runs past `timeout` is cancelled and fails with
/// ``ContinuumError/Code/timedOut``, which the step's retry policy may try again like any other
/// failure. The body runs in a child task and must honour cancellation (`Task.sleep`, URLSession
/// and AsyncHTTPClient do): one that ignores it delays the step until it returns, and its result
/// is discarded. The limit is per attempt and not recorded, since an attempt a crash cut short
/// runs again from the start; what is recorded is each attempt's failure, as for other errors.
extension WorkflowContext {
    /// Runs a step whose every attempt may take at most `timeout`.
    ///
    /// ```swift
    /// let answer = try await ctx.step("ask-model", timeout: .seconds(30), retry: .exponential(maxAttempts: 4)) { step in
    ///     try await model.complete(prompt, idempotencyKey: step.idempotencyKey)
    /// }
    /// ```
    ///
    /// - Parameters:
    ///   - name: The step's name, stable across releases of the workflow.
    ///   - version: Bump it when you change what the step does.
    ///   - fingerprint: The fingerprint of the step's code, as `#step` writes it.
    ///   - timeout: The longest an attempt may run (by the runtime's clock).
    ///   - policy: How to try again when an attempt throws or runs out of time (default: ``RetryPolicy/none``).
    ///   - queue: A queue each attempt takes a slot of (``QueueLimits``); the limit runs from when it has one.
    ///   - isolation: The actor the caller runs on.
    ///   - body: The step's work, `@Sendable` because it runs in a child task that the timeout cancels.
    /// - Throws: as the `step` without a timeout does; an attempt past its limit fails with
    ///   ``ContinuumError/Code/timedOut``.
    public func step<T: Codable & Sendable>(
        _ name: String,
        version: Int? = nil,
        fingerprint: String? = nil,
        timeout: Duration,
        retry policy: RetryPolicy = .none,
        queue: QueueEntry? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: @escaping @Sendable (StepContext) async throws -> T
    ) async throws -> T {
        let timers = instance.timers
        return try await step(name, version: version, fingerprint: fingerprint, retry: policy, queue: queue, isolation: isolation) { context in
            try await Self.attempt(context, limit: timeout, timers: timers, body)
        }
    }

    /// Runs a step that does not need its ``StepContext``, each attempt limited to `timeout`.
    public func step<T: Codable & Sendable>(
        _ name: String,
        version: Int? = nil,
        fingerprint: String? = nil,
        timeout: Duration,
        retry policy: RetryPolicy = .none,
        queue: QueueEntry? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await step(name, version: version, fingerprint: fingerprint, timeout: timeout, retry: policy, queue: queue, isolation: isolation) { _ in
            try await body()
        }
    }

    /// Runs a step that returns nothing, each attempt limited to `timeout`.
    public func step(
        _ name: String,
        version: Int? = nil,
        fingerprint: String? = nil,
        timeout: Duration,
        retry policy: RetryPolicy = .none,
        queue: QueueEntry? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: @escaping @Sendable () async throws -> Void
    ) async throws {
        _ = try await step(name, version: version, fingerprint: fingerprint, timeout: timeout, retry: policy, queue: queue, isolation: isolation) { _ -> Done in
            try await body()
            return Done()
        }
    }

    /// One attempt of `body`, cancelled and failed with `timedOut` once `limit` passes first.
    private static func attempt<T: Sendable>(
        _ context: StepContext, limit: Duration, timers: TimerService, _ body: @escaping @Sendable (StepContext) async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body(context) }
            group.addTask {
                let timer = timers.arm(until: timers.clock.now().adding(limit))
                _ = try await timers.wait(for: timer)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                throw ContinuumError(
                    .timedOut, "Attempt \(context.attempt) of step '\(context.key.name)' took longer than its limit of \(limit).",
                    workflowID: context.workflowID)
            }
            return value
        }
    }
}

/// The recorded result of a timed step that returns nothing.
private struct Done: Codable, Sendable {}
