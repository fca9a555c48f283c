import Logging
import Synchronization

/// Admits work to queues whose slots a store shared by several processes keeps
/// (``SharedQueueStore``), so that a queue's limits hold across every process.
///
/// Each configured queue has a pump (``run(notices:)``) that makes the store's passes: work
/// that asks for a slot parks here and rings the pump; slots handed back ring it too. One pass
/// carries every entry that joined and every slot handed back since the last, so under load a
/// round trip admits and releases many at once. The pump also passes when the store announces
/// a change made by another process, after the wait the rate asks for, and every ``poll``
/// while work waits, in case an announcement was lost. A release does not wait for the store:
/// until the pass lands, the store counts the slot as held, which can only hold work back,
/// never let too much through.
///
/// The store's order decides who goes first, across processes; this process only parks and
/// wakes its own waiters.
final class SharedQueueGate: Sendable {
    private struct Waiter {
        var request: QueueRequest
        /// The entry's ticket, once a pass put it on the queue.
        var ticket: UInt64?
        var granted = false
        var cancelled = false
        /// The store no longer has the entry: the workflow's claim ended.
        var lost = false
        var continuation: CheckedContinuation<Void, Never>?
    }

    private struct Queue {
        /// Work waiting here, by a number of this gate's.
        var waiters: [UInt64: Waiter] = [:]
        var byTicket: [UInt64: UInt64] = [:]
        /// Waiters whose entries the next pass puts on the queue.
        var joining: [UInt64] = []
        /// Tickets the next pass takes off the queue.
        var leaving: [UInt64] = []
        /// Slots held here, in all and per partition.
        var running = 0
        var partitions: [String: Int] = [:]
        /// Whether a pass has landed since this runtime began (the first drops what an earlier
        /// process under the same owner name left).
        var introduced = false
    }

    let store: any SharedQueueStore
    let owner: OwnerID
    let limits: [String: QueueLimits]
    private let logger: Logger
    private let state = Mutex<(queues: [String: Queue], next: UInt64)>(([:], 0))
    private let bells: [String: Doorbell]
    /// Reports how many hold a slot and how many wait here, per queue, after each change.
    private let report: @Sendable (String, (running: Int, waiting: Int)) -> Void
    /// Makes this runtime's request keys unique, so that a retried join is recognized.
    private let nonce = UInt64.random(in: 0 ... .max)

