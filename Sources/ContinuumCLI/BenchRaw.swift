@_spi(Testing) import Continuum
import Foundation

extension Bench {
    /// The group-commit limit the runtime is measured against: `concurrency` appenders write,
    /// straight to the store, the events `workflows` workflows of `steps` steps write — a
    /// create, one append per step, each awaited before the next as a step's commit is, and the
    /// completion — with no runtime, no workflow body and no encoding of values.
    func rawScenario(store: any EventStore, prefix: String) async throws -> Report {
        let stepCount = steps
        let total = workflows
        let owner = OwnerID("continuum-bench-raw")
        let result = Array("1".utf8)
        let (elapsed, latencies) = try await fanOut(total: total) { index in
            let id = prefix + "raw-" + String(index)
            let now = SystemClock().now()
            let outcome = try await store.create(
                CreateRequest(
                    id: id, type: "continuum.bench.raw",
                    started: HistoryEvent(sequence: 0, timestamp: now, kind: .workflowStarted(type: "continuum.bench.raw", input: result)),
                    owner: owner))
            guard case .created(let claim) = outcome else { throw ContinuumError(.storageFailure, "Workflow '\(id)' existed already.") }
            for step in 0..<stepCount {
                let sequence = UInt32(step + 1)
                let record = StepRecord(name: "step-\(step)", occurrence: 0, index: UInt32(step), concurrent: false)
                try await store.append(
                    AppendRequest(fence: claim, id: id, events: [HistoryEvent(sequence: sequence, timestamp: now, kind: .stepCompleted(record, result: result))]))
            }
            try await store.append(
                AppendRequest(
                    fence: claim, id: id,
                    events: [HistoryEvent(sequence: UInt32(stepCount + 1), timestamp: now, kind: .workflowCompleted(output: result))],
                    status: .completed, release: true))
        }
        let seconds = elapsed.seconds
        var report = Report(scenario: "raw", workflows: total, concurrency: concurrency, seconds: seconds, latencies: latencies)
        report.steps = stepCount
        report.workflowsPerSecond = Double(total) / seconds
        report.stepsPerSecond = Double(total * stepCount) / seconds
        report.eventsPerSecond = Double(total * (stepCount + 2)) / seconds
        return report
    }
}
