import ArgumentParser
@_spi(Testing) import Continuum
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

extension Bench {
    /// How long each recovery workflow sleeps between its first step and its last two.
    static let recoverySleep: Duration = .seconds(5)
    /// The lease of the recovery scenario's PostgreSQL claims: the killed process's claims run
    /// out while its workflows' sleeps do, so the lease is not what the figure measures.
    static let recoveryLease: Duration = .seconds(4)

    /// A child process starts `workflows` workflows (a step, a five-second sleep, two steps),
    /// nothing parked, and is SIGKILLed as soon as every one is asleep in memory: all of them
    /// are in flight. Once their sleeps are over, this process opens the store and runs them to the
    /// end; the figures are its time from opening the store until every workflow completed, its
    /// peak memory and CPU.
    func recoveryScenario(location: StoreLocation) async throws -> Report {
        let total = workflows
        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        var arguments = ["bench", "--scenario", "recovery", "--recovery-load", "--workflows", "\(total)", "--concurrency", "\(concurrency)"]
        var environment = ProcessInfo.processInfo.environment
        switch location {
        case .lmdb(let directory):
            arguments += ["--path", directory]
        case .postgres(_, let url):
            // The URL (it names the schema) goes through the environment, out of the process list.
            environment[StoreOptions<TemporaryDirectory>.environmentVariable] = url
        }
        child.arguments = arguments
        child.environment = environment
        let output = Pipe()
        child.standardOutput = output
        let loading = ContinuousClock.now
        try child.run()
        // "started": every start is committed, and the workflows run.
        let line = output.fileHandleForReading.availableLine()
        kill(child.processIdentifier, SIGKILL)
        let killed = ContinuousClock.now
        child.waitUntilExit()
        guard line == "started" else { throw ValidationError("the loading process ended before it started every workflow (it said '\(line ?? "")')") }
        FileHandle.standardError.write(Data("recovery: \(total) workflows started in \(format((killed - loading).seconds)) s; SIGKILLed\n".utf8))
        // Every sleep is over by now: what follows is the runtime's work, not the workflows' wait.
        try await Task.sleep(until: killed + Self.recoverySleep + .milliseconds(500))

        let cpuBefore = Self.cpuSeconds()
        let opened = ContinuousClock.now
        let (store, runtime) = try await Self.open(location, parkAfter: nil, lease: Self.recoveryLease)
        FileHandle.standardError.write(Data("recovery: store opened in \(format((ContinuousClock.now - opened).seconds)) s\n".utf8))
        let before = try await store.counts()
        let unfinished = total - before[.completed]
        let (ready, done) = try await runtime.withRunning { runtime in
            while !runtime.isReady { try await Task.sleep(for: .milliseconds(5)) }
            let ready = ContinuousClock.now - opened
            while try await store.counts()[.completed] < total {
                try await Task.sleep(for: .milliseconds(20))
            }
            return (ready, ContinuousClock.now - opened)
        }
        let cpu = Self.cpuSeconds() - cpuBefore
        // Every workflow's steps ran to the end, each recorded once.
        let recorded = try await store.load(id: Self.recoveryID(0))
        await store.close()
        guard recorded?.summary.status == .completed else { throw ValidationError("workflow \(Self.recoveryID(0)) did not complete") }
        var report = Report(scenario: "recovery", workflows: total, concurrency: concurrency, seconds: done.seconds, latencies: [])
        report.secondsToComplete = done.seconds
        report.readySeconds = ready.seconds
        report.completed = total
        report.unfinishedAtKill = unfinished
        report.peakResidentMegabytes = Self.memory("VmHWM")
        report.residentMegabytes = Self.memory("VmRSS")
        report.workflowsPerSecond = Double(unfinished) / done.seconds
        // Only the recovery's CPU, per workflow it finished.
        report.recoveryCPUMicroseconds = cpu / Double(max(1, unfinished)) * 1e6
        return report
    }

    /// The recovery scenario's child: starts every workflow, says "started" once all are asleep,
    /// and runs them until it is killed.
    static func loadForRecovery(_ location: StoreLocation, workflows total: Int, concurrency: Int) async throws {
        let (store, runtime) = try await open(location, parkAfter: nil, lease: recoveryLease)
        _ = store
        try await runtime.withRunning { runtime in
            let next = Counter()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<min(concurrency, total) {
                    group.addTask {
                        while true {
                            let index = next.value.add(1, ordering: .relaxed).oldValue
                            guard index < total else { return }
                            try await runtime.start(RecoveryWorkflow.self, id: recoveryID(index), input: Int(recoverySleep.milliseconds))
                        }
                    }
                }
                try await group.waitForAll()
            }
            // Every one asleep in memory (its first step and its sleep's start committed): in flight.
            while runtime.pendingTimers < total { try await Task.sleep(for: .milliseconds(5)) }
            FileHandle.standardOutput.write(Data("started\n".utf8))
            // Runs them until SIGKILL.
            try await Task.sleep(for: .seconds(3_600))
        }
    }

    static func recoveryID(_ index: Int) -> String { "recovery-\(index)" }
}

/// A step, a sleep of `input` milliseconds, two steps; returns 3.
struct RecoveryWorkflow: Workflow {
    static let name = "continuum.bench.recovery"

    func run(_ ctx: WorkflowContext, input milliseconds: Int) async throws -> Int {
        let a = try await ctx.step("before") { 1 }
        try await ctx.sleep(for: .milliseconds(milliseconds))
        let b = try await ctx.step("after") { 1 }
        return try await ctx.step("last") { a + b + 1 }
    }
}

extension FileHandle {
    /// The first line this pipe gives, without its newline; `nil` when it closes first.
    func availableLine() -> String? {
        var bytes: [UInt8] = []
        while true {
            let chunk = readData(ofLength: 1)
            guard let byte = chunk.first else { return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self) }
            if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
    }
}
