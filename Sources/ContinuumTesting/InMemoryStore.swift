public import Continuum
import Synchronization

/// An ``/Continuum/EventStore`` in memory: the same semantics as the LMDB store, nothing on disk.
///
/// For fast unit tests of workflows: every write is "durable" at once, values are kept in the
/// same checked binary form LMDB stores (so a damaged value is reported the same way), claims
/// and fencing work as in a shared store, and with a lease duration (``Configuration/init(leaseDuration:clock:)``) claims
/// expire by the configured clock, as they do in a store shared by several processes.
///
/// ```swift
/// let store = InMemoryStore()
/// try await WorkflowRuntime.withRuntime(store: store, workflows: [Checkout()]) { runtime in
///     let total = try await runtime.start(Checkout.self, id: "order-7", input: order).result()
///     #expect(total == 42)
/// }
/// ```
///
/// It passes ``EventStoreConformance``, as every store must.
public final class InMemoryStore: EventStore {
    /// How the store behaves.
    public struct Configuration: Sendable {
        /// The limits it declares; by default the LMDB store's, so tests see the same refusals.
        public var limits: StoreLimits
        /// The clock leases run on.
        public var clock: any WorkflowClock

        /// - Parameters:
        ///   - leaseDuration: How long a claim lasts unless renewed; `nil` (the default): claims
        ///     last until released or superseded, as in a store one process owns.
        ///   - clock: The clock leases expire by.
        public init(leaseDuration: Duration? = nil, clock: any WorkflowClock = SystemClock()) {
            self.limits = StoreLimits(maxWorkflowIDBytes: 511, maxNameBytes: 256, maxPayloadBytes: 256 << 20, leaseDuration: leaseDuration)
            self.clock = clock
        }
    }

    private struct Record {
        var id: String
        var summary: WorkflowSummary
        /// Each event in its stored form: `BinaryCodec`'s checked envelope.
        var events: [[UInt8]]
        var parked = false
        var claim: FencingToken?
        /// When the claim's lease runs out (nanoseconds since 1970), for stores with leases.
        var leaseExpiry: Int64?
        /// The latest snapshot of the workflow's folded state.
        var snapshot: WorkflowSnapshot?
    }

    private struct State {
        /// By the id's bytes: Swift compares strings by canonical equivalence, a store by bytes.
        var streams: [[UInt8]: UInt64] = [:]
        var records: [UInt64: Record] = [:]
        var nextStream: UInt64 = 1
        var nextEpoch: UInt64 = 0
        /// The due-time index, sorted.
        var timers: [DueTimer] = []
        var counts = StatusCounts()
        var closed = false
        var inbox: [(message: InboxMessage, stream: UInt64, outcome: InboxOutcome?)] = []
        /// Shared queues' entries by ticket, and each rate-limited queue's starts.
        var queueEntries: [UInt64: QueueSlot] = [:]
        var queueStarts: [String: [Int64]] = [:]
        var queueKeys: [String: UInt64] = [:]
        var nextTicket: UInt64 = 0
    }

    public let limits: StoreLimits
    private let clock: any WorkflowClock
    private let state = Mutex(State())

    /// Creates an empty store.
    public init(configuration: Configuration = .init()) {
        limits = configuration.limits
        clock = configuration.clock
    }

    private static let closedError = ContinuumError(.storeClosed, "The in-memory store is closed; nothing was written.")

    // MARK: Writes

