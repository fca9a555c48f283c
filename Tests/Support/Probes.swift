public import ContinuumTesting
import Synchronization

/// Counts how many times each step body ran, across runtimes.
public final class Ledger: Sendable {
    public init() {}

    private let runs = Mutex<[String: Int]>([:])

    public func record(_ name: String) { runs.withLock { $0[name, default: 0] += 1 } }
    public func count(_ name: String) -> Int { runs.withLock { $0[name, default: 0] } }
    public var total: Int { runs.withLock { $0.values.reduce(0, +) } }
    public var names: [String] { runs.withLock { Array($0.keys) } }
}

/// Blocks in a step until released or cancelled, so a test can stop the runtime in the middle of a workflow.
public final class Gate: Sendable {
    public init() {}

    private struct State {
        var open = false
        var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
        var arrived = 0
        /// Callers waiting until this many have arrived.
        var watchers: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }
    private let state = Mutex(State())

    /// Blocks until ``open()`` (or the task is cancelled).
    public func wait() async throws {
        let (ticket, ready) = state.withLock { state in
            state.arrived += 1
            let ready = state.watchers.filter { $0.count <= state.arrived }.map(\.continuation)
            state.watchers.removeAll { $0.count <= state.arrived }
            return (state.arrived, ready)
        }
        for watcher in ready { watcher.resume() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                // Cancellation is read once: read twice, it could turn between the reads, leaving the
                // continuation both stored (for the cancellation handler) and resumed here.
                let proceed = state.withLock { state -> Bool? in
                    if state.open { return true }
                    if Task.isCancelled { return false }
                    state.waiters[ticket] = continuation
                    return nil
                }
                switch proceed {
                case true?: continuation.resume()
                case false?: continuation.resume(throwing: CancellationError())
                case nil: break
                }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: ticket) }?.resume(throwing: CancellationError())
        }
    }

    /// Lets every waiter (and every later one) through.
    public func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [:] }
            return state.waiters
        }
        for waiter in waiters.values { waiter.resume() }
    }

    /// How many bodies reached the gate.
    public var arrived: Int { state.withLock { $0.arrived } }

    /// Returns once `count` bodies reached the gate (signalled, no polling), or throws
    /// ``ConditionTimeout`` after `timeout`.
    public func waitUntilArrived(_ count: Int = 1, timeout: Duration = .seconds(30)) async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let now = self.state.withLock { state -> Bool in
                        if state.arrived >= count { return true }
                        state.watchers.append((count, continuation))
                        return false
                    }
                    if now { continuation.resume() }
                }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let arrived = try await group.next() ?? false
            group.cancelAll()
            if !arrived {
                // Release the watcher the first task left behind, so the group can end.
                let left = self.state.withLock { state in
                    defer { state.watchers.removeAll() }
                    return state.watchers.map(\.continuation)
                }
                for continuation in left { continuation.resume() }
                throw ConditionTimeout(timeout: timeout)
            }
        }
    }
}
