@_spi(Testing) import Continuum
import ArgumentParser
import Foundation
import Logging

/// A workflow with a long history that parks and is woken (the wake scenario): `steps` steps,
/// all in one run, or in runs of ``LongHistoryWorkflow/run`` steps each continued as new (an
/// agent loop that keeps its own state small); then a wait for the event "go".
struct LongHistoryWorkflow: Workflow {
    static let name = "continuum.bench.long"
    /// The steps of one run, for the continued shape.
    static let run = 100

    struct Input: Codable, Sendable {
        var steps: Int
        var continued: Bool
        var total = 0
    }

    func run(_ ctx: WorkflowContext, input: Input) async throws -> Int {
        var total = input.total
        let here = input.continued ? min(Self.run, input.steps) : input.steps
        for index in 0..<here {
            total += try await ctx.step("think") { index }
        }
        if input.steps > here {
            try await ctx.continueAsNew(with: Input(steps: input.steps - here, continued: true, total: total))
        }
        return total + (try await ctx.waitForEvent("go", as: Int.self) ?? 0)
    }

    static func expected(steps: Int, continued: Bool) -> Int {
        guard continued else { return steps * (steps - 1) / 2 + 1 }
        let runs = (steps + run - 1) / run
        return (0..<runs).reduce(0) { sum, index in
            let count = min(run, steps - index * run)
            return sum + count * (count - 1) / 2
        } + 1
    }
}

extension Bench {
    /// Waking a parked workflow with a long history, with and without snapshots, for both
    /// shapes of ``LongHistoryWorkflow``: `workflows` workflows of `steps` steps each park
    /// waiting for an event, on a runtime that writes no snapshot and on one with the default
    /// ``WorkflowRuntime/Configuration/snapshotEvery``; then a fresh runtime wakes each by its
    /// event, one at a time, timed from the send to its result (load, fold, the body's replay,
    /// the end committed). Reading and folding alone is measured apart, without the body.
    func wakeScenario(store: any EventStore, prefix: String) async throws -> Report {
        var shapes: [WakeFigures] = []
        var headline: [Double] = []
        for continued in [false, true] {
            var runs: [WakeRun] = []
            for snapshots in [false, true] {
                runs.append(try await wake(store: store, prefix: "\(prefix)\(continued ? "loop" : "steps")-\(snapshots ? "snap" : "plain")-", continued: continued, snapshots: snapshots))
            }
            let (plain, snapshotted) = (runs[0], runs[1])
            if !continued { headline = snapshotted.latencies }
            shapes.append(
                WakeFigures(
                    shape: continued ? "continued as new every \(LongHistoryWorkflow.run) steps" : "one run",
                    eventsPerHistory: snapshotted.total, eventsFolded: snapshotted.folded, eventsFoldedWithout: plain.folded,
                    cpuMillisecondsPerWake: snapshotted.cpu * 1e3, cpuMillisecondsPerWakeWithout: plain.cpu * 1e3,
                    p50: percentile(snapshotted.latencies, 0.5), p50WithoutSnapshots: percentile(plain.latencies, 0.5),
                    loadMilliseconds: snapshotted.load * 1e3, loadMillisecondsWithout: plain.load * 1e3,
                    loadCPUMilliseconds: snapshotted.loadCPU * 1e3, loadCPUMillisecondsWithout: plain.loadCPU * 1e3))
        }
        var report = Report(scenario: "wake", workflows: workflows, concurrency: concurrency, seconds: 0, latencies: headline)
        report.steps = steps
        report.wake = shapes
        return report
    }

    private struct WakeRun {
        var latencies: [Double]
        var cpu: Double
        var folded: Int
        var total: Int
        var load: Double
        var loadCPU: Double
    }

