import CoreMetrics
import DequeModule
import Synchronization

/// Admits work to the runtime's named queues (``QueueLimits``): at most so many at once, per
/// partition, and per time window, the waiting served by priority and then in order of arrival.
///
/// Each waiter registers first, so that whoever admits next can see who is ahead. A waiter that
/// cannot go parks on a continuation; the release of a slot, an admission (which may leave room
/// for the next) or a cancellation wakes the best waiter that could go. A waiter held back only
/// by the rate sleeps on the runtime's clock until the window lets one more through.
final class QueueGate: Sendable {
    /// A slot held; hand it back with ``release(_:)``.
    struct Permit: Sendable {
        let queue: String
        let partition: String?
    }

    private struct Waiter {
        var priority: Int
        /// When the work was put on the queue (by the runtime's clock): earlier goes first.
        var since: Int64
        var partition: String?
        var continuation: CheckedContinuation<Void, any Error>?
    }

    private struct Queue {
        var running = 0
        var perPartition: [String: Int] = [:]
        /// When the starts inside the current rate window happened, oldest first.
        var starts = Deque<Int64>()
        var waiting: [UInt64: Waiter] = [:]
    }

    /// What a waiter does next.
    private enum Step {
        case admitted
        case park
        case sleep(until: Int64)
    }

    private let limits: [String: QueueLimits]
    private let clock: any WorkflowClock
    private let state = Mutex<(queues: [String: Queue], next: UInt64)>(([:], 0))
    private let running: [String: Gauge]
    private let waiting: [String: Gauge]

    init(limits: [String: QueueLimits], clock: any WorkflowClock, factory: any MetricsFactory) {
        self.limits = limits
        self.clock = clock
        running = limits.keys.reduce(into: [:]) { $0[$1] = Gauge(label: "continuum_queue_running", dimensions: [("queue", $1)], factory: factory) }
        waiting = limits.keys.reduce(into: [:]) { $0[$1] = Gauge(label: "continuum_queue_waiting", dimensions: [("queue", $1)], factory: factory) }
    }