    public nonisolated(nonsending) func create(_ request: CreateRequest) async throws(ContinuumError) -> CreateOutcome {
        let now = clock.now()
        return try state.withLock { state throws(ContinuumError) in
            guard !state.closed else { throw Self.closedError }
            if let stream = state.streams[Array(request.id.utf8)], let record = state.records[stream] {
                return .existing(StreamID(rawValue: stream), record.summary)
            }
            let stream = state.nextStream
            state.nextStream += 1
            state.nextEpoch += 1
            let token = FencingToken(owner: request.owner, epoch: state.nextEpoch)
            let summary = WorkflowSummary(
                id: request.id, type: request.type, status: .running, createdAt: request.started.timestamp, updatedAt: request.started.timestamp)
            state.streams[Array(request.id.utf8)] = stream
            for (offset, event) in request.history.enumerated() where Int(event.sequence) != offset + 1 {
                throw ContinuumError(.invalidArgument, "The history of new workflow '\(request.id)' is not numbered from 1.")
            }
            state.records[stream] = Record(
                id: request.id, summary: summary, events: [BinaryCodec.encode(request.started)] + request.history.map(BinaryCodec.encode),
                claim: token, leaseExpiry: limits.leaseDuration.map { now + $0.nanoseconds })
            for case .add(let due) in request.timers {
                Self.insert(DueTimer(due: due, stream: StreamID(rawValue: stream), id: request.id), into: &state.timers)
            }
            state.counts.byStatus[.running, default: 0] += 1
            return .created(Claim(stream: StreamID(rawValue: stream), token: token))
        }
    }

    public nonisolated(nonsending) func append(_ request: AppendRequest) async throws(ContinuumError) {
        try state.withLock { state throws(ContinuumError) in
            guard !state.closed else { throw Self.closedError }
            let stream = request.stream.rawValue
            guard var record = state.records[stream] else {
                throw ContinuumError(.unknownWorkflow, "Workflow '\(request.id)' has no record.", workflowID: request.id)
            }
            // The token alone decides: a lease that ran out lets another owner claim the
            // workflow, and that claim is what ends this one.
            guard record.claim == request.fence.token else {
                throw ContinuumError(
                    .ownershipLost,
                    "Workflow '\(request.id)' is no longer claimed by \(request.fence.token); nothing was appended.", workflowID: request.id)
            }
            if let first = request.events.first, Int(first.sequence) != record.events.count {
                throw ContinuumError(
                    .storageFailure,
                    "Cannot append event \(first.sequence) to workflow '\(request.id)': the stream holds \(record.events.count) events.",
                    workflowID: request.id)
            }
            for (offset, event) in request.events.enumerated() where Int(event.sequence) != record.events.count + offset {
                throw ContinuumError(.storageFailure, "Event \(event.sequence) of workflow '\(request.id)' is out of sequence.", workflowID: request.id)
            }
            record.events += request.events.map(BinaryCodec.encode)
            if let snapshot = request.snapshot {
                guard Int(snapshot.through) == record.events.count else {
                    throw ContinuumError(
                        .invalidArgument,
                        "A snapshot of workflow '\(request.id)' covers \(snapshot.through) events, but the stream holds \(record.events.count).",
                        workflowID: request.id)
                }
                record.snapshot = snapshot
            }
            for change in request.timers {
                switch change {
                case .add(let due): Self.insert(DueTimer(due: due, stream: request.stream, id: request.id), into: &state.timers)
                case .remove(let due): Self.remove(DueTimer(due: due, stream: request.stream, id: request.id), from: &state.timers)
                }
            }
            let wasParked = record.parked
            let oldStatus = record.summary.status
            if let status = request.status, status != record.summary.status {
                record.summary.status = status
                record.summary.updatedAt = request.events.last?.timestamp ?? record.summary.updatedAt
            }
            if request.release {
                record.claim = nil
                record.leaseExpiry = nil
            }
            if request.status != nil || request.release {
                record.parked = record.summary.status == .running && request.release
            }
            state.counts.byStatus[oldStatus, default: 0] -= 1
            state.counts.byStatus[record.summary.status, default: 0] += 1
            state.counts.parked += (record.parked ? 1 : 0) - (wasParked ? 1 : 0)
            state.records[stream] = record
        }
    }

    // MARK: Ownership

    public func claim(_ id: String, owner: OwnerID) async throws(ContinuumError) -> Claim? {
        let now = clock.now()
        return try state.withLock { state throws(ContinuumError) in
            guard !state.closed else { throw Self.closedError }
            guard let stream = state.streams[Array(id.utf8)], let record = state.records[stream] else { return nil }
            // With leases, another owner's live claim stands; without, any claim supersedes.
            if limits.leaseDuration != nil, let holder = record.claim, holder.owner != owner, !Self.expired(record, now: now) {
                return nil
            }
            state.nextEpoch += 1
            return hand(stream, to: FencingToken(owner: owner, epoch: state.nextEpoch), now: now, in: &state)
        }
    }