    private func wake(store: any EventStore, prefix: String, continued: Bool, snapshots: Bool) async throws -> WakeRun {
        var configuration = WorkflowRuntime.Configuration(logger: Logger(label: "continuum", factory: { _ in SwiftLogNoOpLogHandler() }))
        configuration.parkAfter = .milliseconds(100)
        if !snapshots { configuration.snapshotEvery = nil }
        let ids = (0..<workflows).map { "\(prefix)\($0)" }
        let input = LongHistoryWorkflow.Input(steps: steps, continued: continued)
        try await WorkflowRuntime(store: store, workflows: Self.workflows, configuration: configuration).withRunning { runtime in
            _ = try await fanOut(total: workflows) { index in try await runtime.start(LongHistoryWorkflow.self, id: ids[index], input: input) }
            // Every one waits for its event, parked.
            while try await runtime.counts().parked < workflows { try await Task.sleep(for: .milliseconds(50)) }
        }
        // What a snapshot changes: reading the history and folding it, without the body's replay.
        let clock = ContinuousClock()
        var folded = 0
        let loadBegan = clock.now
        let loadCPUBefore = Self.cpuSeconds()
        for id in ids {
            guard let recent = try await store.loadRecent(id: id) else { throw ValidationError("workflow \(id) is gone") }
            let state: WorkflowState?
            if snapshots, let snapshot = recent.snapshot {
                state = try WorkflowState(snapshot: snapshot, then: recent.events)
            } else {
                state = try WorkflowState(replaying: recent.events)
            }
            guard state?.outcome == nil else { throw ValidationError("workflow \(id) does not fold") }
            folded += recent.events.count
        }
        let load = (clock.now - loadBegan).seconds / Double(workflows)
        let loadCPU = (Self.cpuSeconds() - loadCPUBefore) / Double(workflows)
        var total = 0
        for id in ids { total += try await store.load(id: id)?.events.count ?? 0 }
        // A new runtime, as after a restart: nothing of these workflows is in memory.
        var latencies: [Double] = []
        let expected = LongHistoryWorkflow.expected(steps: steps, continued: continued)
        let cpuBefore = Self.cpuSeconds()
        try await WorkflowRuntime(store: store, workflows: Self.workflows, configuration: configuration).withRunning { runtime in
            for id in ids {
                let began = clock.now
                try await runtime.send("go", to: id, payload: 1)
                let output = try await runtime.handle(LongHistoryWorkflow.self, id: id).result()
                guard output == expected else { throw ValidationError("workflow \(id) returned \(output), not \(expected)") }
                latencies.append((clock.now - began).milliseconds)
            }
        }
        let cpu = (Self.cpuSeconds() - cpuBefore) / Double(workflows)
        return WakeRun(latencies: latencies.sorted(), cpu: cpu, folded: folded / workflows, total: total / workflows, load: load, loadCPU: loadCPU)
    }
}

/// What the wake scenario measured for one shape of history, with snapshots and without.
struct WakeFigures: Encodable {
    var shape: String
    var eventsPerHistory: Int
    var eventsFolded: Int
    var eventsFoldedWithout: Int
    var cpuMillisecondsPerWake: Double
    var cpuMillisecondsPerWakeWithout: Double
    var p50: Double
    var p50WithoutSnapshots: Double
    /// Reading the history and folding it, per workflow, without the body's replay: wall and CPU.
    var loadMilliseconds: Double
    var loadMillisecondsWithout: Double
    var loadCPUMilliseconds: Double
    var loadCPUMillisecondsWithout: Double

    enum CodingKeys: String, CodingKey {
        case shape
        case eventsPerHistory = "events_per_history"
        case eventsFolded = "events_folded_per_wake"
        case eventsFoldedWithout = "events_folded_per_wake_without_snapshots"
        case cpuMillisecondsPerWake = "cpu_ms_per_wake"
        case cpuMillisecondsPerWakeWithout = "cpu_ms_per_wake_without_snapshots"
        case p50 = "p50_ms"
        case p50WithoutSnapshots = "p50_ms_without_snapshots"
        case loadMilliseconds = "load_fold_ms"
        case loadMillisecondsWithout = "load_fold_ms_without_snapshots"
        case loadCPUMilliseconds = "load_fold_cpu_ms"
        case loadCPUMillisecondsWithout = "load_fold_cpu_ms_without_snapshots"
    }

    var lines: [String] {
        [
            "  \(shape): \(eventsPerHistory) events; a wake folds the snapshot and \(eventsFolded) events (without snapshots: \(eventsFoldedWithout))",
            "    wake         p50 \(format(p50)) ms with snapshots, \(format(p50WithoutSnapshots)) ms without",
            "    CPU/wake     \(format(cpuMillisecondsPerWake)) ms with snapshots, \(format(cpuMillisecondsPerWakeWithout)) ms without",
            "    load + fold  \(format(loadCPUMilliseconds)) ms CPU with snapshots, \(format(loadCPUMillisecondsWithout)) ms without "
                + "(wall \(format(loadMilliseconds)) / \(format(loadMillisecondsWithout)) ms; no replay of the body)",
        ]
    }
}
