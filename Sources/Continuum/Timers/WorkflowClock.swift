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
