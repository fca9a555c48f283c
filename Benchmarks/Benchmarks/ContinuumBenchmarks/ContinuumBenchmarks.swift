import Benchmark
import Continuum
import ContinuumLMDB
import Foundation
import Logging

// Run with:  cd Benchmarks && swift package --disable-sandbox benchmark
//
// Every benchmark is capped at a few seconds (`maxDuration`) so that the whole suite stays
// short on a shared machine. Micro-benchmarks use `scalingFactor` so that the wall-clock
// figures are per operation (marked `*` in the output) rather than per inner loop.

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 3,
        maxDuration: .seconds(2),
        maxIterations: 100_000
    )

    codecBenchmarks()
    foldBenchmark()
    checksumBenchmarks()
    groupCommitBenchmark()
    endToEndBenchmark()
}

// MARK: - Fixtures

/// A `stepCompleted` event like the ones a trivial step writes: a short name and ~40 bytes of JSON.
let smallEvent = HistoryEvent(
    sequence: 7,
    timestamp: 1_764_000_000_000_000_000,
    kind: .stepCompleted(
        StepRecord(name: "charge-card", occurrence: 0, index: 6, concurrent: false),
        result: Array(#"{"chargeID":"ch_3PqR7s","amount":4200}"#.utf8)))

/// `workflowStarted` followed by `count - 1` `stepCompleted` events with distinct names.
func history(events count: Int) -> [HistoryEvent] {
    var events = [HistoryEvent(sequence: 0, timestamp: 1, kind: .workflowStarted(type: "Bench", input: Array("{}".utf8)))]
    for index in 1..<count {
        let step = StepRecord(name: "step-\(index)", occurrence: 0, index: UInt32(index - 1), concurrent: false)
        events.append(HistoryEvent(sequence: UInt32(index), timestamp: Int64(index), kind: .stepCompleted(step, result: Array("42".utf8))))
    }
    return events
}

let quietLogger = Logger(label: "continuum.bench", factory: { _ in SwiftLogNoOpLogHandler() })

func temporaryPath(_ prefix: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
}

/// Holds a benchmark's fixture between its setup, its iterations and its teardown.
final class FixtureBox<Fixture>: @unchecked Sendable {
    var fixture: Fixture?
}

func openQuietStore(at path: String) throws -> LMDBStore {
    var configuration = LMDBStore.Configuration()
    configuration.logger = quietLogger
    return try LMDBStore(path: path, configuration: configuration)
}

// MARK: - 1. Codec

func codecBenchmarks() {
    Benchmark("BinaryCodec.encode stepCompleted", configuration: .init(scalingFactor: .kilo)) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(BinaryCodec.encode(smallEvent))
        }
    }

    let encoded = BinaryCodec.encode(smallEvent)
    Benchmark("BinaryCodec.decodeEvent stepCompleted", configuration: .init(scalingFactor: .kilo)) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try BinaryCodec.decodeEvent(encoded, sequence: 7))
        }
    }
}

// MARK: - 2. Fold

func foldBenchmark() {
    let events = history(events: 1000)
    Benchmark("WorkflowState.apply 1000-event history") { benchmark in
        var state = WorkflowState()
        for event in events { try state.apply(event) }
        blackHole(state)
    }
}

// MARK: - 3. Checksum

func checksumBenchmarks() {
    for size in [100, 4096] {
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        Benchmark(
            "CRC32C.checksum \(size == 4096 ? "4 KiB" : "\(size) B")",
            configuration: .init(scalingFactor: .kilo)
        ) { benchmark in
            bytes.withUnsafeBytes { buffer in
                for _ in benchmark.scaledIterations {
                    blackHole(CRC32C.checksum(buffer))
                }
            }
        }
    }
}

// MARK: - 4. LMDB group commit

/// 1,000 workflows created once; each iteration appends the next event to every one of them.
final class GroupCommitFixture: @unchecked Sendable {
    let path = temporaryPath("continuum-bench-append")
    let store: LMDBStore
    var streams: [(StreamID, String)] = []
    var nextSequence: UInt32 = 1  // only touched between iterations, by the benchmark closure

