// The crash worker's PostgreSQL mode: several worker processes share one schema of one
// PostgreSQL server, and the test kills (SIGKILL) or pauses (SIGSTOP) them while they run.
//
//   CrashWorker --postgres URL --schema NAME --ledger FILE --prefix P --workflows N --steps K
//               [--total T] [--lease-ms MS] [--owner NAME] [--step-ms MS] [--long-sleep-ms MS]
//               [--park-ms MS] [--horizon-ms MS] [--pool N] [--retry-ms MS] [--gate FILE --gate-after K]
//               [--events E [--send-share I/M --round-size R]] [--queue 1]
//
// A worker started with `--workflows N` starts workflows P0 … P(N-1) of ``MixedWorkflow``
// (starting one that exists is a no-op, so a replacement starter repeats them all) and prints
// "started"; one started with `--workflows 0` joins: it starts nothing and only runs the
// runtime, whose lease keeper takes over the workflows of processes that died. Either exits 0
// once the store counts no running workflow and `T` finished ones (default N), and its sends
// (below) are acknowledged: the whole run is done, whoever ran it; it waits, up to three
// leases, until its runtime holds no workflow in memory, so that it notices the claims it lost.
//
// Prints "ready <pid> <owner>", "started <N>" (a starter, once its starts are committed),
// "sent" (a sender, once every send and cancel of its share was acknowledged), "done: …" and
// "finished"; on SIGUSR1, what the runtime holds and what the store counts.
//
// The load is the campaign's mixed workflow: steps, a durable sleep after the first, a step
// that fails once and is retried after a durable backoff; every seventh workflow has a step that
// always fails. Steps take about `--step-ms` (default 1–6 ms); every third workflow sleeps
// `--long-sleep-ms` more (long enough, with a short `--park-ms`, to be parked and woken by
// whichever runtime's timer fires first). With `--gate FILE --gate-after K`, steps from the
// K-th on wait until FILE exists. `--retry-ms` sets how often workflows stopped by an
// unreachable store are relaunched (a database restart).
//
// With `--queue 1` the load is the queue crash test's instead (``QueueJobWorkflow``: bodies on
// queue "jobs", 3 at once, each step on queue "api", 2 at once, writing `enter`/`leave` lines),
// and the limits hold across every process through the store's shared queues.
//
// Without `--events` there are no external events or cancellations. With `--events E` (the
// same in every process of a run: it is part of the input) the variants are the campaign's
// (``MixedWorkflow/variant(_:)``): every fifth workflow waits for an event that never comes
// until it is cancelled and then runs a compensating step `undo`, the others that do not fail
// wait for E events `ping`. A process with `--send-share I/M` is their outside sender for
// workflows P<i> (i < R, i % M == I), through its own runtime, so that a send or cancel reaches
// a workflow another process holds through the store's inbox: the first event at once (it
// waits in the workflow's inbox), each next once the workflow waits for it, a cancel once the
// workflow waits for the event that never comes. A replacement sender sends everything again
// with the same dedup keys (a cancel again too). Sends that fail for a passing reason (not
// started yet, the store out of reach, the claim moving, nobody took the relayed message in
// time) are repeated; any other failure ends the process with status 1.
//
// Ledger lines, beyond the workflow's own (`run`, `done`, `fail`, `got`, `return`):
//
//   refused <id> <pid> <events>   the store refused an append of this process: ownershipLost
//   lost <id> <pid>               the runtime noticed it lost the claim ("Lost the claim …")
//   stopped <id> <pid> <code>     the runtime stopped the workflow in memory after a store
//                                 failure ("Workflow stopped: …"), to retry it later
//   ack <id> <value> <seq> <new|duplicate> <pid>
//                                 the runtime acknowledged a send of event `value`
//   cancelled <id> <pid>          the runtime acknowledged a cancel (or said the workflow had ended)
//   posted <id> <event|cancel> <number> <pid>
//                                 a send or cancel went to the store's inbox (another live
//                                 process held the workflow), as message `number`
//   settled <number> <pid> <ok|duplicate|code>
//                                 this process applied inbox message `number` and committed its outcome
//
// and the fencing lines on standard output, with a summary line at the end:
// "fenced: <refused> refused appends, <lost> lost claims".
@_spi(Diagnostics) @_spi(Testing) import Continuum
import ContinuumPostgres
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Counts what fencing did to this process.
final class FenceCounters: Sendable {
    let refused = Atomic<Int>(0)
    let lost = Atomic<Int>(0)
}

