import ArgumentParser
@_spi(Testing) import Continuum
import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension Bench {
    /// Starts `workflows` workflows that each run a step and then wait, none parked (a sleep of
    /// an hour, or with `--steps 0` an event that never comes), waits until all are asleep in
    /// memory and the process's memory stops growing, and reports the anonymous resident memory
    /// they added, per workflow (`resident_bytes_per_workflow`). With `--steps 0`, it then wakes
    /// every one with its event and reports the CPU that took per workflow (`wake_cpu_us_per_workflow`);
    /// with `--dormant-after-ms`, the workflows are dormant by then.
    func residentScenario(_ runtime: WorkflowRuntime, prefix: String) async throws -> Report {
        let total = workflows
        let waitsForEvent = steps == 0
        let dormant = dormantAfterMs != nil
        let (elapsed, before, after, trimmed, wake) = try await runtime.withRunning { runtime in
            Self.trimHeap()
            let before = Self.memory("RssAnon")
            let (elapsed, _) = try await fanOut(total: total) { index in
                try await runtime.start(ResidentWorkflow.self, id: prefix + String(index), input: waitsForEvent)
            }
            // Every sleeper's timer is waited for (every workflow, dormant); then the memory settles
            // (the last bodies reach their waits).
            while dormant ? runtime.dormantWorkflows < total : !waitsForEvent && runtime.pendingTimers < total {
                try await Task.sleep(for: .milliseconds(100))
            }
            var last = Self.memory("RssAnon")
            var steady = 0
            while steady < 4 {
                try await Task.sleep(for: .milliseconds(250))
                let now = Self.memory("RssAnon")
                steady = abs(now - last) < 0.5 && runtime.residentWorkflows == total ? steady + 1 : 0
                last = now
            }
            // What the workflows hold, once the allocator has handed back the memory it keeps
            // free (the tasks of workflows now dormant, freed between live allocations).
            Self.trimHeap()
            let trimmed = Self.memory("RssAnon")
            // For a heap profiler killed meanwhile: what it records as not freed is what they hold.
            if let holdSeconds { try await Task.sleep(for: .seconds(holdSeconds)) }
            guard waitsForEvent else { return (elapsed, before, last, trimmed, nil as Double?) }
            let cpuBefore = Self.cpuSeconds()
            _ = try await fanOut(total: total) { index in
                let id = prefix + String(index)
                try await runtime.send("never", to: id, payload: index)
                guard try await runtime.handle(ResidentWorkflow.self, id: id).result() == index else {
                    throw ValidationError("workflow \(id) received another event")
                }
            }
            return (elapsed, before, last, trimmed, (Self.cpuSeconds() - cpuBefore) * 1e6 / Double(total))
        }
        var report = Report(scenario: "resident", workflows: total, concurrency: concurrency, seconds: elapsed.seconds, latencies: [])
        report.residentMegabytes = Self.memory("VmRSS")
        report.peakResidentMegabytes = Self.memory("VmHWM")
        report.residentBytesPerWorkflow = (after - before) * 1e6 / Double(total)
        report.trimmedBytesPerWorkflow = (trimmed - before) * 1e6 / Double(total)
        report.wakeCPUMicroseconds = wake
        return report
    }
}

extension Bench {
    /// Hands the allocator's free memory back to the system (glibc's `malloc_trim`), so that the
    /// resident memory read next is what the process holds.
    static func trimHeap() {
        #if canImport(Glibc)
        // Looked up rather than imported: the Glibc module does not export malloc.h.
        typealias Trim = @convention(c) (Int) -> Int32
        if let trim = dlsym(nil, "malloc_trim") { _ = unsafeBitCast(trim, to: Trim.self)(0) }
        #endif
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
