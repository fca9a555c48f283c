// The crash worker's PostgreSQL mode: several worker processes share one schema of one
// PostgreSQL server, and the test kills (SIGKILL) or pauses (SIGSTOP) them while they run.
//
//   CrashWorker --postgres URL --schema NAME --ledger FILE --prefix P --workflows N --steps K
//               [--total T] [--lease-ms MS] [--owner NAME] [--step-ms MS] [--long-sleep-ms MS]
//               [--park-ms MS] [--horizon-ms MS] [--pool N]
//
// A worker started with `--workflows N` starts workflows P0 … P(N-1) of ``MixedWorkflow``
// (starting one that exists is a no-op, so a replacement starter repeats them all) and prints
// "started"; one started with `--workflows 0` joins: it starts nothing and only runs the
// runtime, whose lease keeper takes over the workflows of processes that died. Either exits 0
// once the store counts no running workflow and `T` finished ones (default N): the whole run is
// done, whoever ran it.
//
// Prints "ready <pid> <owner>", "started <N>" (a starter, once its starts are committed),
// "done: …" and "finished"; on SIGUSR1, what the runtime holds and what the store counts.
//
// The load is the campaign's mixed workflow without external events or cancellations (their
// delivery across processes has tests of its own): steps, a durable sleep after the first, a
// step that fails once and is retried after a durable backoff; every seventh workflow has a step
// that always fails. Steps
// take about `--step-ms` (default 1–6 ms); every third workflow sleeps `--long-sleep-ms` more
// (long enough, with a short `--park-ms`, to be parked and woken by whichever runtime's timer
// fires first).
//
// Ledger lines, beyond the workflow's own (`run`, `done`, `fail`, `return`):
//
//   refused <id> <pid> <events>   the store refused an append of this process: ownershipLost
//   lost <id> <pid>               the runtime noticed it lost the claim ("Lost the claim …")
//   stopped <id> <pid> <code>     the runtime stopped the workflow in memory after a store
//                                 failure ("Workflow stopped: …"), to retry it later
//
// and the same lines on standard output, with a summary line at the end:
// "fenced: <refused> refused appends, <lost> lost claims".
@_spi(Diagnostics) import Continuum
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
    func post(_ kind: InboxMessage.Kind, to id: String) async throws(ContinuumError) -> UInt64 { try await inner.post(kind, to: id) }
    func pendingInbox(for owner: OwnerID, limit: Int) async throws(ContinuumError) -> [InboxMessage] {
        try await inner.pendingInbox(for: owner, limit: limit)
    }
    func settle(_ number: UInt64, with outcome: InboxOutcome) async throws(ContinuumError) { try await inner.settle(number, with: outcome) }
    func outcome(of number: UInt64) async throws(ContinuumError) -> InboxOutcome? { try await inner.outcome(of: number) }
    func inboxNotices() -> AsyncStream<Void> { inner.inboxNotices() }
    func load(id: String) async throws(ContinuumError) -> StoredWorkflow? { try await inner.load(id: id) }
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
    /// Which variant workflow `index` runs: no cancellations here (they need cross-process delivery).
    static func variant(_ index: Int) -> String {
        index % 7 == 3 ? "fail" : "plain"
    }

    /// The input of workflow `index`: the same in every process, or a repeated start would conflict.
    static func input(_ index: Int, steps: Int, stepMilliseconds: Int?, longSleep: Int) -> MixedWorkflow.Input {
        let sleep = index * 13 % 41 + (index % 3 == 1 ? longSleep : 0)
        return MixedWorkflow.Input(steps: steps, events: 0, sleepMilliseconds: sleep, variant: variant(index), stepMilliseconds: stepMilliseconds)
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
            if let horizon = options["horizon-ms"].flatMap(Int.init) { runtimeConfiguration.timerHorizon = .milliseconds(horizon) }
            let runtime = WorkflowRuntime(store: store, workflows: [MixedWorkflow(ledger: ledger)], configuration: runtimeConfiguration)

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
                    if count > 0 {
                        try await withThrowingTaskGroup(of: Void.self) { starts in
                            for index in 0..<count {
                                starts.addTask {
                                    let workflowInput = Self.input(index, steps: steps, stepMilliseconds: stepMilliseconds, longSleep: longSleep)
                                    try await runtime.start(MixedWorkflow.self, id: "\(prefix)\(index)", input: workflowInput)
                                }
                            }
                            try await starts.waitForAll()
                        }
                        say("started \(count)")
                    }
                    // Done once nothing runs and every workflow of the run has ended, in whichever process.
                    while true {
                        let counts = try await store.counts()
                        if counts[.running] == 0 && counts[.completed] + counts[.failed] + counts[.cancelled] + counts[.suspended] >= total {
                            say("done: \(counts[.completed]) completed, \(counts[.failed]) failed, \(counts[.suspended]) suspended")
                            break
                        }
                        try await Task.sleep(for: .milliseconds(100))
                    }
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
