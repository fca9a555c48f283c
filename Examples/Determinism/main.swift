// Determinism: values a workflow takes from the world — the time, a UUID, a random number —
// come from `ctx.now()`, `ctx.uuid()` and `ctx.random()`, which record them; a replay after a
// crash sees the same values, so the code after them takes the same branch. `Date()` is shown
// beside them: it is not recorded, and differs.
//
//   Determinism [--state DIR]          the story: a worker process is SIGKILLed after the values
//                                      are recorded, a second one finishes the workflow; the
//                                      values both runs saw are compared (exit 1 if they differ)
//   Determinism worker --state DIR [--crash]
import Continuum
import ContinuumLMDB
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Writes a line at once (`print` buffers into a pipe, and a SIGKILL would lose it).
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

/// Draws a raffle ticket: a time, an id and a number, recorded; then a step that uses them.
struct Raffle: Workflow {
    static let name = "raffle"
    /// Whether this process dies right after the ticket is committed.
    let crash: Bool

    func run(_ ctx: WorkflowContext, input entrant: String) async throws -> String {
        let drawnAt = try await ctx.now(name: "drawn-at")
        let ticket = try await ctx.uuid(name: "ticket")
        let number = try await ctx.random(name: "number") % 1_000
        let wall = Date()  // not recorded: a replay gets a new one
        say("values: ctx.now=\(drawnAt.timeIntervalSince1970) ctx.uuid=\(ticket) ctx.random=\(number)")
        say("unrecorded: Date()=\(wall.timeIntervalSince1970)")
        // The branch depends on the recorded number: the same on every run.
        let prize = number < 500 ? "mug" : "t-shirt"
        try await ctx.step("announce") { say("step ran: \(entrant) wins a \(prize) with ticket \(ticket)") }
        if crash {
            say("⚡ SIGKILL after the step was committed")
            kill(getpid(), SIGKILL)
        }
        return try await ctx.step("ship") { "\(prize) for \(entrant), ticket \(ticket), number \(number), drawn at \(drawnAt.timeIntervalSince1970)" }
    }
}

/// One worker process: opens the store, starts (or resumes) the raffle, prints its result.
func worker(state: String, crash: Bool) async throws {
    var quiet = Logger(label: "determinism")
    quiet.logLevel = .warning
    var storeConfiguration = LMDBStore.Configuration()
    storeConfiguration.logger = quiet
    let store = try LMDBStore(path: state, configuration: storeConfiguration)
    let runtime = WorkflowRuntime(store: store, workflows: [Raffle(crash: crash)], configuration: .init(logger: quiet))
    let result = try await runtime.withRunning { runtime in
        try await runtime.start(Raffle.self, id: "raffle-ada", input: "ada").result()
    }
    await store.close()
    say("result: \(result)")
}

/// Runs this executable as a worker; returns what it printed and whether SIGKILL ended it.
func launch(state: String, crash: Bool) throws -> (output: [String], killed: Bool) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/proc/self/exe")
    process.arguments = ["worker", "--state", state] + (crash ? ["--crash"] : [])
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    for line in lines { say("   [worker\(crash ? " 1" : " 2")] \(line)") }
    return (lines, process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL)
}

let arguments = Array(CommandLine.arguments.dropFirst())
func option(_ name: String) -> String? { arguments.firstIndex(of: name).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil } }

if arguments.first == "worker" {
    guard let state = option("--state") else {
        say("worker needs --state DIR")
        exit(2)
    }
    try await worker(state: state, crash: arguments.contains("--crash"))
    exit(0)
}

let state = option("--state") ?? NSTemporaryDirectory() + "continuum-determinism-\(UUID().uuidString)"
try? FileManager.default.removeItem(atPath: state)
say("▶ the first process draws the ticket and dies after its step")
let first = try launch(state: state, crash: true)
say("▶ a second process resumes the workflow by replaying its history")
let second = try launch(state: state, crash: false)
try? FileManager.default.removeItem(atPath: state)

func line(_ prefix: String, in output: [String]) -> String? { output.first { $0.hasPrefix(prefix) } }
let before = line("values: ", in: first.output)
let after = line("values: ", in: second.output)
let stepRuns = (first.output + second.output).filter { $0.hasPrefix("step ran: ") }.count
guard first.killed, let before, before == after, stepRuns == 1, line("result: ", in: second.output) != nil,
    line("unrecorded: ", in: first.output) != line("unrecorded: ", in: second.output)
else {
    say("✗ expected the same recorded values in both runs, one run of the step, and a result")
    exit(1)
}
say("✓ both runs saw \(before.dropFirst("values: ".count)); Date() differed; the step ran once")
