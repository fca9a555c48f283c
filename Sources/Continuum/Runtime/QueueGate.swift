import CoreMetrics
import DequeModule
import Logging
import Synchronization

/// Admits work to the runtime's named queues (``QueueLimits``): at most so many at once, per
/// partition, and per time window, the waiting served by priority and then in order of arrival.
///
/// Each waiter registers first, so that whoever admits next can see who is ahead. A waiter that
/// cannot go parks on a continuation; the release of a slot, an admission (which may leave room
/// for the next) or a cancellation wakes the best waiter that could go. A waiter held back only
/// by the rate sleeps on the runtime's clock until the window lets one more through.
///
/// Work that runs inside a slot its workflow already holds (a step on its workflow's own queue)
/// asks *within* that slot: it takes no other, so it never waits for the one its own workflow
/// holds, and it is not put behind work waiting for a slot. It still counts against the rate.
final class QueueGate: Sendable {
    /// A slot held; hand it back with ``release(_:)``.
    struct Permit: Sendable {
        let queue: String
        let partition: String?
        /// Whether it counts as running (`false`: it was taken within a slot already held).
        var counted = true
        /// The entry holding the slot in a shared store (``SharedQueueGate``).
        var ticket: UInt64?
    }

    private struct Waiter {
        var ticket: UInt64
        var priority: Int
        /// When the work was put on the queue (by the runtime's clock): earlier goes first.
        var since: Int64
        var partition: String?
        /// Whether it asks within a slot already held: then only the rate holds it back.
        var within = false
        var continuation: CheckedContinuation<Void, any Error>?

        /// Whether this waiter goes before `other`: higher priority, then queued earlier, then asked earlier.
        func precedes(_ other: Waiter) -> Bool {
            (-priority, since, ticket) < (-other.priority, other.since, other.ticket)
        }
    }

    private struct Queue {
        var running = 0
        var perPartition: [String: Int] = [:]
        /// When the starts inside the current rate window happened, oldest first.
        var starts = Deque<Int64>()
        /// The waiters, in the order they go (kept sorted, so the next is found from the front).
        var waiting: [Waiter] = []

        func index(of ticket: UInt64) -> Int? { waiting.firstIndex { $0.ticket == ticket } }

        mutating func insert(_ waiter: Waiter) {
            // Binary search for the place: after every waiter that precedes it.
            var low = 0
            var high = waiting.count
            while low < high {
                let middle = (low + high) / 2
                if waiting[middle].precedes(waiter) { low = middle + 1 } else { high = middle }
            }
            waiting.insert(waiter, at: low)
        }
    }

    /// Runs `body` on queue `name` in place (taken out of the dictionary, so that mutating it
    /// copies nothing), under the lock the caller holds.
    private static func withQueue<R>(_ name: String, in queues: inout [String: Queue], _ body: (inout Queue) -> R) -> R {
        var queue = queues.removeValue(forKey: name) ?? Queue()
        defer { queues[name] = queue }
        return body(&queue)
    }

    /// What a waiter does next.
    private enum Step {
        case admitted
        case park
        case sleep(until: Int64)
    }

    let limits: [String: QueueLimits]
    /// Admission through the store, when it shares queues between processes: then every
    /// decision is the store's, and this gate's own bookkeeping is not used.
    let shared: SharedQueueGate?
    private let clock: any WorkflowClock
    private let state = Mutex<(queues: [String: Queue], next: UInt64)>(([:], 0))
    private let running: [String: Gauge]
    private let waiting: [String: Gauge]

    /// - Parameter shared: The store's shared queues and this runtime's owner, when the store
    ///   shares queues between processes.
    init(
        limits: [String: QueueLimits], clock: any WorkflowClock, factory: any MetricsFactory,
        shared: (store: any SharedQueueStore, owner: OwnerID, logger: Logger)? = nil
    ) {
        self.limits = limits
        self.clock = clock
        let running = limits.keys.reduce(into: [:]) { $0[$1] = Gauge(label: "continuum_queue_running", dimensions: [("queue", $1)], factory: factory) }
        let waiting = limits.keys.reduce(into: [:]) { $0[$1] = Gauge(label: "continuum_queue_waiting", dimensions: [("queue", $1)], factory: factory) }
        self.running = running
        self.waiting = waiting
        self.shared = shared.map { shared in
            SharedQueueGate(store: shared.store, owner: shared.owner, limits: limits, logger: shared.logger) { queue, counts in
                running[queue]?.record(counts.running)
                waiting[queue]?.record(counts.waiting)
            }
        }
    }