    /// How often a queue with waiting work is looked at when nothing announced a change.
    static let poll: Duration = .milliseconds(50)
    /// How often an idle queue's pump wakes (it asks the store nothing then).
    static let idle: Duration = .seconds(1)
    /// How often the tickets waited on are audited.
    static let audit: Duration = .milliseconds(250)

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
    /// While the store cannot be reached the work keeps waiting: the pump tries again.
    ///
    /// - Throws: `CancellationError` when the task is cancelled while it waits.
    func acquire(_ entry: QueueEntry, since: Int64, within: Bool, claim: Claim) async throws -> QueueGate.Permit {
        let queue = entry.name
        let number = state.withLock { state in
            state.next += 1
            let request = QueueRequest(key: "\(owner.rawValue)/\(nonce)/\(state.next)", entry: entry, since: since, within: within, claim: claim)
            state.queues[queue, default: Queue()].waiters[state.next] = Waiter(request: request)
            state.queues[queue, default: Queue()].joining.append(state.next)
            return state.next
        }
        reportCounts(queue)
        bells[queue]?.ring()
        defer { reportCounts(queue) }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    guard let waiter = state.queues[queue]?.waiters[number], !waiter.granted, !waiter.cancelled, !waiter.lost else { return true }
                    state.queues[queue]?.waiters[number]?.continuation = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let parked = state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard state.queues[queue]?.waiters[number] != nil else { return nil }
                state.queues[queue]?.waiters[number]?.cancelled = true
                defer { state.queues[queue]?.waiters[number]?.continuation = nil }
                return state.queues[queue]?.waiters[number]?.continuation
            }
            parked?.resume()
        }
        let asked = QueueGate.Permit(queue: queue, partition: entry.partition, counted: !within)
        // Admitted is final: the slot is counted here, and only the permit gives it back.
        let outcome = state.withLock { state -> Result<QueueGate.Permit, ContinuumError>? in
            guard let waiter = state.queues[queue]?.waiters.removeValue(forKey: number) else { return nil }
            if let ticket = waiter.ticket { state.queues[queue]?.byTicket[ticket] = nil }
            if waiter.lost {
                return .failure(
                    ContinuumError(
                        .ownershipLost, "Workflow '\(claim.stream)' lost its claim while it waited for a slot of queue '\(queue)': another process runs it now."))
            }
            if waiter.granted {
                var permit = asked
                // An entry admitted within a held slot left the queue as it was admitted.
                permit.ticket = within ? nil : waiter.ticket
                Self.count(permit, in: &state.queues[queue, default: Queue()])
                return .success(permit)
            }
            // Cancelled: withdraw the entry, or keep it from joining (a pass in flight that
            // carries it takes it off again, see `settle`).
            if let ticket = waiter.ticket {
                state.queues[queue]?.leaving.append(ticket)
            } else {
                state.queues[queue]?.joining.removeAll { $0 == number }
            }
            return nil
        }
        guard let outcome else {
            bells[queue]?.ring()
            throw CancellationError()
        }
        return try outcome.get()
    }

    /// Hands the slot back: the queue's pump takes it off at its next pass, which it makes now.
    func release(_ permit: QueueGate.Permit) {
        guard let ticket = permit.ticket else { return }
        state.withLock { state in
            state.queues[permit.queue, default: Queue()].leaving.append(ticket)
            Self.uncount(permit, in: &state.queues[permit.queue, default: Queue()])
        }
        reportCounts(permit.queue)
        bells[permit.queue]?.ring()
    }

    /// Runs every configured queue's pump until cancelled, and rings them when the store
    /// announces that work of this owner could go (`notices`).
    func run(notices: AsyncStream<QueueNotice>) async {
        await withDiscardingTaskGroup { group in
            for queue in limits.keys.sorted() {
                group.addTask { await self.pump(queue) }
            }
            group.addTask {
                for await notice in notices where notice.owner == self.owner { self.bells[notice.queue]?.ring() }
            }
            // Every child ends when the runtime's task is cancelled (an AsyncStream ends its
            // iteration then).
        }
        // The runtime stops: hand back what is held and withdraw what waits, so that no other
        // process waits on entries nobody here will pass for (their claims outlive this run
        // until they lapse).
        for queue in limits.keys.sorted() {
            guard let limits = limits[queue] else { continue }
            let leaving = state.withLock { state -> [UInt64] in
                guard let entries = state.queues[queue] else { return [] }
                state.queues[queue]?.leaving = []
                return entries.leaving + entries.waiters.values.compactMap(\.ticket)
            }
            guard !leaving.isEmpty else { continue }
            do {
                _ = try await store.admit(QueuePass(queue: queue, limits: limits, owner: owner, leaving: leaving))
            } catch {
                logger.debug("Could not hand back the slots of queue '\(queue)' at stop: \(error.message)")
            }
        }
    }

    /// How many hold a slot and how many wait here, per queue with work.
    func load() -> [String: (running: Int, waiting: Int, partitions: [String: Int])] {
        state.withLock { $0.queues.mapValues { ($0.running, $0.waiters.count, $0.partitions) } }
    }

    private func reportCounts(_ queue: String) {
        report(queue, state.withLock { ($0.queues[queue]?.running ?? 0, $0.queues[queue]?.waiters.count ?? 0) })
    }

    // MARK: The pump

    private func pump(_ queue: String) async {
        guard let limits = limits[queue], let bell = bells[queue] else { return }
        var wait = Self.idle
        // When the tickets waited on were last sent: the store then says which are gone (their
        // claim taken) or were admitted by a pass whose answer was lost. Sent with every pass,
        // they would cost each pass the length of the queue.
        var audited = ContinuousClock.now
        var audit = true
        while !Task.isCancelled {
            await bell.wait(upTo: wait)
            if Task.isCancelled { return }
            if ContinuousClock.now - audited >= Self.audit { audit = true }
            // What this pass carries: every join and release since the last (and now and then
            // the tickets waited on).
            let (joining, pass) = state.withLock { [audit] state -> ([UInt64], QueuePass?) in
                guard let entries = state.queues[queue], !entries.waiters.isEmpty || !entries.leaving.isEmpty else { return ([], nil) }
                state.queues[queue]?.joining = []
                state.queues[queue]?.leaving = []
                let waiting = audit ? entries.waiters.values.compactMap { $0.granted ? nil : $0.ticket } : []
                return (
                    entries.joining,
                    QueuePass(
                        queue: queue, limits: limits, owner: owner, joining: entries.joining.compactMap { entries.waiters[$0]?.request },
                        leaving: entries.leaving, waiting: waiting, firstOfOwner: !entries.introduced)
                )
            }
            guard let pass else {
                wait = Self.idle
                continue
            }
            let leaving = pass.leaving
            if audit {
                audit = false
                audited = ContinuousClock.now
            }
            do {
                let admission = try await store.admit(pass)
                let woken = settle(queue, joined: joining, tickets: admission.tickets, admitted: admission.admitted, gone: admission.gone)
                for continuation in woken { continuation.resume() }
                let stillWaiting = state.withLock { !($0.queues[queue]?.waiters.isEmpty ?? true) }
                wait = stillWaiting ? min(admission.retryAfter ?? Self.poll, Self.idle) : Self.idle
            } catch {
                // The joins and releases go with the next pass (the joins of waiters still
                // here, first, in their order). The pass may have committed, its answer lost:
                // the joins' keys find the entries it made, and the next pass audits.
                audit = true
                state.withLock { state in
                    let stillHere = joining.filter { state.queues[queue]?.waiters[$0] != nil }
                    state.queues[queue]?.joining.insert(contentsOf: stillHere, at: 0)
                    state.queues[queue]?.leaving.append(contentsOf: leaving)
                }
                logger.warning(
                    "Could not admit work to queue '\(queue)': \(error.message)", metadata: [WorkflowRuntime.LogKey.errorCode: "\(error.code)"])
                wait = Self.idle
            }
        }
    }

    /// Gives the joined waiters their tickets and marks the admitted ones; returns the
    /// continuations to resume. A waiter cancelled while its entry joined withdraws it.
    private func settle(_ queue: String, joined: [UInt64], tickets: [UInt64], admitted: [UInt64], gone: [UInt64]) -> [CheckedContinuation<Void, Never>] {
        state.withLock { state in
            guard var entries = state.queues.removeValue(forKey: queue) else { return [] }
            defer { state.queues[queue] = entries }
            entries.introduced = true
            for (number, ticket) in zip(joined, tickets) {
                if entries.waiters[number] == nil || entries.waiters[number]?.cancelled == true {
                    // Gone before its entry joined: take the entry off again.
                    entries.leaving.append(ticket)
                    continue
                }
                entries.waiters[number]?.ticket = ticket
                entries.byTicket[ticket] = number
            }
            var woken: [CheckedContinuation<Void, Never>] = []
            func wake(_ number: UInt64) {
                if let continuation = entries.waiters[number]?.continuation {
                    entries.waiters[number]?.continuation = nil
                    woken.append(continuation)
                }
            }
            for ticket in Set(admitted) {
                guard let number = entries.byTicket[ticket], let waiter = entries.waiters[number], !waiter.granted, !waiter.cancelled else {
                    // Nobody here waits for it (it was withdrawn, or its joiner is gone): hand it back.
                    if entries.byTicket[ticket] == nil { entries.leaving.append(ticket) }
                    continue
                }
                entries.waiters[number]?.granted = true
                // An entry admitted within a held slot stays until this runtime has seen it.
                if waiter.request.within { entries.leaving.append(ticket) }
                wake(number)
            }
            for ticket in gone {
                guard let number = entries.byTicket[ticket], entries.waiters[number]?.granted == false else { continue }
                entries.waiters[number]?.lost = true
                wake(number)
            }
            return woken
        }
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
