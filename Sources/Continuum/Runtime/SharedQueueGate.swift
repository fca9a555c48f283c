import DequeModule
import Logging
import Synchronization

/// Admits work to queues whose slots a store shared by several processes keeps
/// (``SharedQueueStore``), so that a queue's limits hold across every process.
///
/// Work joins its queue with a pass of its own (one round trip, which admits it at once when
/// there is room) and otherwise parks here until a later pass admits it. Each configured queue
/// has a pump (``run()``) that makes those later passes: when a slot is handed back here (the
/// release rides the pass, so it is one round trip too), when the store announces a change made
/// by another process, after the wait the rate asks for, and every ``poll`` while work waits,
/// in case an announcement was lost. Slots are handed back by the pump, never by the releasing
/// task, so a release does not wait for the store: until the pass lands, the store counts the
/// slot as held, which can only hold work back, never let too much through.
///
/// The store's order decides who goes first, across processes; this process only parks and
/// wakes its own waiters.
final class SharedQueueGate: Sendable {
    private struct Waiter {
        var granted = false
        var cancelled = false
        var continuation: CheckedContinuation<Void, Never>?
    }

    private struct Queue {
        var waiters: [UInt64: Waiter] = [:]
        /// Tickets a pass admitted before their joiner had registered them.
        var early: Set<UInt64> = []
        /// Tickets to take off the queue at the next pass.
        var leaving: [UInt64] = []
        /// Tickets taken off by a pass in flight.
        var sending: Set<UInt64> = []
        /// Slots held here, in all and per partition.
        var running = 0
        var partitions: [String: Int] = [:]
    }

    let store: any SharedQueueStore
    let owner: OwnerID
    let limits: [String: QueueLimits]
    private let logger: Logger
    private let state = Mutex<[String: Queue]>([:])
    private let bells: [String: Doorbell]

    /// How often a queue with waiting work is looked at when nothing announced a change.
    static let poll: Duration = .milliseconds(50)
    /// How often an idle queue's pump wakes (it asks the store nothing then).
    static let idle: Duration = .seconds(1)

    /// Reports how many hold a slot and how many wait here, per queue, after each change.
    private let report: @Sendable (String, (running: Int, waiting: Int)) -> Void

    init(
        store: any SharedQueueStore, owner: OwnerID, limits: [String: QueueLimits], logger: Logger,
        report: @escaping @Sendable (String, (running: Int, waiting: Int)) -> Void
    ) {
        self.store = store
        self.owner = owner
        self.limits = limits
        self.logger = logger
        self.report = report
        bells = limits.keys.reduce(into: [:]) { $0[$1] = Doorbell() }
    }

    /// Waits for a slot of `entry`'s queue (or, `within` a slot already held, for the rate).
    ///
    /// - Throws: `CancellationError` when the task is cancelled while it waits; a storage
    ///   error when the store could not take the entry (nothing is queued then).
    func acquire(_ entry: QueueEntry, since: Int64, within: Bool, claim: Claim, limits: QueueLimits) async throws -> QueueGate.Permit {
        let queue = entry.name
        let leaving = takeLeaving(queue)
        let admission: QueueAdmission
        do {
            admission = try await store.admit(
                queue: queue, limits: limits, owner: owner, joining: QueueRequest(entry: entry, since: since, within: within, claim: claim), leaving: leaving)
        } catch {
            putBack(leaving, queue)
            throw error
        }
        sent(leaving, queue)
        guard let ticket = admission.ticket else {
            throw ContinuumError(.storageFailure, "The store took no entry for queue '\(queue)'.")
        }
        let permit = QueueGate.Permit(queue: queue, partition: entry.partition, counted: !within, ticket: within ? nil : ticket)
        let admitted = grant(admission.admitted, queue, joining: ticket, permit: permit)
        reportCounts(queue)
        if admitted { return permit }
        if admission.retryAfter != nil { bells[queue]?.ring() }
        defer { reportCounts(queue) }
        return try await park(ticket, permit)
    }

    /// Hands the slot back: the queue's pump takes it off at its next pass, which it makes now.
    func release(_ permit: QueueGate.Permit) {
        guard let ticket = permit.ticket else { return }
        state.withLock { queues in
            queues[permit.queue, default: Queue()].leaving.append(ticket)
            Self.uncount(permit, in: &queues[permit.queue, default: Queue()])
        }
        reportCounts(permit.queue)
        bells[permit.queue]?.ring()
    }

    /// Runs every configured queue's pump until cancelled, and rings them when the store
    /// announces a change (`notices`: queue names).
    func run(notices: AsyncStream<String>) async {
        await withDiscardingTaskGroup { group in
            for queue in limits.keys.sorted() {
                group.addTask { await self.pump(queue) }
            }
            group.addTask {
                for await queue in notices { self.bells[queue]?.ring() }
            }
            // Every child ends when the runtime's task is cancelled (an AsyncStream ends its
            // iteration then).
        }
    }

    /// How many hold a slot and how many wait here, per queue with work.
    func load() -> [String: (running: Int, waiting: Int, partitions: [String: Int])] {
        state.withLock { $0.mapValues { ($0.running, $0.waiters.count, $0.partitions) } }
    }

    private func reportCounts(_ queue: String) {
        report(queue, state.withLock { ($0[queue]?.running ?? 0, $0[queue]?.waiters.count ?? 0) })
    }

    // MARK: The pump

