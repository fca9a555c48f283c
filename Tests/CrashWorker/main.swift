// A child process for the crash tests: runs workflows against an LMDB store while the test
// kills it with SIGKILL, and keeps an fsynced ledger of every step body run, every step
// result seen by the workflow code, and every workflow result.
//
//   CrashWorker --state DIR --ledger FILE --prefix P --workflows N --steps K [--parallel C]
//               [--sleep-ms MS | --mixed EVENTS]
//   CrashWorker --postgres URL --schema NAME --ledger FILE … (several processes on one
//               PostgreSQL: see Postgres.swift)
//
// Prints "ready" once the runtime is running; exits 0 once every workflow has ended. On
// SIGUSR1 it prints what each unfinished workflow's task is doing and what the runtime holds
// for it (the campaign's watchdog asks before it kills a launch that seems hung).
//
// `--mixed EVENTS` runs ``MixedWorkflow``: steps, a durable sleep, a step that fails once and is
// retried after a durable backoff, then EVENTS external events that this process sends as an
// outside sender would (resending everything on every launch, with dedup keys); every fifth
// workflow is instead cancelled while it waits and runs a compensating step, and every seventh
// has a step that always fails. Each send the runtime acknowledged is written to the ledger
// (`ack`), so the test can check that every acknowledged event was consumed exactly once.
//
// `--evolve prepare|ways` runs workflows suspended by a code change and an operator taking the
// ways out (resume, reset, fork, cancel): see Evolution.swift.
import CLMDB
@_spi(Diagnostics) import Continuum
import ContinuumLMDB
import ContinuumTestSupport
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// An append-only, fsynced ledger file shared by every task of this process.
struct LedgerFile: Sendable {
    let fd: Int32

    init(path: String) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        precondition(fd >= 0, "cannot open ledger \(path)")
    }

    /// One `write` per line (atomic with O_APPEND), then fsync: a line is on disk before the
    /// code after it runs.
    func append(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        fsync(fd)
    }
}

extension LedgerFile {
    /// Runs step `name` of the workflow and writes the oracle's two lines: `run` when its body
    /// makes a value, `done` when the workflow code sees the result. The body first sleeps a
    /// random `pause` (milliseconds); with `inside`, it also writes `enter`/`leave` lines of that
    /// kind with this process's id, to count how many bodies run at once.
    func step(
        _ ctx: WorkflowContext, _ name: String, queue: QueueEntry? = nil, pause: ClosedRange<Int>? = nil, inside: String? = nil
    ) async throws -> String {
        let id = ctx.workflowID
        let value = try await ctx.step(name, queue: queue) { () -> String in
            if let inside { append("enter \(getpid()) \(id) \(inside)") }
            // However the body ends (a throw included), it has left.
            defer { if let inside { append("leave \(getpid()) \(id) \(inside)") } }
            if let pause { try await Task.sleep(for: .milliseconds(Int.random(in: pause))) }
            let value = "\(id):\(name):\(getpid()):\(UInt32.random(in: 0 ... .max))"
            append("run \(id) \(name) \(value)")
            return value
        }
        append("done \(id) \(name) \(value)")
        return value
    }
}

struct CrashWorkflow: Workflow {
    static let name = "crash-test"
    let ledger: LedgerFile

    func run(_ ctx: WorkflowContext, input steps: Int) async throws -> String {
        var values: [String] = []
        for index in 0..<steps {
            values.append(try await ledger.step(ctx, "s\(index)", pause: 2...12))
        }
        return values.joined(separator: "|")
    }
}

/// Records its start time (replayed), sleeps durably, then records when it woke.
struct SleepyWorkflow: Workflow {
    static let name = "crash-test-sleep"
    let ledger: LedgerFile

    func run(_ ctx: WorkflowContext, input milliseconds: Int) async throws -> String {
        let start = try await ctx.now()
        let startNanos = Int64(start.timeIntervalSince1970 * 1e9)
        ledger.append("start \(ctx.workflowID) \(startNanos)")
        try await ctx.sleep(for: .milliseconds(milliseconds))
        let woke = try await ctx.step("after") { () -> Int64 in
            let now = Int64(Date().timeIntervalSince1970 * 1e9)
            ledger.append("run \(ctx.workflowID) after \(now)")
            return now
        }
        ledger.append("done \(ctx.workflowID) after \(woke)")
        return "\(startNanos)-\(woke)"
    }
}

/// The mixed load of the crash campaign (see the header).
struct MixedWorkflow: Workflow {
    static let name = "crash-mixed"
    let ledger: LedgerFile
    /// Steps from `afterStep` on wait until the file at `path` exists (`--gate PATH --gate-after N`):
    /// a test holds every workflow mid-run for as long as it needs, however late it runs.
    var gate: (path: String, afterStep: Int)? = nil

