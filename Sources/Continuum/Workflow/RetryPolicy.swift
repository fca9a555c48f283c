/// How a step that throws is tried again: how many attempts, how long to wait between them,
/// and which errors are worth another attempt.
///
/// The wait between attempts is a durable timer: its end is committed with the failed
/// attempt, so a process that dies during the backoff resumes it where it was, neither
/// restarting nor skipping it. Every attempt, its error and the next attempt's time are in
/// the workflow's history.
///
/// ```swift
/// try await ctx.step("charge", retry: .exponential(maxAttempts: 5, initial: .seconds(1)).nonRetryable(CardDeclined.self)) {
///     try await payments.charge(order)
/// }
/// ```
public struct RetryPolicy: Sendable {
    /// The most attempts, the first included (1: no retry).
    public var maxAttempts: Int
    /// The wait before the second attempt.
    public var initialInterval: Duration
    /// How much each wait grows over the one before.
    public var backoffFactor: Double
    /// The longest wait.
    public var maxInterval: Duration
    /// The share of each wait drawn at random (0.2: ±20 %), so retries of many workflows spread out.
    public var jitter: Double
    /// Whether an error is worth another attempt; errors it rejects fail the step at once.
    public var isRetryable: @Sendable (any Error) -> Bool

    /// A policy; the defaults retry up to 5 attempts, waiting 1 s, 2 s, 4 s, 8 s (±20 %), at most 1 minute.
    public init(
        maxAttempts: Int = 5, initialInterval: Duration = .seconds(1), backoffFactor: Double = 2,
        maxInterval: Duration = .seconds(60), jitter: Double = 0.2,
        isRetryable: @escaping @Sendable (any Error) -> Bool = { _ in true }
    ) {
        self.maxAttempts = max(1, maxAttempts)
        self.initialInterval = initialInterval
        self.backoffFactor = max(1, backoffFactor)
        self.maxInterval = maxInterval
        self.jitter = min(1, max(0, jitter))
        self.isRetryable = isRetryable
    }

    /// One attempt only: a step that throws fails. The default for `ctx.step`, since a step
    /// that is not idempotent must not run twice unless its author says so.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// Up to `maxAttempts` attempts with exponentially growing waits.
    public static func exponential(
        maxAttempts: Int, initial: Duration = .seconds(1), factor: Double = 2, maxInterval: Duration = .seconds(60), jitter: Double = 0.2
    ) -> RetryPolicy {
        RetryPolicy(maxAttempts: maxAttempts, initialInterval: initial, backoffFactor: factor, maxInterval: maxInterval, jitter: jitter)
    }

    /// This policy, failing at once on errors of the given types.
    public func nonRetryable(_ types: any Error.Type...) -> RetryPolicy {
        var policy = self
        let previous = isRetryable
        let names = Set(types.map { String(reflecting: $0) })
        policy.isRetryable = { error in !names.contains(String(reflecting: type(of: error))) && previous(error) }
        return policy
    }

    /// The wait after attempt `attempt` (1 for the first) failed, jitter included.
    public func delay(afterAttempt attempt: UInt32) -> Duration {
        let cap = Double(maxInterval.wholeNanoseconds)
        var capped = min(Double(initialInterval.wholeNanoseconds), cap)
        for _ in 1..<max(1, attempt) where capped < cap { capped = min(capped * backoffFactor, cap) }
        let spread = jitter == 0 ? 1 : Double.random(in: (1 - jitter)...(1 + jitter))
        return .nanoseconds(Int64(max(0, capped * spread)))
    }
}