    /// Gives workflow `stream` to `token` with a new lease, out of the parked set.
    private func hand(_ stream: UInt64, to token: FencingToken, now: Int64, in state: inout State) -> Claim {
        guard var record = state.records[stream] else { preconditionFailure("stream \(stream) has no record") }
        record.claim = token
        record.leaseExpiry = limits.leaseDuration.map { now + $0.nanoseconds }
        if record.parked {
            record.parked = false
            state.counts.parked -= 1
        }
        state.records[stream] = record
        return Claim(stream: StreamID(rawValue: stream), token: token)
    }

    public func renew(_ claims: [Claim]) async throws(ContinuumError) -> [Claim] {
        let now = clock.now()
        return try state.withLock { state throws(ContinuumError) in
            guard !state.closed else { throw Self.closedError }
            var lost: [Claim] = []
            for claim in claims {
                guard var record = state.records[claim.stream.rawValue], record.claim == claim.token else {
                    lost.append(claim)
                    continue
                }
                record.leaseExpiry = limits.leaseDuration.map { now + $0.nanoseconds }
                state.records[claim.stream.rawValue] = record
            }
            return lost
        }
    }

    public func claimAvailable(owner: OwnerID, overdue: Duration, limit: Int) async throws(ContinuumError) -> [ClaimedWorkflow] {
        let now = clock.now()
        let overdue = overdue.nanoseconds
        return try state.withLock { state throws(ContinuumError) in
            guard !state.closed else { throw Self.closedError }
            func available(_ record: Record) -> Bool {
                guard record.summary.status == .running else { return false }
                if record.parked { return record.claim == nil }
                return limits.leaseDuration == nil || record.claim == nil || Self.expired(record, now: now)
            }
            var picked: [UInt64] = []
            for stream in state.records.keys.sorted() where picked.count < limit {
                if let record = state.records[stream], !record.parked, available(record) { picked.append(stream) }
            }
            var seen = Set(picked)
            for timer in state.timers where picked.count < limit && timer.due <= now - overdue {
                let stream = timer.stream.rawValue
                if !seen.contains(stream), let record = state.records[stream], record.parked, available(record) {
                    picked.append(stream)
                    seen.insert(stream)
                }
            }
            return picked.compactMap { stream in
                guard let record = state.records[stream] else { return nil }
                // This owner's own lapsed claim keeps its token: a new epoch would fence off the
                // run its runtime may still be making.
                let token: FencingToken
                if let held = record.claim, held.owner == owner {
                    token = held
                } else {
                    state.nextEpoch += 1
                    token = FencingToken(owner: owner, epoch: state.nextEpoch)
                }
                return ClaimedWorkflow(id: record.id, claim: hand(stream, to: token, now: now, in: &state))
            }
        }
    }

    // MARK: Inbox

    public func post(_ kind: InboxMessage.Kind, to id: String) async throws(ContinuumError) -> UInt64 {
        try state.withLock { state throws(ContinuumError) in
            guard !state.closed else { throw Self.closedError }
            guard let stream = state.streams[Array(id.utf8)] else {
                throw ContinuumError(.unknownWorkflow, "No workflow has id '\(id)'.", workflowID: id)
            }
            let number = UInt64(state.inbox.count + 1)
            state.inbox.append((InboxMessage(number: number, workflowID: id, kind: kind), stream, nil))
            return number
        }
    }

    public func pendingInbox(for owner: OwnerID, limit: Int) async throws(ContinuumError) -> [InboxMessage] {
        let now = clock.now()
        return try state.withLock { state throws(ContinuumError) in
            guard !state.closed else { throw Self.closedError }
            return Array(
                state.inbox.filter { entry in
                    guard entry.outcome == nil, let record = state.records[entry.stream] else { return false }
                    return record.claim == nil || record.claim?.owner == owner || Self.expired(record, now: now)
                }
                .prefix(max(0, limit)).map(\.message))
        }
    }