    /// Waits for a slot on `entry`'s queue; `nil` at once for a queue without limits.
    ///
    /// - Parameters:
    ///   - since: When the work was put on the queue (a workflow's start, recorded, so that the
    ///     order survives a restart); default now.
    ///   - within: Whether the caller already holds a slot of this queue and partition (a step
    ///     of a workflow that runs on the queue): it then waits only for the rate, and takes no
    ///     slot of the concurrency or of the partition.
    ///   - claim: The claim of the workflow the work belongs to: a shared store counts the
    ///     work's entry while that claim is current.
    /// - Throws: `CancellationError` when the task is cancelled while it waits; a storage error
    ///   when a shared store could not take the entry.
    func acquire(_ entry: QueueEntry, since: Int64? = nil, within: Bool = false, claim: Claim?) async throws -> Permit? {
        guard let limits = limits[entry.name] else { return nil }
        let queue = entry.name
        let since = since ?? clock.now()
        if let shared, let claim {
            return try await shared.acquire(entry, since: since, within: within, claim: claim)
        }
        let (ticket, counts) = state.withLock { state -> (UInt64, (Int, Int)) in
            state.next += 1
            let ticket = state.next
            return (ticket, Self.withQueue(queue, in: &state.queues) { queue in
                queue.insert(Waiter(ticket: ticket, priority: entry.priority, since: since, partition: entry.partition, within: within))
                return (queue.running, queue.waiting.count)
            })
        }
        report(queue, counts)
        do {
            while true {
                switch try await next(ticket, queue, limits) {
                case .admitted:
                    report(queue, state.withLock { ($0.queues[queue]?.running ?? 0, $0.queues[queue]?.waiting.count ?? 0) })
                    return Permit(queue: queue, partition: entry.partition, counted: !within)
                case .sleep(let until):
                    try await clock.sleep(until: until)
                case .park:
                    continue  // woken: look again
                }
            }
        } catch {
            let (woken, counts) = state.withLock { state in
                Self.withQueue(queue, in: &state.queues) { queue in
                    if let index = queue.index(of: ticket) { queue.waiting.remove(at: index) }
                    return (Self.bestParked(&queue, limits), (queue.running, queue.waiting.count))
                }
            }
            woken?.resume()
            report(queue, counts)
            throw error
        }
    }

    /// Hands a slot back and wakes the best waiter that can now go.
    func release(_ permit: Permit?) {
        if let permit, permit.ticket != nil, let shared {
            shared.release(permit)
            return
        }
        guard let permit, permit.counted, let limits = limits[permit.queue] else { return }
        let (woken, counts) = state.withLock { state in
            Self.withQueue(permit.queue, in: &state.queues) { queue in
                queue.running -= 1
                if let partition = permit.partition {
                    queue.perPartition[partition, default: 1] -= 1
                    if queue.perPartition[partition] == 0 { queue.perPartition[partition] = nil }
                }
                return (Self.bestParked(&queue, limits), (queue.running, queue.waiting.count))
            }
        }
        woken?.resume()
        report(permit.queue, counts)
    }