    struct Input: Codable, Sendable {
        var steps: Int
        var events: Int
        var sleepMilliseconds: Int
        /// `cancel`: waits for an event that never comes until it is cancelled; `fail`: a step always throws.
        var variant: String
        /// About how long each step's body takes (half to one and a half times this); `nil`: 1–6 ms.
        var stepMilliseconds: Int? = nil
    }

    struct Flaky: Error {}

    func run(_ ctx: WorkflowContext, input: Input) async throws -> String {
        let id = ctx.workflowID
        let stepDuration = input.stepMilliseconds.map { max(1, $0 / 2)...max(1, $0 * 3 / 2) } ?? 1...6
        func step(_ name: String) async throws -> String {
            try await ledger.step(ctx, name, pause: stepDuration)
        }
        var parts: [String] = []
        for index in 0..<input.steps {
            if let gate, index >= gate.afterStep {
                while !FileManager.default.fileExists(atPath: gate.path) { try await Task.sleep(for: .milliseconds(20)) }
            }
            parts.append(try await step("s\(index)"))
            if index == 0 { try await ctx.sleep(for: .milliseconds(input.sleepMilliseconds)) }
        }
        let flaky = try await ctx.step("flaky", retry: .exponential(maxAttempts: 3, initial: .milliseconds(20), jitter: 0)) { step -> String in
            guard step.attempt > 1 else {
                ledger.append("fail \(id) flaky \(step.attempt)")
                throw Flaky()
            }
            let value = "\(id):flaky:\(getpid()):\(UInt32.random(in: 0 ... .max))"
            ledger.append("run \(id) flaky \(value)")
            return value
        }
        ledger.append("done \(id) flaky \(flaky)")
        parts.append(flaky)
        switch input.variant {
        case "cancel":
            do {
                _ = try await ctx.waitForEvent("never", as: String.self)
            } catch let error as ContinuumError where error.code == .cancelled {
                parts.append(try await step("undo"))
                throw error
            }
        case "fail":
            _ = try await ctx.step("doomed") { () throws -> Int in throw Flaky() }
        default:
            break
        }
        for _ in 0..<input.events {
            guard let event = try await ctx.waitForEvent("ping", as: String.self) else { continue }
            ledger.append("got \(id) \(event)")
            parts.append(event)
        }
        // What the body returns, in every run that gets this far (replays included).
        ledger.append("return \(id) \(parts.joined(separator: "|"))")
        return parts.joined(separator: "|")
    }

    /// Which variant workflow `index` of a round runs.
    static func variant(_ index: Int) -> String {
        index % 5 == 4 ? "cancel" : index % 7 == 3 ? "fail" : "plain"
    }
}

/// `--children K`: a parent that starts K children side by side (each a ``CrashWorkflow`` of
/// `--steps` steps), waits for them durably, and runs one step of its own with their results.
struct FamilyWorkflow: Workflow {
    static let name = "crash-family"
    let ledger: LedgerFile

    struct Input: Codable, Sendable {
        var children: Int
        var steps: Int
    }

    func run(_ ctx: WorkflowContext, input: Input) async throws -> String {
        let outputs = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for index in 0..<input.children {
                group.addTask { (index, try await ctx.child(CrashWorkflow.self, name: "c\(index)", input: input.steps)) }
            }
            var outputs = [String](repeating: "", count: input.children)
            for try await (index, output) in group { outputs[index] = output }
            return outputs
        }
        // The children's outputs, each the '|'-joined values of its steps.
        ledger.append("children \(ctx.workflowID) \(outputs.joined(separator: ","))")
        return try await ledger.step(ctx, "gather")
    }
}

/// `--schedule SECONDS`: a schedule firing every second (catch-up all, overlap allowed) whose
/// workflow stamps its slot in a recorded step; the process runs SECONDS, then exits 0.
struct StampWorkflow: Workflow {
    static let name = "crash-stamp"
    let ledger: LedgerFile

    func run(_ ctx: WorkflowContext, input: Int) async throws -> String {
        try await ledger.step(ctx, "stamp")
    }
}

/// `--queue`: workflows on queue "jobs" (3 at once), each running `--steps` steps on queue "api"
/// (2 at once); every body and step writes when it enters and leaves, with this process's id.
struct QueueJobWorkflow: Workflow {
    static let name = "crash-queue-job"
    let ledger: LedgerFile