    init(workflows: Int) async throws {
        store = try openQuietStore(at: path)
        let store = self.store
        streams = try await withThrowingTaskGroup(of: (StreamID, String).self) { group in
            for index in 0..<workflows {
                group.addTask {
                    let id = "append-\(index)"
                    let started = HistoryEvent(sequence: 0, timestamp: 0, kind: .workflowStarted(type: "Bench", input: Array("{}".utf8)))
                    switch try await store.create(CreateRequest(id: id, type: "Bench", started: started)) {
                    case .created(let stream), .existing(let stream, _): return (stream, id)
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
    }

    func close() {
        store.close()
        try? FileManager.default.removeItem(atPath: path)
    }
}

func groupCommitBenchmark() {
    let box = FixtureBox<GroupCommitFixture>()
    // scalingFactor .kilo = the 1,000 appends of one iteration: throughput reads as events/s and
    // the wall clock as time per event; multiply by 1,000 for the time of a whole group.
    Benchmark(
        "LMDB group commit 1000 concurrent appends",
        configuration: .init(
            metrics: [.wallClock, .throughput], timeUnits: .nanoseconds, warmupIterations: 2, scalingFactor: .kilo,
            maxDuration: .seconds(3), maxIterations: 200)
    ) { benchmark in
        guard let fixture = box.fixture else { return benchmark.error("no fixture") }
        let store = fixture.store
        let sequence = fixture.nextSequence
        fixture.nextSequence += 1
        let streams = fixture.streams
        precondition(streams.count == benchmark.scaledIterations.count)
        do {
            try await withThrowingDiscardingTaskGroup { group in
                for (stream, id) in streams {
                    group.addTask {
                        let step = StepRecord(name: "step-\(sequence)", occurrence: 0, index: sequence - 1, concurrent: false)
                        let event = HistoryEvent(
                            sequence: sequence, timestamp: Int64(sequence),
                            kind: .stepCompleted(step, result: Array(#"{"ok":true}"#.utf8)))
                        try await store.append(AppendRequest(stream: stream, id: id, events: [event]))
                    }
                }
            }
        } catch {
            benchmark.error("append failed: \(error)")
        }
    } setup: {
        box.fixture = try await GroupCommitFixture(workflows: 1000)
    } teardown: {
        box.fixture?.close()
        box.fixture = nil
    }
}

// MARK: - 5. End to end

/// Three trivial durable steps.
struct ThreeSteps: Workflow {
    static let name = "bench.three-steps"

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        let a = try await ctx.step("a") { input }
        let b = try await ctx.step("b") { a + 1 }
        return try await ctx.step("c") { b + 1 }
    }
}

final class EndToEndFixture: @unchecked Sendable {
    let path = temporaryPath("continuum-bench-e2e")
    let store: LMDBStore
    var round = 0  // only touched between iterations, by the benchmark closure

    init() throws {
        store = try openQuietStore(at: path)
    }

    func close() {
        store.close()
        try? FileManager.default.removeItem(atPath: path)
    }
}

func endToEndBenchmark() {
    let box = FixtureBox<EndToEndFixture>()
    Benchmark(
        "Runtime 1000 concurrent 3-step workflows",
        configuration: .init(
            metrics: [.wallClock, .throughput, .mallocCountTotal], warmupIterations: 1,
            maxDuration: .seconds(4), maxIterations: 50)
    ) { benchmark in
        guard let fixture = box.fixture else { return benchmark.error("no fixture") }
        fixture.round += 1
        let prefix = "e2e-\(fixture.round)-"
        // A runtime's run() consumes its launch stream, so each iteration gets a fresh runtime on the same store.
        let runtime = WorkflowRuntime(
            store: fixture.store, workflows: [ThreeSteps()], configuration: .init(logger: quietLogger))
        benchmark.startMeasurement()
        do {
            try await runtime.withRunning { runtime in
                try await withThrowingDiscardingTaskGroup { group in
                    for index in 0..<1000 {
                        group.addTask {
                            let output = try await runtime.start(ThreeSteps.self, id: prefix + String(index), input: index).result()
                            precondition(output == index + 2)
                        }
                    }
                }
            }
        } catch {
            benchmark.error("workflow failed: \(error)")
        }
        benchmark.stopMeasurement()
    } setup: {
        box.fixture = try EndToEndFixture()
    } teardown: {
        box.fixture?.close()
        box.fixture = nil
    }
}