/// Writes a line to standard output at once (the test reads it as it comes).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// The PostgreSQL store, watched: every append it refuses with ``ContinuumError/Code/ownershipLost``
/// is written to the ledger before the refusal reaches the runtime. Nothing else changes.
final class FenceWatchingStore: EventStore {
    let inner: PostgresStore
    let ledger: LedgerFile
    let counters: FenceCounters

    init(_ inner: PostgresStore, ledger: LedgerFile, counters: FenceCounters) {
        self.inner = inner
        self.ledger = ledger
        self.counters = counters
    }

    var limits: StoreLimits { inner.limits }

    nonisolated(nonsending) func create(_ request: CreateRequest) async throws(ContinuumError) -> CreateOutcome {
        try await inner.create(request)
    }

    nonisolated(nonsending) func append(_ request: AppendRequest) async throws(ContinuumError) {
        do {
            try await inner.append(request)
        } catch {
            if error.code == .ownershipLost {
                counters.refused.add(1, ordering: .relaxed)
                let line = "refused \(request.id) \(getpid()) \(request.events.count)"
                ledger.append(line)
                say(line)
            }
            throw error
        }
    }

    func claim(_ id: String, owner: OwnerID) async throws(ContinuumError) -> Claim? { try await inner.claim(id, owner: owner) }
    func renew(_ claims: [Claim]) async throws(ContinuumError) -> [Claim] { try await inner.renew(claims) }
    func claimAvailable(owner: OwnerID, overdue: Duration, limit: Int) async throws(ContinuumError) -> [ClaimedWorkflow] {
        try await inner.claimAvailable(owner: owner, overdue: overdue, limit: limit)
    }
    /// A send or cancel relayed to the process running the workflow: written to the ledger
    /// once the store took it (`posted <id> <event|cancel> <number> <pid>`).
    func post(_ kind: InboxMessage.Kind, to id: String) async throws(ContinuumError) -> UInt64 {
        let number = try await inner.post(kind, to: id)
        let what = if case .cancel = kind { "cancel" } else { "event" }
        ledger.append("posted \(id) \(what) \(number) \(getpid())")
        return number
    }
    func pendingInbox(for owner: OwnerID, limit: Int) async throws(ContinuumError) -> [InboxMessage] {
        try await inner.pendingInbox(for: owner, limit: limit)
    }
    /// An inbox message this process applied: written once its outcome is committed
    /// (`settled <number> <pid> <ok|duplicate|code>`).
    func settle(_ number: UInt64, with outcome: InboxOutcome) async throws(ContinuumError) {
        try await inner.settle(number, with: outcome)
        ledger.append("settled \(number) \(getpid()) \(outcome.errorCode ?? (outcome.duplicate ? "duplicate" : "ok"))")
    }
    func outcome(of number: UInt64) async throws(ContinuumError) -> InboxOutcome? { try await inner.outcome(of: number) }
    func inboxNotices() -> AsyncStream<Void> { inner.inboxNotices() }
    var sharedQueues: (any SharedQueueStore)? { inner.sharedQueues }
    func load(id: String) async throws(ContinuumError) -> StoredWorkflow? { try await inner.load(id: id) }
    func loadRecent(id: String) async throws(ContinuumError) -> StoredWorkflow? { try await inner.loadRecent(id: id) }
    func summary(id: String) async throws(ContinuumError) -> WorkflowSummary? { try await inner.summary(id: id) }
    func list(status: WorkflowStatus?, after: StreamID?, limit: Int) async throws(ContinuumError) -> [ListedWorkflow] {
        try await inner.list(status: status, after: after, limit: limit)
    }
    func runnable(after: StreamID?, limit: Int) async throws(ContinuumError) -> [ListedWorkflow] {
        try await inner.runnable(after: after, limit: limit)
    }
    func timers(after: DueTimer?, limit: Int) async throws(ContinuumError) -> [DueTimer] { try await inner.timers(after: after, limit: limit) }
    func counts() async throws(ContinuumError) -> StatusCounts { try await inner.counts() }
    func close() async { await inner.close() }
}

