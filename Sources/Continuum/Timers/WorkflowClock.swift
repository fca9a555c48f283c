#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The wall clock workflows sleep by.
///
/// Deadlines are absolute wall-clock times (nanoseconds since 1970) because they are stored in
/// history and must mean the same after a restart. The runtime takes the clock in its
/// configuration, so tests can skip time with `ManualClock` from `ContinuumTesting`.
public protocol WorkflowClock: Sendable {
    /// The current time, in nanoseconds since 1970-01-01 UTC.
    func now() -> Int64

    /// Suspends until `now() >= deadline`. Must never return earlier.
    ///
    /// - Throws: `CancellationError` when the task is cancelled first.
    func sleep(until deadline: Int64) async throws
}

/// The system's wall clock, slept on with `ContinuousClock`.
public struct SystemClock: WorkflowClock {
    /// Creates the system clock.
    public init() {}

    public func now() -> Int64 {
        Int64(Date().timeIntervalSince1970 * 1_000_000_000)
    }

    public func sleep(until deadline: Int64) async throws {
        // Wall time may step; re-check after every wake so a timer never fires early.
        while true {
            let remaining = deadline - now()
            if remaining <= 0 { return }
            try await Task.sleep(for: .nanoseconds(remaining))
        }
    }
}

extension Duration {
    /// The duration in whole nanoseconds, saturating at the ends of `Int64`.
    var wholeNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflowed) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let (sum, overflowedAgain) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflowed || overflowedAgain { return seconds < 0 ? .min : .max }
        return sum
    }
}

extension Int64 {
    /// This time (nanoseconds since 1970) plus `duration`, held at the ends of the range rather
    /// than overflowing: a sleep of a billion years from a request ends "never", it does not
    /// crash the process (and every restart that replays it).
    func adding(_ duration: Duration) -> Int64 {
        let (sum, overflowed) = addingReportingOverflow(duration.wholeNanoseconds)
        if overflowed { return duration < .zero ? .min : .max }
        return sum
    }

    /// `date` in nanoseconds since 1970, held at the ends of the range.
    static func nanoseconds(since1970 date: Date) -> Int64 {
        let value = date.timeIntervalSince1970 * 1_000_000_000
        guard value.isFinite else { return value < 0 ? .min : .max }
        if value >= 9.2e18 { return .max }
        if value <= -9.2e18 { return .min }
        return Int64(value)
    }
}
