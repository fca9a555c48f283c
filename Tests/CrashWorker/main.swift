// A child process for the crash tests: runs workflows against an LMDB store while the test
// kills it with SIGKILL, and keeps an fsynced ledger of every step body run, every step
// result seen by the workflow code, and every workflow result.
//
//   CrashWorker --state DIR --ledger FILE --prefix P --workflows N --steps K [--parallel C]
//
// Prints "ready" once the runtime is running; exits 0 once every workflow has completed.
import Continuum
import ContinuumLMDB
import Foundation
import Logging

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

struct CrashWorkflow: Workflow {
    static let name = "crash-test"
    let ledger: LedgerFile

    func run(_ ctx: WorkflowContext, input steps: Int) async throws -> String {
        var values: [String] = []
        for index in 0..<steps {
            let name = "s\(index)"
            let value = try await ctx.step(name) { () -> String in
                try await Task.sleep(for: .milliseconds(Int.random(in: 2...12)))
                let value = "\(ctx.workflowID):\(name):\(getpid()):\(UInt32.random(in: 0 ... .max))"
                ledger.append("run \(ctx.workflowID) \(name) \(value)")
                return value
            }
            ledger.append("done \(ctx.workflowID) \(name) \(value)")
            values.append(value)
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

var options: [String: String] = [:]
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let key = arguments.next() {
    guard key.hasPrefix("--"), let value = arguments.next() else {
        FileHandle.standardError.write(Data("usage: CrashWorker --state DIR --ledger FILE --prefix P --workflows N --steps K\n".utf8))
        exit(64)
    }
    options[String(key.dropFirst(2))] = value
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
let runtime = WorkflowRuntime(
    store: store, workflows: [CrashWorkflow(ledger: ledger), SleepyWorkflow(ledger: ledger)], configuration: .init(logger: logger))

try await runtime.withRunning { runtime in
    FileHandle.standardOutput.write(Data("ready\n".utf8))
    try await withThrowingTaskGroup(of: Void.self) { group in
        var next = 0
        func launch() {
            let id = "\(prefix)\(next)"
            next += 1
            group.addTask {
                let output =
                    if let sleepMilliseconds {
                        try await runtime.start(SleepyWorkflow.self, id: id, input: sleepMilliseconds).result()
                    } else {
                        try await runtime.start(CrashWorkflow.self, id: id, input: steps).result()
                    }
                ledger.append("result \(id) \(output)")
            }
        }
        while next < min(parallel, count) { launch() }
        while try await group.next() != nil {
            if next < count { launch() }
        }
    }
}
store.close()
FileHandle.standardOutput.write(Data("finished\n".utf8))