    private func pump(_ queue: String) async {
        guard let limits = limits[queue], let bell = bells[queue] else { return }
        var wait = Self.idle
        while !Task.isCancelled {
            await bell.wait(upTo: wait)
            if Task.isCancelled { return }
            let (leaving, waiting) = state.withLock { queues -> ([UInt64], Bool) in
                let leaving = queues[queue]?.leaving ?? []
                queues[queue]?.leaving = []
                queues[queue]?.sending.formUnion(leaving)
                return (leaving, !(queues[queue]?.waiters.isEmpty ?? true))
            }
            guard waiting || !leaving.isEmpty else {
                wait = Self.idle
                continue
            }
            do {
                let admission = try await store.admit(queue: queue, limits: limits, owner: owner, joining: nil, leaving: leaving)
                sent(leaving, queue)
                _ = grant(admission.admitted, queue, joining: nil, permit: nil)
                let stillWaiting = state.withLock { !($0[queue]?.waiters.isEmpty ?? true) }
                wait = stillWaiting ? min(admission.retryAfter ?? Self.poll, Self.idle) : Self.idle
            } catch {
                putBack(leaving, queue)
                logger.warning(
                    "Could not admit work to queue '\(queue)': \(error.message)", metadata: [WorkflowRuntime.LogKey.errorCode: "\(error.code)"])
                wait = Self.idle
            }
        }
    }

    // MARK: Waiting

    /// Parks until a pass admits `ticket`; withdraws it when the task is cancelled first.
    private func park(_ ticket: UInt64, _ permit: QueueGate.Permit) async throws -> QueueGate.Permit {
        let queue = permit.queue
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { queues -> Bool in
                    guard let waiter = queues[queue]?.waiters[ticket], !waiter.granted, !waiter.cancelled else { return true }
                    queues[queue]?.waiters[ticket]?.continuation = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let parked = state.withLock { queues -> CheckedContinuation<Void, Never>? in
                guard queues[queue]?.waiters[ticket] != nil else { return nil }
                queues[queue]?.waiters[ticket]?.cancelled = true
                defer { queues[queue]?.waiters[ticket]?.continuation = nil }
                return queues[queue]?.waiters[ticket]?.continuation
            }
            parked?.resume()
        }
        // Admitted is final: the slot is counted here, and only the permit gives it back.
        let granted = state.withLock { queues -> Bool in
            let waiter = queues[queue]?.waiters.removeValue(forKey: ticket)
            if waiter?.granted == true {
                Self.count(permit, in: &queues[queue, default: Queue()])
                return true
            }
            queues[queue]?.leaving.append(ticket)
            return false
        }
        if granted { return permit }
        bells[queue]?.ring()
        throw CancellationError()
    }

    /// Marks `tickets` admitted and wakes their waiters; registers `joining` (admitted or not)
    /// and counts the slots taken. Returns whether `joining` was admitted.
    private func grant(_ tickets: [UInt64], _ queue: String, joining: UInt64?, permit: QueueGate.Permit?) -> Bool {
        let (woken, admitted) = state.withLock { queues -> ([CheckedContinuation<Void, Never>], Bool) in
            var state = queues.removeValue(forKey: queue) ?? Queue()
            defer { queues[queue] = state }
            var woken: [CheckedContinuation<Void, Never>] = []
            var admitted = false
            for ticket in tickets {
                if ticket == joining {
                    admitted = true
                } else if state.waiters[ticket] != nil {
                    state.waiters[ticket]?.granted = true
                    if let continuation = state.waiters[ticket]?.continuation {
                        state.waiters[ticket]?.continuation = nil
                        woken.append(continuation)
                    }
                } else if !state.sending.contains(ticket) && !state.leaving.contains(ticket) {
                    // Its joiner's own pass has not answered yet.
                    state.early.insert(ticket)
                }
            }
            if let joining {
                if state.early.remove(joining) != nil { admitted = true }
                if !admitted { state.waiters[joining] = Waiter() }
            }
            return (woken, admitted)
        }
        // Count what was admitted here: the waiters' permits, and the joiner's.
        state.withLock { queues in
            if admitted, let permit { Self.count(permit, in: &queues[queue, default: Queue()]) }
        }
        for continuation in woken { continuation.resume() }
        return admitted
    }

    private func takeLeaving(_ queue: String) -> [UInt64] {
        state.withLock { queues in
            let leaving = queues[queue]?.leaving ?? []
            queues[queue]?.leaving = []
            queues[queue]?.sending.formUnion(leaving)
            return leaving
        }
    }

    private func putBack(_ leaving: [UInt64], _ queue: String) {
        guard !leaving.isEmpty else { return }
        state.withLock { queues in
            queues[queue]?.sending.subtract(leaving)
            queues[queue]?.leaving.append(contentsOf: leaving)
        }
    }

    private func sent(_ leaving: [UInt64], _ queue: String) {
        guard !leaving.isEmpty else { return }
        state.withLock { queues in _ = queues[queue]?.sending.subtract(leaving) }
    }

    private static func count(_ permit: QueueGate.Permit, in queue: inout Queue) {
        guard permit.counted else { return }
        queue.running += 1
        if let partition = permit.partition { queue.partitions[partition, default: 0] += 1 }
    }

    private static func uncount(_ permit: QueueGate.Permit, in queue: inout Queue) {
        guard permit.counted else { return }
        queue.running -= 1
        if let partition = permit.partition {
            queue.partitions[partition, default: 1] -= 1
            if queue.partitions[partition] == 0 { queue.partitions[partition] = nil }
        }
    }
}
