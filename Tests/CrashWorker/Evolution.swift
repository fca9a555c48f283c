// The crash worker's evolution mode: workflows suspended by a code change, and an operator who
// takes the ways out (resume, reset, fork, cancel) while the test kills the process.
//
//   CrashWorker --evolve prepare --state DIR --ledger FILE --prefix P --workflows N --nap-ms MS
//   CrashWorker --evolve ways    --state DIR --ledger FILE --prefix P --workflows N
//
// `prepare` runs version 1 until every workflow sleeps after `b`, stops, then runs version 2
// (`b` changed) with `codeChange: .suspend` until every workflow is suspended naming `b`. The
// test does not kill it.
//
// `ways` runs the build deployed now and the operator. Workflow P<i> belongs to group i % 4:
//
//   0  `evolve-keep`: its change of `b` was rolled back in this build  → resume it
//   1  `evolve-change`: this build keeps the new `b`                    → reset it to `b`
//   2  `evolve-change`                                                  → fork it at `b` to P<i>-fork, then cancel it
//   3  `evolve-change`                                                  → cancel it
//
// The operator asks again after every restart for each request whose answer it has not seen:
// it reads its own ledger at start. Ledger lines (each one fsynced `write`):
//
//   ask <op> <id>               before each call
//   ack <op> <id>               the call returned
//   refused <op> <id> <code>    a request asked again after a kill was refused because the
//                               earlier one took effect: resume of a workflow no longer
//                               suspended, reset to a `b` superseded and not run again yet,
//                               fork to an id that exists, cancel of a finished workflow (the
//                               same refusal to a first request fails the launch)
//   run <id> <step> <version>   a step body ran (c: once its result is about to be returned)
//   result <id> <output>        the workflow's result, as the operator saw it
//   ended <id> <code>           the workflow ended with this error (cancelled)
//
// Prints "ready" once the runtime runs, "prepared" / "finished" at the end, exit status 0.
import Continuum
import ContinuumLMDB
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The workflow both types run: steps `a` and `b`, a durable nap, step `c`. Only `b`'s version
/// differs between builds. `holdC` keeps `c` from completing (version 1 in `prepare` must not
/// finish a workflow even if its nap ends before the runtime stops).
func evolvingBody(_ ctx: WorkflowContext, nap: Int, bVersion: Int, holdC: Bool, ledger: LedgerFile) async throws -> String {
    let id = ctx.workflowID
    let a = try await ctx.step("a", version: 1) { () -> String in
        ledger.append("run \(id) a 1")
        return "a:\(id)"
    }
    let b = try await ctx.step("b", version: bVersion) { () -> String in
        ledger.append("run \(id) b \(bVersion)")
        return "b\(bVersion)"
    }
    try await ctx.sleep(for: .milliseconds(nap), name: "nap")
    let c = try await ctx.step("c", version: 1) { () -> String in
        if holdC { try await Task.sleep(for: .seconds(3_600)) }
        ledger.append("run \(id) c 1")
        return "c"
    }
    return "\(a) \(b) \(c)"
}

/// Group 0's type: this build rolled its change of `b` back.
struct KeepWorkflow: Workflow {
    static let name = "evolve-keep"
    let bVersion: Int
    let holdC: Bool
    let ledger: LedgerFile

    func run(_ ctx: WorkflowContext, input nap: Int) async throws -> String {
        try await evolvingBody(ctx, nap: nap, bVersion: bVersion, holdC: holdC, ledger: ledger)
    }
}

/// The other groups' type: this build keeps its new `b`.
struct ChangeWorkflow: Workflow {
    static let name = "evolve-change"
    let bVersion: Int
    let holdC: Bool
    let ledger: LedgerFile

    func run(_ ctx: WorkflowContext, input nap: Int) async throws -> String {
        try await evolvingBody(ctx, nap: nap, bVersion: bVersion, holdC: holdC, ledger: ledger)
    }
}

enum Evolution {
    static func main(phase: String, options: [String: String]) async -> Int32 {
        guard let state = options["state"], let ledgerPath = options["ledger"], let prefix = options["prefix"],
            let count = options["workflows"].flatMap(Int.init)
        else {
            FileHandle.standardError.write(Data("--evolve needs --state, --ledger, --prefix and --workflows\n".utf8))
            return 64
        }
        let ledger = LedgerFile(path: ledgerPath)
        let ids = (0..<count).map { "\(prefix)\($0)" }
        do {
            switch phase {
            case "prepare":
                try await prepare(state: state, ids: ids, nap: options["nap-ms"].flatMap(Int.init) ?? 200, ledger: ledger)
                say("prepared")
            case "ways":
                try await ways(state: state, ids: ids, ledger: ledger, ledgerPath: ledgerPath)
                say("finished")
            default:
                FileHandle.standardError.write(Data("unknown --evolve phase \(phase)\n".utf8))
                return 64
            }
            return 0
        } catch {
            FileHandle.standardError.write(Data("evolution \(phase) failed: \(error)\n".utf8))
            return 1
        }
    }

    /// Group `index % 4`: 0 resume, 1 reset, 2 fork then cancel, 3 cancel.
    static func group(_ index: Int) -> Int { index % 4 }

    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func logger(_ level: Logger.Level) -> Logger {
        var logger = Logger(label: "crash-worker-evolution")
        logger.logLevel = level
        return logger
    }