    /// Waits for a slot on `entry`'s queue; `nil` at once for a queue without limits.
    ///
    /// - Parameter since: When the work was put on the queue (a workflow's start, recorded, so
    ///   that the order survives a restart); default now.
    /// - Throws: `CancellationError` when the task is cancelled while it waits.
    func acquire(_ entry: QueueEntry, since: Int64? = nil) async throws -> Permit? {
        guard let limits = limits[entry.name] else { return nil }
        let queue = entry.name
        let since = since ?? clock.now()
        let ticket = state.withLock { state -> UInt64 in
            state.next += 1
            state.queues[queue, default: Queue()].waiting[state.next] = Waiter(priority: entry.priority, since: since, partition: entry.partition)
            return state.next
        }
        report(queue)
        do {
            while true {
                switch try await next(ticket, queue, limits) {
                case .admitted:
                    report(queue)
                    return Permit(queue: queue, partition: entry.partition)
                case .sleep(let until):
                    try await clock.sleep(until: until)
                case .park:
                    continue  // woken: look again
                }
            }
        } catch {
            let woken = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                state.queues[queue]?.waiting[ticket] = nil
                return Self.bestParked(&state.queues[queue, default: Queue()], limits, now: clock.now())
            }
            woken?.resume()
            report(queue)
            throw error
        }
    }

    /// Hands a slot back and wakes the best waiter that can now go.
    func release(_ permit: Permit?) {
        guard let permit, let limits = limits[permit.queue] else { return }
        let woken = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            guard var queue = state.queues[permit.queue] else { return nil }
            queue.running -= 1
            if let partition = permit.partition {
                queue.perPartition[partition, default: 1] -= 1
                if queue.perPartition[partition] == 0 { queue.perPartition[partition] = nil }
            }
            let woken = Self.bestParked(&queue, limits, now: clock.now())
            state.queues[permit.queue] = queue
            return woken
        }
        woken?.resume()
        report(permit.queue)
    }

    /// Decides for waiter `ticket`: admitted, or how to wait. A park happens inside the
    /// continuation's closure, under the lock, so that no wake-up falls between deciding and parking.
    private func next(_ ticket: UInt64, _ name: String, _ limits: QueueLimits) async throws -> Step {
        let now = clock.now()
        var decided: Step = .park
        let cancelled = ManagedAtomicFlag()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (step, wake) = state.withLock { state -> (Step?, CheckedContinuation<Void, any Error>?) in
                    guard var queue = state.queues[name], queue.waiting[ticket] != nil else { return (nil, nil) }
                    defer { state.queues[name] = queue }
                    if cancelled.isSet { return (nil, nil) }
                    let step = Self.decide(ticket, &queue, limits, now: now)
                    switch step {
                    case .admitted:
                        // Room may be left for the next waiter.
                        return (.admitted, Self.bestParked(&queue, limits, now: now))
                    case .sleep:
                        return (step, nil)
                    case .park:
                        queue.waiting[ticket]?.continuation = continuation
                        return (nil, nil)
                    }
                }
                if let step {
                    decided = step
                    wake?.resume()
                    continuation.resume()
                } else if cancelled.isSet || state.withLock({ $0.queues[name]?.waiting[ticket] == nil }) {
                    continuation.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            cancelled.set()
            let parked = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                defer { state.queues[name]?.waiting[ticket]?.continuation = nil }
                return state.queues[name]?.waiting[ticket]?.continuation
            }
            parked?.resume(throwing: CancellationError())
        }
        try Task.checkCancellation()
        return decided
    }

    /// Whether waiter `ticket` goes now (then it is counted as running), sleeps for the rate, or parks.
    private static func decide(_ ticket: UInt64, _ queue: inout Queue, _ limits: QueueLimits, now: Int64) -> Step {
        if let rate = limits.rate {
            let windowStart = now - rate.window.wholeNanoseconds
            while let first = queue.starts.first, first <= windowStart { queue.starts.removeFirst() }
        }
        guard let best = best(queue, limits), best == ticket else { return .park }
        if let concurrency = limits.concurrency, queue.running >= concurrency { return .park }
        if let rate = limits.rate, queue.starts.count >= rate.count, let oldest = queue.starts.first {
            return .sleep(until: oldest.adding(rate.window) + 1)
        }
        let waiter = queue.waiting.removeValue(forKey: ticket)
        queue.running += 1
        if let partition = waiter?.partition { queue.perPartition[partition, default: 0] += 1 }
        if limits.rate != nil { queue.starts.append(now) }
        return .admitted
    }

    /// The waiter that goes next: the highest priority, then the earliest put on the queue, then
    /// the first to ask, among those whose partition has room.
    private static func best(_ queue: Queue, _ limits: QueueLimits) -> UInt64? {
        var best: (ticket: UInt64, waiter: Waiter)?
        for (ticket, waiter) in queue.waiting {
            if let cap = limits.perPartition, let partition = waiter.partition, queue.perPartition[partition, default: 0] >= cap { continue }
            if let current = best, (-current.waiter.priority, current.waiter.since, current.ticket) < (-waiter.priority, waiter.since, ticket) { continue }
            best = (ticket, waiter)
        }
        return best?.ticket
    }

    /// Takes the continuation of the best waiter when it is parked and could go now, to wake it.
    private static func bestParked(_ queue: inout Queue, _ limits: QueueLimits, now: Int64) -> CheckedContinuation<Void, any Error>? {
        guard let ticket = best(queue, limits), let continuation = queue.waiting[ticket]?.continuation else { return nil }
        if let concurrency = limits.concurrency, queue.running >= concurrency { return nil }
        queue.waiting[ticket]?.continuation = nil
        return continuation
    }

    private func report(_ queue: String) {
        let (running, waiting) = state.withLock { ($0.queues[queue]?.running ?? 0, $0.queues[queue]?.waiting.count ?? 0) }
        self.running[queue]?.record(running)
        self.waiting[queue]?.record(waiting)
    }
}

/// A flag set once, read from any thread.
private final class ManagedAtomicFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}