    func run(_ ctx: WorkflowContext, input steps: Int) async throws -> String {
        let id = ctx.workflowID
        ledger.append("enter \(getpid()) \(id) body")
        // However the body ends (a lost claim throws out of it), it has left.
        defer { ledger.append("leave \(getpid()) \(id) body") }
        var values: [String] = []
        for index in 0..<steps {
            values.append(try await ledger.step(ctx, "s\(index)", queue: QueueEntry("api"), pause: 2...10, inside: "step"))
        }
        return values.joined(separator: "|")
    }
}

/// `CrashWorker --hold-reader DIR`: opens the LMDB environment in DIR as a plain reader, begins
/// a read transaction, prints "holding" and waits to be killed, leaving a stale reader slot.
func holdReader(at path: String) -> Never {
    var env: OpaquePointer?
    var txn: OpaquePointer?
    guard mdb_env_create(&env) == 0, mdb_env_set_maxdbs(env, 8) == 0,
        mdb_env_open(env, path, UInt32(MDB_NOTLS | MDB_RDONLY), 0o644) == 0,
        mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn) == 0
    else {
        FileHandle.standardError.write(Data("cannot open \(path) as a reader\n".utf8))
        exit(1)
    }
    FileHandle.standardOutput.write(Data("holding\n".utf8))
    while true { pause() }
}

// Ignored from the start (a dump asked for before the runtime runs is dropped, not fatal);
// the dispatch source below answers it once the runtime runs.
signal(SIGUSR1, SIG_IGN)

if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "--hold-reader" {
    holdReader(at: CommandLine.arguments[2])
}

var options: [String: String] = [:]
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let key = arguments.next() {
    guard key.hasPrefix("--"), let value = arguments.next() else {
        FileHandle.standardError.write(Data("usage: CrashWorker --state DIR --ledger FILE --prefix P --workflows N --steps K\n".utf8))
        exit(64)
    }
    options[String(key.dropFirst(2))] = value
}
// `--evolve prepare|ways`: code change and the ways out (see Evolution.swift).
if let phase = options["evolve"] {
    exit(await Evolution.main(phase: phase, options: options))
}
// `--postgres URL`: several processes on one PostgreSQL (see Postgres.swift).
if options["postgres"] != nil {
    exit(await PostgresWorker.main(options: options))
}
guard let state = options["state"], let ledgerPath = options["ledger"], let prefix = options["prefix"],
    let count = options["workflows"].flatMap(Int.init), let steps = options["steps"].flatMap(Int.init)
else {
    FileHandle.standardError.write(Data("missing option\n".utf8))
    exit(64)
}
let parallel = options["parallel"].flatMap(Int.init) ?? 4

let ledger = LedgerFile(path: ledgerPath)
let store = try LMDBStore(path: state)
var logger = Logger(label: "crash-worker")
logger.logLevel = .warning
let sleepMilliseconds = options["sleep-ms"].flatMap(Int.init)
let mixedEvents = options["mixed"].flatMap(Int.init)
let children = options["children"].flatMap(Int.init)
let queued = options["queue"] != nil
let runtime = WorkflowRuntime(
    store: store,
    workflows: [
        CrashWorkflow(ledger: ledger), SleepyWorkflow(ledger: ledger), MixedWorkflow(ledger: ledger), FamilyWorkflow(ledger: ledger),
        StampWorkflow(ledger: ledger), QueueJobWorkflow(ledger: ledger),
    ],
    configuration: {
        var configuration = WorkflowRuntime.Configuration(logger: logger)
        configuration.queues = ["jobs": QueueLimits(concurrency: 3), "api": QueueLimits(concurrency: 2)]
        // `--dormant-ms M`: waiting workflows give up their tasks after M ms and are woken by replay.
        configuration.dormantAfter = options["dormant-ms"].flatMap(Int.init).map { .milliseconds($0) }
        return configuration
    }())

/// What each workflow's task in this process is doing, for the SIGUSR1 dump.
let phases = Mutex<[String: String]>([:])

func phase(_ id: String, _ what: String?) {
    phases.withLock { $0[id] = what }
}

/// Prints the phases, the runtime's state and each unfinished workflow's stored status and
/// last history events.
func dump() async {
    var lines = ["dump begins", runtime.diagnostics]
    for (id, what) in phases.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
        lines.append("\(id) task: \(what)")
        lines.append("  " + (await runtime.diagnostics(of: id)))
        let status = (try? await runtime.status(of: id)).flatMap { $0.map { "\($0.status)" } } ?? "unknown"
        let tail = ((try? await runtime.history(of: id)) ?? []).suffix(4).map { "\($0.sequence): \(String(describing: $0.kind).prefix(100))" }
        lines.append("  stored \(status); last events \(tail)")
    }
    lines.append("dump ends\n")
    FileHandle.standardOutput.write(Data(lines.joined(separator: "\n").utf8))
}