    /// Runs `body` with a runtime of `workflows` on the store at `state`, then closes both.
    /// `prepare` logs only critical messages: the suspensions it causes are logged as errors.
    static func withRuntime<R>(
        state: String, logging level: Logger.Level = .warning, _ workflows: [any Workflow], _ body: (WorkflowRuntime) async throws -> R
    ) async throws -> R {
        let logger = logger(level)
        var storeConfiguration = LMDBStore.Configuration()
        storeConfiguration.logger = logger
        return try await LMDBStore.withStore(path: state, configuration: storeConfiguration) { store in
            try await WorkflowRuntime(store: store, workflows: workflows, configuration: .init(logger: logger)).withRunning(body)
        }
    }

    static func prepare(state: String, ids: [String], nap: Int, ledger: LedgerFile) async throws {
        try await withRuntime(state: state, [KeepWorkflow(bVersion: 1, holdC: true, ledger: ledger), ChangeWorkflow(bVersion: 1, holdC: true, ledger: ledger)]) {
            runtime in
            for (index, id) in ids.enumerated() {
                if group(index) == 0 {
                    try await runtime.start(KeepWorkflow.self, id: id, input: nap)
                } else {
                    try await runtime.start(ChangeWorkflow.self, id: id, input: nap)
                }
            }
            for id in ids {
                try await until("\(id) naps") {
                    try await runtime.history(of: id).contains { if case .waitStarted(let step, .timer, _) = $0.kind { step.name == "nap" } else { false } }
                }
            }
        }
        try await withRuntime(state: state, logging: .critical, [KeepWorkflow(bVersion: 2, holdC: true, ledger: ledger), ChangeWorkflow(bVersion: 2, holdC: true, ledger: ledger)]) {
            runtime in
            for id in ids {
                try await until("\(id) is suspended") {
                    guard try await runtime.status(of: id)?.status == .suspended else { return false }
                    let record = try await runtime.suspension(of: id)
                    guard record?.code == "codeChanged", record?.recorded?.name == "b" else {
                        throw WorkerError("\(id) was suspended for another reason: \(String(describing: record))")
                    }
                    return true
                }
            }
        }
    }

    static func ways(state: String, ids: [String], ledger: LedgerFile, ledgerPath: String) async throws {
        let (asked, answered) = try requests(ledgerPath)
        try await withRuntime(state: state, [KeepWorkflow(bVersion: 1, holdC: false, ledger: ledger), ChangeWorkflow(bVersion: 2, holdC: false, ledger: ledger)]) {
            runtime in
            say("ready")
            /// Asks `request` of workflow `id` unless an earlier launch saw its answer. A refusal
            /// with `done` to a request asked before (and not answered: the process died) means
            /// that earlier request took effect; on a first request it is an error.
            func request(_ operation: String, _ id: String, done: Set<String>, _ call: () async throws -> Void) async throws {
                let request = "\(operation) \(id)"
                guard !answered.contains(request) else { return }
                ledger.append("ask \(request)")
                do {
                    try await call()
                    ledger.append("ack \(request)")
                } catch let error as ContinuumError where done.contains(error.code.name) && asked.contains(request) {
                    ledger.append("refused \(request) \(error.code.name)")
                }
            }
            func outcome<W: Workflow>(_ type: W.Type, _ id: String) async throws where W.Output == String {
                do {
                    let output = try await runtime.handle(type, id: id).result()
                    ledger.append("result \(id) \(output.replacingOccurrences(of: " ", with: "_"))")
                } catch let error as ContinuumError where error.code == .cancelled {
                    ledger.append("ended \(id) \(error.code)")
                }
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, id) in ids.enumerated() {
                    group.addTask {
                        switch Self.group(index) {
                        case 0:
                            // invalidArgument, or notSuspended where the runtime has that code.
                            try await request("resume", id, done: ["invalidArgument", "notSuspended"]) {
                                try await runtime.resume(id, by: "operator", reason: "b1 is back")
                            }
                            try await outcome(KeepWorkflow.self, id)
                        case 1:
                            // Asked again once the first reset took effect but before b ran
                            // again, a reset to b is refused: b is not in effect (superseded).
                            try await request("reset", id, done: ["invalidArgument"]) {
                                try await runtime.reset(id, toStep: "b", by: "operator", reason: "take b2")
                            }
                            try await outcome(ChangeWorkflow.self, id)
                        case 2:
                            try await request("fork", id, done: ["workflowIDConflict"]) {
                                try await runtime.fork(id, toStep: "b", as: "\(id)-fork", by: "operator", reason: "try b2 on a copy")
                            }
                            try await request("cancel", id, done: ["workflowFinished"]) {
                                try await runtime.cancel(id, reason: "replaced by its fork")
                            }
                            try await outcome(ChangeWorkflow.self, "\(id)-fork")
                            try await outcome(ChangeWorkflow.self, id)
                        default:
                            try await request("cancel", id, done: ["workflowFinished"]) {
                                try await runtime.cancel(id, reason: "not needed")
                            }
                            try await outcome(ChangeWorkflow.self, id)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    /// The requests earlier launches asked, and those they saw answered (`ack` or `refused`), as "op id".
    static func requests(_ path: String) throws -> (asked: Set<String>, answered: Set<String>) {
        guard FileManager.default.fileExists(atPath: path) else { return ([], []) }
        var asked: Set<String> = []
        var answered: Set<String> = []
        for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.first == "ask" && fields.count == 3 { asked.insert("\(fields[1]) \(fields[2])") }
            if (fields.first == "ack" && fields.count == 3) || (fields.first == "refused" && fields.count == 4) {
                answered.insert("\(fields[1]) \(fields[2])")
            }
        }
        return (asked, answered)
    }

    /// Waits until `condition` holds, for at most 30 seconds.
    static func until(_ what: String, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while try await !condition() {
            guard ContinuousClock.now < deadline else { throw WorkerError("timed out waiting until \(what)") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

struct WorkerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
