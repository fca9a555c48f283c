import ArgumentParser
import Continuum
import ContinuumLMDB
import Foundation
import Logging
import Synchronization

/// `continuum bench`: durable throughput and latency of the runtime on this machine.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run N workflows of K trivial durable steps, at most C at a time, and report throughput and latency.",
        discussion: "Every step is committed (fsync) before the next starts. Build with -c release for meaningful figures.")

    @Option(help: "How many workflows to run.")
    var workflows = 20_000

    @Option(help: "How many steps each workflow runs.")
    var steps = 3

    @Option(help: "How many workflows may be in flight at once.")
    var concurrency = 1_000

    @Option(help: "The LMDB directory (default: a new temporary directory, removed afterwards).")
    var path: String?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        guard workflows > 0, steps >= 0, concurrency > 0 else {
            throw ValidationError("--workflows and --concurrency must be positive and --steps not negative.")
        }
    }

    func run() async throws {
        let directory = path ?? FileManager.default.temporaryDirectory.appendingPathComponent("continuum-bench-\(UUID().uuidString)").path
        defer { if path == nil { try? FileManager.default.removeItem(atPath: directory) } }
        var storeConfiguration = LMDBStore.Configuration()
        storeConfiguration.logger = Logger(label: "continuum.lmdb", factory: { _ in SwiftLogNoOpLogHandler() })
        let store = try LMDBStore(path: directory, configuration: storeConfiguration)
        defer { store.close() }
        let runtime = WorkflowRuntime(
            store: store, workflows: [BenchWorkflow()],
            configuration: .init(logger: Logger(label: "continuum", factory: { _ in SwiftLogNoOpLogHandler() })))
        let prefix = "bench-\(UInt32.random(in: 0 ... .max))-"
        let total = workflows
        let stepCount = steps
        let next = Counter()
        let clock = ContinuousClock()

        let (elapsed, latencies) = try await runtime.withRunning { runtime in
            let started = clock.now
            let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
                for _ in 0..<min(concurrency, total) {
                    group.addTask {
                        var mine: [Duration] = []
                        while true {
                            let index = next.value.add(1, ordering: .relaxed).oldValue
                            guard index < total else { break }
                            let begin = clock.now
                            let output = try await runtime.start(BenchWorkflow.self, id: prefix + String(index), input: stepCount).result()
                            guard output == stepCount * (stepCount - 1) / 2 else {
                                throw ValidationError("workflow \(index) returned \(output), expected \(stepCount * (stepCount - 1) / 2)")
                            }
                            mine.append(clock.now - begin)
                        }
                        return mine
                    }
                }
                var all: [Duration] = []
                all.reserveCapacity(total)
                for try await part in group { all += part }
                return all
            }
            return (clock.now - started, latencies)
        }

        let seconds = elapsed.seconds
        let sorted = latencies.map(\.milliseconds).sorted()
        let report = Report(
            workflows: total, steps: stepCount, concurrency: concurrency, seconds: seconds,
            workflowsPerSecond: Double(total) / seconds,
            stepsPerSecond: Double(total * stepCount) / seconds,
            p50: percentile(sorted, 0.50), p99: percentile(sorted, 0.99), max: sorted.last ?? 0)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(
                """
                \(total) workflows × \(stepCount) durable steps, concurrency \(concurrency), in \(format(seconds)) s
                  workflows/s  \(format(report.workflowsPerSecond))
                  steps/s      \(format(report.stepsPerSecond))
                  latency      p50 \(format(report.p50)) ms   p99 \(format(report.p99)) ms   max \(format(report.max)) ms
                """)
        }
    }

    struct Report: Encodable {
        var workflows: Int
        var steps: Int
        var concurrency: Int
        var seconds: Double
        var workflowsPerSecond: Double
        var stepsPerSecond: Double
        var p50: Double
        var p99: Double
        var max: Double

        enum CodingKeys: String, CodingKey {
            case workflows, steps, concurrency, seconds
            case workflowsPerSecond = "workflows_per_second"
            case stepsPerSecond = "steps_per_second"
            case p50 = "p50_ms"
            case p99 = "p99_ms"
            case max = "max_ms"
        }
    }
}

/// A shared counter that hands out workflow indices to the bench's workers.
final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

/// K trivial steps; returns 0 + 1 + … + (K − 1).
struct BenchWorkflow: Workflow {
    static let name = "continuum.bench"

    func run(_ ctx: WorkflowContext, input steps: Int) async throws -> Int {
        var total = 0
        for index in 0..<steps {
            total += try await ctx.step("step-\(index)") { index }
        }
        return total
    }
}

func percentile(_ sorted: [Double], _ fraction: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count) * fraction).rounded(.up)) - 1)]
}

func format(_ value: Double) -> String { String(format: value >= 100 ? "%.0f" : "%.2f", value) }

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    var milliseconds: Double { seconds * 1000 }
}