    public func settle(_ number: UInt64, with outcome: InboxOutcome) async throws(ContinuumError) {
        try state.withLock { state throws(ContinuumError) in
            guard !state.closed else { throw Self.closedError }
            let index = Int(number) - 1
            guard state.inbox.indices.contains(index), state.inbox[index].outcome == nil else { return }
            state.inbox[index].outcome = outcome
        }
    }

    public func outcome(of number: UInt64) async throws(ContinuumError) -> InboxOutcome? {
        try state.withLock { state throws(ContinuumError) in
            guard !state.closed else { throw Self.closedError }
            let index = Int(number) - 1
            guard state.inbox.indices.contains(index) else {
                throw ContinuumError(.invalidArgument, "No inbox message has number \(number).")
            }
            return state.inbox[index].outcome
        }
    }

    private static func expired(_ record: Record, now: Int64) -> Bool {
        guard let expiry = record.leaseExpiry else { return false }
        return expiry <= now
    }

    // MARK: Reads

    public func load(id: String) async throws(ContinuumError) -> StoredWorkflow? {
        try load(id: id, recent: false)
    }

    public func loadRecent(id: String) async throws(ContinuumError) -> StoredWorkflow? {
        try load(id: id, recent: true)
    }

    private func load(id: String, recent: Bool) throws(ContinuumError) -> StoredWorkflow? {
        let record = try state.withLock { state throws(ContinuumError) -> Record? in
            guard !state.closed else { throw Self.closedError }
            return state.streams[Array(id.utf8)].flatMap { state.records[$0] }
        }
        guard let record, let stream = state.withLock({ $0.streams[Array(id.utf8)] }) else { return nil }
        let snapshot = recent ? record.snapshot : nil
        let first = Int(snapshot?.through ?? 0)
        var events: [HistoryEvent] = []
        events.reserveCapacity(record.events.count - first)
        for (sequence, value) in record.events.enumerated().dropFirst(first) {
            do {
                events.append(try BinaryCodec.decodeEvent(value, sequence: UInt32(sequence), location: "workflow '\(id)' event \(sequence) in memory"))
            } catch {
                throw ContinuumError.wrap(error)
            }
        }
        return StoredWorkflow(stream: StreamID(rawValue: stream), summary: record.summary, events: events, snapshot: snapshot)
    }

    public func summary(id: String) async throws(ContinuumError) -> WorkflowSummary? {
        try state.withLock { state throws(ContinuumError) in
            guard !state.closed else { throw Self.closedError }
            return state.streams[Array(id.utf8)].flatMap { state.records[$0]?.summary }
        }
    }

    public func list(status: WorkflowStatus?, after: StreamID?, limit: Int) async throws(ContinuumError) -> [ListedWorkflow] {
        try rows(after: after, limit: limit) { record, _ in status == nil || record.summary.status == status }
    }

    public func runnable(after: StreamID?, limit: Int) async throws(ContinuumError) -> [ListedWorkflow] {
        let now = clock.now()
        return try rows(after: after, limit: limit) { record, _ in
            record.summary.status == .running && !record.parked && (limits.leaseDuration == nil || record.claim == nil || Self.expired(record, now: now))
        }
    }

    private func rows(after: StreamID?, limit: Int, _ include: (Record, UInt64) -> Bool) throws(ContinuumError) -> [ListedWorkflow] {
        try state.withLock { state throws(ContinuumError) in
            guard !state.closed else { throw Self.closedError }
            let start = after?.rawValue ?? 0
            var rows: [ListedWorkflow] = []
            for stream in state.records.keys.sorted() where stream > start {
                guard rows.count < limit else { break }
                if let record = state.records[stream], include(record, stream) {
                    rows.append(ListedWorkflow(stream: StreamID(rawValue: stream), summary: record.summary))
                }
            }
            return rows
        }
    }