/// Logs warnings and errors to standard error, and turns the runtime's notice "Lost the claim
/// on the workflow" (metadata `continuum.error.code=ownershipLost`) into a ledger line.
struct FenceLogHandler: LogHandler {
    let ledger: LedgerFile
    let counters: FenceCounters
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    var logLevel: Logger.Level = .notice

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        if event.level == .notice, merged[WorkflowRuntime.LogKey.errorCode] == "\(ContinuumError.Code.ownershipLost)" {
            counters.lost.add(1, ordering: .relaxed)
            let line = "lost \(merged[WorkflowRuntime.LogKey.workflowID].map { "\($0)" } ?? "?") \(getpid())"
            ledger.append(line)
            say(line)
            return
        }
        guard event.level >= .warning else { return }
        if event.level >= .error, "\(event.message)".hasPrefix("Workflow stopped"), let id = merged[WorkflowRuntime.LogKey.workflowID] {
            let line = "stopped \(id) \(getpid()) \(merged[WorkflowRuntime.LogKey.errorCode].map { "\($0)" } ?? "?")"
            ledger.append(line)
            say(line)
        }
        let details = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        FileHandle.standardError.write(Data("crash-worker \(getpid()) \(event.level): \(event.message) \(details)\n".utf8))
    }
}

enum PostgresWorker {
    /// Which variant workflow `index` runs. Without events (`mixed` false), no cancellations;
    /// with them, the campaign's rule (``MixedWorkflow/variant(_:)``): every fifth is cancelled
    /// while it waits, every seventh fails.
    static func variant(_ index: Int, mixed: Bool) -> String {
        mixed ? MixedWorkflow.variant(index) : index % 7 == 3 ? "fail" : "plain"
    }

    /// The input of workflow `index`: the same in every process, or a repeated start would conflict.
    static func input(_ index: Int, steps: Int, events: Int, stepMilliseconds: Int?, longSleep: Int) -> MixedWorkflow.Input {
        let sleep = index * 13 % 41 + (index % 3 == 1 ? longSleep : 0)
        return MixedWorkflow.Input(
            steps: steps, events: events, sleepMilliseconds: sleep, variant: variant(index, mixed: events > 0), stepMilliseconds: stepMilliseconds)
    }

    /// Whether a send or cancel failed for a passing reason: the workflow is not started yet, the
    /// store is out of reach (a restart), the claim moved while it was being reached, or nobody
    /// took the relayed message in time (it stays queued; the resend is deduplicated).
    static func transient(_ error: ContinuumError) -> Bool {
        [.unknownWorkflow, .storeUnavailable, .ownershipLost, .notRunning].contains(error.code)
    }

