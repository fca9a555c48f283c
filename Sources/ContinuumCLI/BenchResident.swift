import ArgumentParser
@_spi(Testing) import Continuum
import Foundation

extension Bench {
    /// Starts `workflows` workflows that each run a step and then wait, none parked (a sleep of
    /// an hour, or with `--steps 0` an event that never comes), waits until all are asleep in
    /// memory and the process's memory stops growing, and reports the anonymous resident memory
    /// they added, per workflow (`resident_bytes_per_workflow`).
    func residentScenario(_ runtime: WorkflowRuntime, prefix: String) async throws -> Report {
        let total = workflows
        let waitsForEvent = steps == 0
        let (elapsed, before, after) = try await runtime.withRunning { runtime in
            let before = Self.memory("RssAnon")
            let (elapsed, _) = try await fanOut(total: total) { index in
                try await runtime.start(ResidentWorkflow.self, id: prefix + String(index), input: waitsForEvent)
            }
            // Every sleeper's timer is waited for; then the memory settles (the last bodies reach their waits).
            while !waitsForEvent && runtime.pendingTimers < total { try await Task.sleep(for: .milliseconds(100)) }
            var last = Self.memory("RssAnon")
            var steady = 0
            while steady < 4 {
                try await Task.sleep(for: .milliseconds(250))
                let now = Self.memory("RssAnon")
                steady = abs(now - last) < 0.5 && runtime.residentWorkflows == total ? steady + 1 : 0
                last = now
            }
            return (elapsed, before, last)
        }
        var report = Report(scenario: "resident", workflows: total, concurrency: concurrency, seconds: elapsed.seconds, latencies: [])
        report.residentMegabytes = Self.memory("VmRSS")
        report.peakResidentMegabytes = Self.memory("VmHWM")
        report.residentBytesPerWorkflow = (after - before) * 1e6 / Double(total)
        return report
    }
}

/// A step, then a wait that does not end while the bench measures: a sleep of an hour, or (input
/// `true`) an event that never comes.
struct ResidentWorkflow: Workflow {
    static let name = "continuum.bench.resident"

    func run(_ ctx: WorkflowContext, input waitsForEvent: Bool) async throws -> Int {
        let value = try await ctx.step("before") { 1 }
        if waitsForEvent {
            return try await ctx.waitForEvent("never", as: Int.self) ?? value
        }
        try await ctx.sleep(for: .seconds(3_600))
        return value
    }
}