    public func timers(after: DueTimer?, limit: Int) async throws(ContinuumError) -> [DueTimer] {
        try state.withLock { state throws(ContinuumError) in
            guard !state.closed else { throw Self.closedError }
            let start = after.map { Self.index(after: $0, in: state.timers) } ?? 0
            return Array(state.timers[start..<min(state.timers.count, start + max(0, limit))])
        }
    }

    public func counts() async throws(ContinuumError) -> StatusCounts {
        try state.withLock { state throws(ContinuumError) in
            guard !state.closed else { throw Self.closedError }
            var counts = state.counts
            counts.byStatus = counts.byStatus.filter { $0.value != 0 }
            return counts
        }
    }

    public func close() async {
        state.withLock { $0.closed = true }
    }

    // MARK: Test hooks

    /// Damages the stored bytes of event `sequence` of workflow `id` (flips one bit of its body),
    /// as a failing disk would; the next load reports ``/Continuum/ContinuumError/Code/corruptedData``.
    public func corrupt(id: String, sequence: UInt32) {
        state.withLock { state in
            guard let stream = state.streams[Array(id.utf8)], var record = state.records[stream], Int(sequence) < record.events.count else { return }
            record.events[Int(sequence)][record.events[Int(sequence)].count - 1] ^= 0x40
            state.records[stream] = record
        }
    }

    // MARK: The sorted timer index

    private static func index(after timer: DueTimer, in timers: [DueTimer]) -> Int {
        var low = 0
        var high = timers.count
        while low < high {
            let middle = (low + high) / 2
            if timers[middle] <= timer { low = middle + 1 } else { high = middle }
        }
        return low
    }

    private static func insert(_ timer: DueTimer, into timers: inout [DueTimer]) {
        let position = index(after: timer, in: timers)
        if position > 0, timers[position - 1] == timer { return }
        timers.insert(timer, at: position)
    }

    private static func remove(_ timer: DueTimer, from timers: inout [DueTimer]) {
        let position = index(after: timer, in: timers)
        if position > 0, timers[position - 1].due == timer.due, timers[position - 1].stream == timer.stream {
            timers.remove(at: position - 1)
        }
    }
}

/// An entry of a shared queue (``InMemoryStore/admit(queue:limits:owner:joining:leaving:)``).
private struct QueueSlot {
    var ticket: UInt64
    var request: QueueRequest
    var admitted = false
}

extension InMemoryStore: SharedQueueStore {
    /// A store whose claims expire (shared, as by several runtimes in one test) shares queue
    /// slots between its runtimes; one without leases leaves the limits to its one runtime.
    public var sharedQueues: (any SharedQueueStore)? { limits.leaseDuration == nil ? nil : self }