/// Starts mixed workflow `index`, sends it its events (or cancels it) as an outside sender
/// would, and returns how it ended.
func runMixed(_ id: String, index: Int, events: Int) async throws -> String {
    let variant = MixedWorkflow.variant(index)
    // The same input on every launch, or the start would be refused as a conflict.
    let input = MixedWorkflow.Input(steps: steps, events: events, sleepMilliseconds: index * 13 % 41, variant: variant)
    phase(id, "starting")
    let handle = try await runtime.start(MixedWorkflow.self, id: id, input: input)
    if variant == "cancel" {
        phase(id, "waiting for it to wait for 'never'")
        try await eventuallyWaiting(id)
        phase(id, "cancelling")
        do {
            try await runtime.cancel(id, reason: "campaign")
        } catch let error as ContinuumError where error.code == .workflowFinished {}
        ledger.append("cancelled \(id)")
    } else if variant == "plain" {
        for k in 0..<events {
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...3)))
            let value = "\(id)-e\(k)"
            phase(id, "sending \(value)")
            let receipt = try await runtime.send("ping", to: id, payload: value, dedupKey: value)
            ledger.append("ack \(id) \(value) \(receipt.sequence)")
        }
    }
    phase(id, "waiting for the result")
    defer { phase(id, nil) }
    do {
        return try await handle.result()
    } catch let error as ContinuumError {
        return "ended:\(error.code)"
    }
}

/// Waits until workflow `id` waits for the event that never comes, or has ended.
func eventuallyWaiting(_ id: String) async throws {
    while true {
        if try await runtime.status(of: id)?.status != .running { return }
        let waits = try await runtime.history(of: id).contains {
            if case .waitStarted(_, .event("never"), _) = $0.kind { true } else { false }
        }
        if waits { return }
        try await Task.sleep(for: .milliseconds(5))
    }
}

let (dumpRequests, requestDump) = AsyncStream.makeStream(of: Void.self)
let dumpSignal = DispatchSource.makeSignalSource(signal: SIGUSR1)
dumpSignal.setEventHandler { requestDump.yield() }
dumpSignal.resume()

if let seconds = options["schedule"].flatMap(Int.init) {
    try await runtime.withRunning { runtime in
        if try await runtime.schedule(named: "tick") == nil {
            try await runtime.schedule(
                "tick", cron: "* * * * * *", workflow: StampWorkflow.self, input: 0, catchUp: .all(max: 1_000), overlap: .allow)
        }
        FileHandle.standardOutput.write(Data("ready\n".utf8))
        try await Task.sleep(for: .seconds(seconds))
        // Done: no slot after this one, and every slot's workflow ends before the process does.
        try await runtime.unschedule("tick")
        while try await runtime.list(status: .running, limit: 1_000).contains(where: { $0.id.hasPrefix("tick@") }) {
            try await Task.sleep(for: .milliseconds(20))
        }
    }
    await store.close()
    FileHandle.standardOutput.write(Data("finished\n".utf8))
    exit(0)
}

try await runtime.withRunning { runtime in
    FileHandle.standardOutput.write(Data("ready\n".utf8))
    try await withThrowingTaskGroup(of: Void.self) { group in
        // Ends when the group is cancelled below, once every workflow has ended.
        group.addTask {
            for await _ in dumpRequests { await dump() }
        }
        defer { group.cancelAll() }
        var next = 0
        func launch() {
            let id = "\(prefix)\(next)"
            let index = next
            next += 1
            group.addTask {
                let output =
                    if let mixedEvents {
                        try await runMixed(id, index: index, events: mixedEvents)
                    } else if queued {
                        try await runtime.start(QueueJobWorkflow.self, id: id, input: steps, queue: QueueEntry("jobs")).result()
                    } else if let children {
                        try await runtime.start(FamilyWorkflow.self, id: id, input: .init(children: children, steps: steps)).result()
                    } else if let sleepMilliseconds {
                        try await runtime.start(SleepyWorkflow.self, id: id, input: sleepMilliseconds).result()
                    } else {
                        try await runtime.start(CrashWorkflow.self, id: id, input: steps).result()
                    }
                ledger.append("result \(id) \(output)")
            }
        }
        while next < min(parallel, count) { launch() }
        var ended = 0
        while ended < count, try await group.next() != nil {
            ended += 1
            if next < count { launch() }
        }
    }
}
await store.close()
FileHandle.standardOutput.write(Data("finished\n".utf8))