    /// Decides for waiter `ticket`: admitted, or how to wait. A park happens inside the
    /// continuation's closure, under the lock, so that no wake-up falls between deciding and parking.
    private func next(_ ticket: UInt64, _ name: String, _ limits: QueueLimits) async throws -> Step {
        let now = clock.now()
        var decided: Step = .park
        let cancelled = ManagedAtomicFlag()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (step, wake, gone) = state.withLock { state -> (Step?, CheckedContinuation<Void, any Error>?, Bool) in
                    Self.withQueue(name, in: &state.queues) { queue in
                        guard let index = queue.index(of: ticket), !cancelled.isSet else { return (nil, nil, true) }
                        let step = Self.decide(index, &queue, limits, now: now)
                        switch step {
                        case .admitted:
                            // Room may be left for the next waiter.
                            return (.admitted, Self.bestParked(&queue, limits), false)
                        case .sleep:
                            return (step, nil, false)
                        case .park:
                            queue.waiting[index].continuation = continuation
                            return (nil, nil, false)
                        }
                    }
                }
                if let step {
                    decided = step
                    wake?.resume()
                    continuation.resume()
                } else if gone {
                    continuation.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            cancelled.set()
            let parked = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                Self.withQueue(name, in: &state.queues) { queue in
                    guard let index = queue.index(of: ticket) else { return nil }
                    defer { queue.waiting[index].continuation = nil }
                    return queue.waiting[index].continuation
                }
            }
            parked?.resume(throwing: CancellationError())
        }
        // Admitted is final: the slot is counted, and only the permit can give it back.
        if case .admitted = decided { return .admitted }
        try Task.checkCancellation()
        return decided
    }

    /// Whether the waiter at `index` goes now (then it is counted as running), sleeps for the
    /// rate, or parks.
    private static func decide(_ index: Int, _ queue: inout Queue, _ limits: QueueLimits, now: Int64) -> Step {
        if let rate = limits.rate {
            let windowStart = now - rate.window.wholeNanoseconds
            while let first = queue.starts.first, first <= windowStart { queue.starts.removeFirst() }
        }
        // Work within a held slot waits for no slot, so it neither waits in line for one nor
        // holds up those that do; only the rate can hold it back.
        let within = queue.waiting[index].within
        if !within {
            guard best(queue, limits) == index else { return .park }
            if let concurrency = limits.concurrency, queue.running >= concurrency { return .park }
        }
        if let rate = limits.rate, queue.starts.count >= rate.count, let oldest = queue.starts.first {
            return .sleep(until: oldest.adding(rate.window) + 1)
        }
        let waiter = queue.waiting.remove(at: index)
        if !within {
            queue.running += 1
            if let partition = waiter.partition { queue.perPartition[partition, default: 0] += 1 }
        }
        if limits.rate != nil { queue.starts.append(now) }
        return .admitted
    }

    /// The index of the waiter that goes next for a slot: the first in order, not asking within
    /// a slot it holds, whose partition has room.
    private static func best(_ queue: Queue, _ limits: QueueLimits) -> Int? {
        guard let cap = limits.perPartition else { return queue.waiting.firstIndex { !$0.within } }
        return queue.waiting.firstIndex { waiter in
            !waiter.within && (waiter.partition.map { queue.perPartition[$0, default: 0] < cap } ?? true)
        }
    }

    /// Takes the continuation of the best waiter when it is parked and could go now, to wake it.
    private static func bestParked(_ queue: inout Queue, _ limits: QueueLimits) -> CheckedContinuation<Void, any Error>? {
        guard let index = best(queue, limits), let continuation = queue.waiting[index].continuation else { return nil }
        if let concurrency = limits.concurrency, queue.running >= concurrency { return nil }
        queue.waiting[index].continuation = nil
        return continuation
    }

    private func report(_ queue: String, _ counts: (running: Int, waiting: Int)) {
        running[queue]?.record(counts.running)
        waiting[queue]?.record(counts.waiting)
    }
}

/// A flag set once, read from any thread.
private final class ManagedAtomicFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}

extension QueueGate {
    /// How many hold a slot (in all and per partition) and how many wait, per queue that has
    /// had work, read under the lock. Here because the state is private to this file; the
    /// runtime's read-only view is `WorkflowRuntime.queueSnapshot()`.
    func load() -> [String: (running: Int, waiting: Int, partitions: [String: Int])] {
        if let shared { return shared.load() }
        return state.withLock { state in state.queues.mapValues { ($0.running, $0.waiting.count, $0.perPartition) } }
    }
}