    public func admit(_ pass: QueuePass) async throws(ContinuumError) -> QueueAdmission {
        let queue = pass.queue
        let queueLimits = pass.limits
        if let stray = pass.joining.first(where: { $0.entry.name != queue }) {
            throw ContinuumError(.invalidArgument, "An entry for queue '\(stray.entry.name)' cannot join queue '\(queue)'.")
        }
        let now = clock.now()
        return try state.withLock { state throws(ContinuumError) in
            guard !state.closed else { throw Self.closedError }
            if pass.firstOfOwner {
                state.queueEntries = state.queueEntries.filter { $0.value.request.entry.name != queue || $0.value.request.claim.token.owner != pass.owner }
            }
            for ticket in pass.leaving { state.queueEntries[ticket] = nil }
            var tickets: [UInt64] = []
            for request in pass.joining {
                // A retried join finds the entry it made.
                if let ticket = state.queueKeys[request.key], state.queueEntries[ticket] != nil {
                    tickets.append(ticket)
                    continue
                }
                state.nextTicket += 1
                tickets.append(state.nextTicket)
                state.queueEntries[state.nextTicket] = QueueSlot(ticket: state.nextTicket, request: request)
                state.queueKeys[request.key] = state.nextTicket
            }
            // An entry counts while its workflow's claim is current.
            let records = state.records
            func current(_ entry: QueueSlot) -> Record? {
                guard let record = records[entry.request.claim.stream.rawValue], record.claim == entry.request.claim.token else { return nil }
                return record
            }
            state.queueEntries = state.queueEntries.filter { _, entry in entry.request.entry.name != queue || current(entry) != nil }
            state.queueKeys = state.queueKeys.filter { state.queueEntries[$0.value] != nil }
            var starts = state.queueStarts[queue] ?? []
            if let rate = queueLimits.rate { starts.removeAll { $0 <= now - rate.window.nanoseconds } }
            let entries = state.queueEntries.values.filter { $0.request.entry.name == queue }
            var running = entries.count { $0.admitted && !$0.request.within }
            var partitions: [String: Int] = [:]
            for entry in entries where entry.admitted && !entry.request.within {
                if let partition = entry.request.entry.partition { partitions[partition, default: 0] += 1 }
            }
            let waiting = entries.filter { !$0.admitted }.sorted {
                (-$0.request.entry.priority, $0.request.since, $0.ticket) < (-$1.request.entry.priority, $1.request.since, $1.ticket)
            }
            let hasWithin = waiting.contains { $0.request.within }
            var admitted: [UInt64] = []
            var retryAfter: Duration?
            for entry in waiting {
                let request = entry.request
                if !request.within {
                    if let concurrency = queueLimits.concurrency, running >= concurrency {
                        if hasWithin { continue }
                        break
                    }
                    if let cap = queueLimits.perPartition, let partition = request.entry.partition, partitions[partition, default: 0] >= cap { continue }
                }
                if request.claim.token.owner != pass.owner {
                    // A lapsed lease its owner may still renew is passed over; a live one's
                    // owner admits it, on its own pass.
                    if let record = current(entry), Self.expired(record, now: now) { continue }
                    break
                }
                if let rate = queueLimits.rate, starts.count >= rate.count {
                    retryAfter = .nanoseconds(max((starts.min() ?? now) + rate.window.nanoseconds + 1 - now, 1))
                    break
                }
                // An entry admitted within a held slot takes no slot; it stays (not counted)
                // until its owner has seen the admission and takes it off.
                state.queueEntries[entry.ticket]?.admitted = true
                if !request.within {
                    running += 1
                    if let partition = request.entry.partition { partitions[partition, default: 0] += 1 }
                }
                if queueLimits.rate != nil { starts.append(now) }
                admitted.append(entry.ticket)
            }
            state.queueStarts[queue] = starts
            // Entries admitted by an earlier pass whose answer was lost.
            for ticket in pass.waiting + tickets where state.queueEntries[ticket]?.admitted == true && !admitted.contains(ticket) {
                admitted.append(ticket)
            }
            let gone = pass.waiting.filter { state.queueEntries[$0] == nil }
            return QueueAdmission(tickets: tickets, admitted: admitted, gone: gone, retryAfter: retryAfter)
        }
    }

    public func queueLoad() async throws(ContinuumError) -> [String: QueueLoad] {
        let now = clock.now()
        return try state.withLock { state throws(ContinuumError) in
            guard !state.closed else { throw Self.closedError }
            var load: [String: QueueLoad] = [:]
            for entry in state.queueEntries.values where !(entry.admitted && entry.request.within) {
                guard let record = state.records[entry.request.claim.stream.rawValue], record.claim == entry.request.claim.token,
                    entry.admitted || !Self.expired(record, now: now)
                else { continue }
                let name = entry.request.entry.name
                var queue = load[name] ?? QueueLoad(running: 0, waiting: 0, partitions: [:])
                if entry.admitted {
                    queue.running += 1
                    if let partition = entry.request.entry.partition { queue.partitions[partition, default: 0] += 1 }
                } else {
                    queue.waiting += 1
                }
                load[name] = queue
            }
            return load
        }
    }

    /// No notices: runtimes look at their queues on their own schedule.
    public func queueNotices() -> AsyncStream<QueueNotice> {
        AsyncStream { $0.finish() }
    }
}

extension Duration {
    /// The duration in nanoseconds, saturating.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? (seconds < 0 ? .min : .max) : scaled &+ attoseconds / 1_000_000_000
    }
}
