import ArgumentParser
@_spi(Testing) import Continuum
import ContinuumServer
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension Bench {
    /// The lease of the recovery scenario's PostgreSQL claims: the killed process's claims run
    /// out while its workflows sleep, so the lease is not what the figure measures.
    static let recoveryLease: Duration = .seconds(4)

    /// A child process starts `workflows` workflows (a step, a sleep, two steps), nothing
    /// parked, and is SIGKILLed as soon as every one is asleep in memory: all of them are in
    /// flight. Their first step waits until every workflow is started and returns the time they
    /// all wake, late enough for every one to be asleep before (four times the time the starts took,
    /// and five seconds). Once that time is past, this process opens the store and runs them to
    /// the end; the figures are its time from opening the store until every workflow completed,
    /// its peak memory and CPU.
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
        // "asleep <wake time, ms since 1970>": every workflow is asleep in memory.
        let line = output.fileHandleForReading.availableLine() ?? ""
        kill(child.processIdentifier, SIGKILL)
        let killed = ContinuousClock.now
        child.waitUntilExit()
        let words = line.split(separator: " ")
        guard words.count == 2, words[0] == "asleep", let wake = Int64(words[1]) else {
            throw ValidationError("the loading process ended before every workflow was asleep (it said '\(line)')")
        }
        FileHandle.standardError.write(Data("recovery: \(total) workflows asleep \(format((killed - loading).seconds)) s after spawning the loader; SIGKILLed\n".utf8))
        // Every sleep is over then: what follows is the runtime's work, not the workflows' wait.
        let remaining = Double(wake) / 1000 - Date().timeIntervalSince1970
        if remaining > 0 { try await Task.sleep(for: .seconds(remaining + 0.5)) }

        let cpuBefore = Self.cpuSeconds()
        let opened = ContinuousClock.now
        let (store, runtime) = try await Self.open(location, parkAfter: nil, lease: Self.recoveryLease, recoveryConcurrency: recoveryConcurrency)
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

    /// The recovery scenario's child: starts every workflow, says "asleep <wake time>" once
    /// all are asleep, and runs them until it is killed.
    static func loadForRecovery(_ location: StoreLocation, workflows total: Int, concurrency: Int) async throws {
        let gate = RecoveryGate()
        let (store, runtime) = try await open(location, parkAfter: nil, lease: recoveryLease, recoveryGate: gate)
        _ = store
        let began = Date()
        try await runtime.withRunning { runtime in
            let next = Counter()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<min(concurrency, total) {
                    group.addTask {
                        while true {
                            let index = next.value.add(1, ordering: .relaxed).oldValue
                            guard index < total else { return }
                            try await runtime.start(RecoveryWorkflow.self, id: recoveryID(index), input: index)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let startup = Date().timeIntervalSince(began)
            let wake = Int64((Date().timeIntervalSince1970 + 5 + 4 * startup) * 1000)
            gate.open(wake: wake)
            // Every one asleep in memory (its first step and its sleep's start committed): in flight.
            while runtime.pendingTimers < total {
                guard Date().timeIntervalSince1970 * 1000 < Double(wake) else {
                    throw ValidationError("the workflows did not all fall asleep before their wake time")
                }
                try await Task.sleep(for: .milliseconds(5))
            }
            FileHandle.standardOutput.write(Data("asleep \(wake)\n".utf8))
            // Runs them until SIGKILL.
            try await Task.sleep(for: .seconds(3_600))
        }
    }

    static func recoveryID(_ index: Int) -> String { "recovery-\(index)" }
}

/// A step that returns when to wake (once every workflow of the run is started), a sleep until
/// then, two steps; returns 3.
struct RecoveryWorkflow: Workflow {
    static let name = "continuum.bench.recovery"
    /// Opened by the loading process once every workflow is started; open elsewhere (there the
    /// step is replayed, never run).
    var gate = RecoveryGate(wake: 0)

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        let wake = try await ctx.step("before") { await gate.wake() }
        try await ctx.sleep(until: Date(timeIntervalSince1970: Double(wake) / 1000))
        let b = try await ctx.step("after") { 1 }
        return try await ctx.step("last") { b + 2 }
    }
}

/// The time the recovery scenario's workflows wake, once the loading process knows it.
final class RecoveryGate: Sendable {
    private let state: Mutex<(wake: Int64?, waiting: [CheckedContinuation<Int64, Never>])>

    init(wake: Int64? = nil) { state = Mutex((wake, [])) }

    func open(wake: Int64) {
        let waiting = state.withLock { state in
            state.wake = wake
            defer { state.waiting = [] }
            return state.waiting
        }
        for waiter in waiting { waiter.resume(returning: wake) }
    }

    func wake() async -> Int64 {
        await withCheckedContinuation { continuation in
            let wake = state.withLock { state -> Int64? in
                if state.wake == nil { state.waiting.append(continuation) }
                return state.wake
            }
            if let wake { continuation.resume(returning: wake) }
        }
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