    /// Runs `body` until it does not fail for a passing reason.
    static func retrying<R>(_ body: () async throws -> R) async throws -> R {
        while true {
            do {
                return try await body()
            } catch let error as ContinuumError where transient(error) {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// Whether `event` ends the workflow (or stops it: a suspension, which the test reports).
    static func ends(_ event: HistoryEvent) -> Bool {
        switch event.kind {
        case .workflowCompleted, .workflowFailed, .workflowCancelled, .workflowSuspended: true
        default: false
        }
    }

    /// Polls the stored history of `id` until `ready` holds for it or the workflow ended, every
    /// 250 ms: a whole history load per waiting workflow, so not much more often on a 2-core
    /// machine. With the tests' `--park-ms 250`, some sends then reach a workflow still held by
    /// the process running it (relayed through its inbox), others one that parked (claimed and
    /// continued here).
    static func waitUntil(_ id: String, _ runtime: WorkflowRuntime, _ ready: ([HistoryEvent]) -> Bool) async throws {
        while true {
            let history = try await retrying { try await runtime.history(of: id) }
            if ready(history) { return }
            if history.contains(where: Self.ends) { return }
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    /// The outside sender's part for workflow `id` (the campaign's `runMixed`, from another
    /// process than the one that started it): a cancel once it waits for the event that never
    /// comes, or its events — the first at once (it waits in the workflow's inbox), each next
    /// once the workflow waits for it (held by a live process, or parked and claimed by this
    /// one). Everything is sent again by a replacement sender, with the same dedup keys.
    static func sendOrCancel(_ id: String, index: Int, events: Int, runtime: WorkflowRuntime, ledger: LedgerFile) async throws {
        switch MixedWorkflow.variant(index) {
        case "cancel":
            try await waitUntil(id, runtime) { $0.contains { if case .waitStarted(_, .event("never"), _) = $0.kind { true } else { false } } }
            do {
                try await retrying { try await runtime.cancel(id, by: "crash-worker \(getpid())", reason: "campaign") }
            } catch let error as ContinuumError where error.code == .workflowFinished {}
            ledger.append("cancelled \(id) \(getpid())")
        case "plain":
            for k in 0..<events {
                if k > 0 {
                    try await waitUntil(id, runtime) { history in
                        history.count { if case .waitStarted(_, .event("ping"), _) = $0.kind { true } else { false } } > k
                    }
                }
                let value = "\(id)-e\(k)"
                let receipt = try await retrying { try await runtime.send("ping", to: id, payload: value, dedupKey: value) }
                ledger.append("ack \(id) \(value) \(receipt.sequence) \(receipt.duplicate ? "duplicate" : "new") \(getpid())")
            }
        default:
            break
        }
    }

    /// Sends the events and cancels of the workflows whose index % `parts` == `part`, side by side.
    static func sendPart(_ share: (Int, Int)?, of roundSize: Int, prefix: String, events: Int, runtime: WorkflowRuntime, ledger: LedgerFile) async throws {
        guard let (part, parts) = share, events > 0 else { return }
        try await withThrowingTaskGroup(of: Void.self) { sends in
            for index in 0..<roundSize where index % parts == part {
                sends.addTask { try await Self.sendOrCancel("\(prefix)\(index)", index: index, events: events, runtime: runtime, ledger: ledger) }
            }
            try await sends.waitForAll()
        }
        say("sent")
    }

    static func main(options: [String: String]) async -> Int32 {
        guard let url = options["postgres"], let schema = options["schema"], let ledgerPath = options["ledger"],
            let count = options["workflows"].flatMap(Int.init), let steps = options["steps"].flatMap(Int.init)
        else {
            FileHandle.standardError.write(Data("usage: CrashWorker --postgres URL --schema NAME --ledger FILE --prefix P --workflows N --steps K\n".utf8))
            return 64
        }
        let prefix = options["prefix"] ?? "w"
        let total = options["total"].flatMap(Int.init) ?? count
        let lease = options["lease-ms"].flatMap(Int.init) ?? 1500
        let stepMilliseconds = options["step-ms"].flatMap(Int.init)
        let longSleep = options["long-sleep-ms"].flatMap(Int.init) ?? 0
        let events = options["events"].flatMap(Int.init) ?? 0
        let roundSize = options["round-size"].flatMap(Int.init) ?? count
        // `--send-share I/M`: this process sends for the workflows whose index % M == I.
        let share = options["send-share"].map { $0.split(separator: "/").compactMap { Int($0) } }.flatMap { $0.count == 2 ? ($0[0], $0[1]) : nil }
        let ledger = LedgerFile(path: ledgerPath)
        let counters = FenceCounters()
        let logger = Logger(label: "crash-worker") { _ in FenceLogHandler(ledger: ledger, counters: counters) }

        do {
            var configuration = try PostgresStore.Configuration(url: url)
            configuration.schema = schema
            configuration.leaseDuration = .milliseconds(lease)
            if let pool = options["pool"].flatMap(Int.init) { configuration.poolSize = pool }
            let postgres = try await PostgresStore.connect(configuration: configuration, logger: logger)
            let store = FenceWatchingStore(postgres, ledger: ledger, counters: counters)

            var runtimeConfiguration = WorkflowRuntime.Configuration(logger: logger)
            if let owner = options["owner"] { runtimeConfiguration.owner = OwnerID(owner) }
            if let park = options["park-ms"].flatMap(Int.init) { runtimeConfiguration.parkAfter = .milliseconds(park) }
            if let dormant = options["dormant-ms"].flatMap(Int.init) { runtimeConfiguration.dormantAfter = .milliseconds(dormant) }
            if let horizon = options["horizon-ms"].flatMap(Int.init) { runtimeConfiguration.timerHorizon = .milliseconds(horizon) }
            if let retry = options["retry-ms"].flatMap(Int.init) { runtimeConfiguration.storageRetryInterval = .milliseconds(retry) }
            // `--queue`: the queue load instead (QueueJobWorkflow on "jobs", its steps on "api"),
            // the queues' limits held across every process by the store.
            let queued = options["queue"] != nil
            if queued { runtimeConfiguration.queues = ["jobs": QueueLimits(concurrency: 3), "api": QueueLimits(concurrency: 2)] }
            let runtime = WorkflowRuntime(
                store: store,
                workflows: [
                    MixedWorkflow(
                        ledger: ledger,
                        gate: options["gate"].map { ($0, options["gate-after"].flatMap(Int.init) ?? 0) }),
                    QueueJobWorkflow(ledger: ledger),
                ], configuration: runtimeConfiguration)

            let (dumpRequests, requestDump) = AsyncStream.makeStream(of: Void.self)
            let dumpSignal = DispatchSource.makeSignalSource(signal: SIGUSR1)
            dumpSignal.setEventHandler { requestDump.yield() }
            dumpSignal.resume()

            try await runtime.withRunning { runtime in
                say("ready \(getpid()) \(runtimeConfiguration.owner)")
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await _ in dumpRequests { await Self.dump(runtime, store: store) }
                    }
                    defer { group.cancelAll() }
                    // The sender's part runs beside the starts and to its end, whenever the run ends:
                    // every send is acknowledged (again, for a replacement) before this process exits.
                    async let sending: Void = Self.sendPart(share, of: roundSize, prefix: prefix, events: events, runtime: runtime, ledger: ledger)
                    if count > 0 {
                        try await withThrowingTaskGroup(of: Void.self) { starts in
                            for index in 0..<count {
                                starts.addTask {
                                    if queued {
                                        _ = try await Self.retrying {
                                            try await runtime.start(QueueJobWorkflow.self, id: "\(prefix)\(index)", input: steps, queue: QueueEntry("jobs"))
                                        }
                                        return
                                    }
                                    let workflowInput = Self.input(
                                        index, steps: steps, events: events, stepMilliseconds: stepMilliseconds, longSleep: longSleep)
                                    _ = try await Self.retrying {
                                        try await runtime.start(MixedWorkflow.self, id: "\(prefix)\(index)", input: workflowInput)
                                    }
                                }
                            }
                            try await starts.waitForAll()
                        }
                        say("started \(count)")
                    }
                    try await sending
                    // Done once nothing runs and every workflow of the run has ended, in whichever
                    // process (a store out of reach is asked again).
                    while true {
                        if let counts = try? await store.counts(),
                            counts[.running] == 0 && counts[.completed] + counts[.failed] + counts[.cancelled] + counts[.suspended] >= total
                        {
                            say("done: \(counts[.completed]) completed, \(counts[.failed]) failed, \(counts[.cancelled]) cancelled, \(counts[.suspended]) suspended")
                            break
                        }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    // A workflow this process lost while it was paused (SIGSTOP) and that sleeps
                    // or backs off here has made no append to be refused: the next lease renewal
                    // tells it. It leaves memory then, so the ledger records what this process
                    // noticed before it exits (at most three leases later).
                    let noticeBy = ContinuousClock.now + .milliseconds(3 * lease)
                    while runtime.residentWorkflows > 0 && ContinuousClock.now < noticeBy {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    if runtime.residentWorkflows > 0 { say("still resident after three leases: \(runtime.diagnostics)") }
                }
            }
            say("fenced: \(counters.refused.load(ordering: .relaxed)) refused appends, \(counters.lost.load(ordering: .relaxed)) lost claims")
            await store.close()
            say("finished")
            return 0
        } catch {
            FileHandle.standardError.write(Data("crash-worker \(getpid()) failed: \(error)\n".utf8))
            say("failed: \(error)")
            return 1
        }
    }

    /// What the runtime holds and what the store counts, for a test whose watchdog fired.
    static func dump(_ runtime: WorkflowRuntime, store: FenceWatchingStore) async {
        var lines = ["dump begins (pid \(getpid()))", runtime.diagnostics]
        lines.append("store counts: " + ((try? await store.counts()).map { "\($0)" } ?? "unreadable"))
        lines.append("dump ends")
        say(lines.joined(separator: "\n"))
    }
}
