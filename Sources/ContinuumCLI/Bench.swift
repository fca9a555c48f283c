import ArgumentParser
@_spi(Testing) import Continuum
import ContinuumLMDB
@_spi(Testing) import ContinuumPostgres
import ContinuumServer
import Foundation
import Logging
import Synchronization

/// `continuum bench`: durable throughput and latency of the runtime on this machine.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure durable workflows: steps, timers or events.",
        discussion: """
            --scenario steps   N workflows of K trivial steps, at most C in flight (every step committed before the next).
            --scenario timers  N workflows each sleeping a random 0–2 s; reports fire lateness and early fires.
            --scenario events  N workflows waiting for an event, sent by C concurrent senders; reports delivery latency.
            --scenario restart N workflows sleeping for a day, parked; then a fresh process opens the store and
                               reports the time until it is ready to serve and its resident memory.
            --scenario check   N workflows asleep after three steps; then the deploy gate replays all of them
                               against the same code (read-only) and reports how long it took.
            --scenario raw     The same events as --scenario steps (a create, K appends each awaited, a completion per
                               workflow, C at a time) written straight to the store, with no runtime: the limit
                               the steps scenario is measured against (events_per_second).
                               --beside-raw measures it in the steps scenario's run, on the same store, just before:
                               the report then has raw_events_per_second and fraction_of_raw.
            --scenario recovery N workflows (a step, a 5 s sleep, two steps) started by a child process that is
                               SIGKILLed once all are started, all in flight; once their sleeps are over this
                               process opens the store and reports the time until every one completed and its
                               peak memory (seconds_to_complete, peak_rss_mb, completed).
            --scenario queue   As --scenario steps, each workflow started on a queue that lets --queue-limit bodies
                               run at once: the cost of queueing, against the steps scenario at the same concurrency.
            --scenario wake    N workflows of K steps (try --steps 10000), in one run or continued as new every 100,
                               park waiting for an event, once without snapshots and once with; a fresh runtime
                               wakes each, one at a time: time and CPU from the send to the result, how many events
                               a wake folds, and reading + folding alone.
            --scenario resident N workflows that run a step and sleep for an hour (--steps 0: wait for an event that
                               never comes), none parked; reports the anonymous memory they hold once all are
                               asleep, per workflow (resident_bytes_per_workflow; trimmed_bytes_per_workflow once
                               malloc_trim handed back the allocator's free memory). With --steps 0 it then wakes each
                               with its event (wake_cpu_us_per_workflow). --dormant-after-ms M makes waiting
                               workflows dormant after M ms (the runtime's dormantAfter), in any scenario.
            --scenario codec   The JSON of --payload record, without the runtime: N rounds that each encode an order
                               (keys sorted, as a start input) and a receipt (as a step result) and decode both back,
                               with Continuum's payload coder and with Foundation's JSONEncoder and JSONDecoder,
                               alternated; reports each side's CPU per round (codec_ns_per_round, foundation_ns_per_round).
            Every report has cpu_us_per_workflow: the process's user+system CPU time (getrusage) per workflow,
            which a noisy machine moves far less than wall time; on LMDB, writer_cpu_us_per_workflow is the
            part of it the store's writer thread took.
            On PostgreSQL (--postgres URL, or CONTINUUM_POSTGRES_URL) every scenario runs in a new schema
            bench_<random>, dropped afterwards unless --keep, or in the schema a --postgres URL names
            (?schema=name), kept. The schema CONTINUUM_POSTGRES_URL names is never written to.
            Build with -c release for meaningful figures.
            """)

    enum Scenario: String, ExpressibleByArgument, CaseIterable {
        case steps, timers, events, restart, check, recovery, raw, queue, wake, resident, codec
    }

    @Option(help: "What to measure: steps, timers, events, restart, check, recovery, raw, queue, wake, resident or codec.")
    var scenario = Scenario.steps

    @Option(help: "How many workflows to run.")
    var workflows = 20_000

    @Option(help: "How many steps each workflow runs (steps scenario).")
    var steps = 3

    /// What the steps scenario's workflows pass around.
    enum Payload: String, ExpressibleByArgument, CaseIterable {
        /// An `Int` input, step results and output (JSON's shortest case).
        case int
        /// Structs of a few fields, strings and an array: an order in, a receipt out of each step.
        case record
    }

    @Option(help: "What the steps scenario's workflows pass: int (an Int everywhere) or record (an order in, a receipt from each step).")
    var payload = Payload.int

    @Option(help: "How many workflows (or senders) may be in flight at once.")
    var concurrency = 1_000

    @Option(help: "How many workflow bodies the queue lets run at once (queue scenario).")
    var queueLimit = 100

    @Option(help: "How many recovered workflows start at once (recovery scenario; the runtime's recoveryConcurrency).")
    var recoveryConcurrency = WorkflowRuntime.Configuration().recoveryConcurrency

    @Option(help: "Milliseconds a waiting workflow keeps its task before it becomes dormant (the runtime's dormantAfter); none by default.")
    var dormantAfterMs: Int?

    @Option(help: "How many workflows may hold a task at once (the runtime's maxResidentWorkflows); its default by default.")
    var maxResident: Int?

    @Option(help: .hidden)
    var holdSeconds: Int?

    @Flag(help: "Steps scenario: run the raw scenario first, on the same store, and report the steps' fraction of that limit (fraction_of_raw).")
    var besideRaw = false

    @OptionGroup var storage: StoreOptions<TemporaryDirectory>

    @Flag(help: "Keep the store the bench made (its temporary LMDB directory or PostgreSQL schema), and print where it is.")
    var keep = false

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    /// Set on the child process of the restart scenario.
    @Flag(help: .hidden)
    var measureRestart = false

    /// Set on the child process of the recovery scenario.
    @Flag(help: .hidden)
    var recoveryLoad = false

    func validate() throws {
        guard workflows > 0, steps >= 0, concurrency > 0, maxResident.map({ $0 > 0 }) ?? true else {
            throw ValidationError("--workflows, --concurrency and --max-resident must be positive and --steps not negative.")
        }
        // The resident scenario's workflows wait until it ends: beyond the limit, only dormant
        // ones make room for the rest.
        if scenario == .resident, dormantAfterMs == nil, let maxResident, maxResident < workflows {
            throw ValidationError("--max-resident below --workflows needs --dormant-after-ms in the resident scenario: its workflows never finish to make room.")
        }
        if besideRaw, scenario != .steps {
            throw ValidationError("--beside-raw measures the raw limit beside the steps scenario; it does not apply to --scenario \(scenario.rawValue).")
        }
    }

    func run() async throws {
        if measureRestart {
            try await Self.measureRestart(storage.location())
            return
        }
        if recoveryLoad {
            try await Self.loadForRecovery(storage.location(), workflows: workflows, concurrency: concurrency)
            return
        }
        let target = try self.target()
        if target.made, case .postgres = target.location {
            FileHandle.standardError.write(Data("Measuring in the new schema \(target.location); it is dropped afterwards unless --keep.\n".utf8))
        }
        let result: Result<Report, any Error>
        do {
            result = .success(try await measure(target))
        } catch {
            result = .failure(error)
        }
        if target.made {
            if keep {
                FileHandle.standardError.write(Data("Kept the store: \(target.location)\n".utf8))
            } else {
                await Self.remove(target.location)
            }
        }
        let report = try result.get()
        if json {
            let encoder = JSONEncoder()
            // Unescaped slashes: the PostgreSQL URL in "store" reads as it is written.
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.text)
        }
    }

    /// The store a run measures.
    struct Target {
        /// Where it is; a PostgreSQL URL always names the schema.
        var location: StoreLocation
        /// Whether the run made it (a temporary directory, a new schema), and so removes it.
        var made: Bool
    }

    /// The store the options name; on PostgreSQL a new schema `bench_<random>`, unless a
    /// `--postgres` URL names one. The schema of `CONTINUUM_POSTGRES_URL` is never used: the
    /// variable usually names a deployment's store, which a bench must not fill with its workflows.
    func target() throws -> Target {
        switch try storage.location() {
        case .lmdb(let directory):
            return Target(location: .lmdb(directory), made: storage.path == nil)
        case .postgres(var configuration, let url):
            guard var components = URLComponents(string: url) else { throw ValidationError("'\(configuration.displayURL)' is not a URL.") }
            let queryItems = components.queryItems ?? []
            if storage.postgres != nil, queryItems.contains(where: { $0.name == "schema" }) {
                return Target(location: .postgres(configuration, url: url), made: false)
            }
            configuration.schema = "bench_\(String(UInt64.random(in: 0 ... .max), radix: 16))"
            components.queryItems = queryItems.filter { $0.name != "schema" } + [URLQueryItem(name: "schema", value: configuration.schema)]
            return Target(location: .postgres(configuration, url: components.string ?? url), made: true)
        }
    }

    /// Runs the scenario on the target's store, then closes the store.
    private func measure(_ target: Target) async throws -> Report {
        // The restart scenario parks its sleepers quickly.
        let (store, runtime) = try await Self.open(
            target.location, parkAfter: scenario == .restart ? .seconds(1) : scenario == .resident ? nil : .seconds(10),
            queues: scenario == .queue ? ["bench": QueueLimits(concurrency: queueLimit)] : [:], dormantAfter: dormantAfterMs.map { .milliseconds($0) },
            maxResident: maxResident)
        let prefix = "bench-\(UInt32.random(in: 0 ... .max))-"
        do {
            var report: Report
            // The limit, in the same run and on the same store; its CPU is not the steps'.
            var raw: Report?
            if besideRaw {
                let cpuBefore = Self.cpuSeconds()
                raw = try await rawScenario(store: store, prefix: prefix + "limit-")
                raw?.cpuMicrosecondsPerWorkflow = (Self.cpuSeconds() - cpuBefore) / Double(workflows) * 1e6
            }
            let cpuBefore = Self.cpuSeconds()
            // The writer names itself once its thread starts, which may be after the store opened:
            // until then it has done nothing worth counting.
            let writerBefore = Self.threadCPUSeconds(named: LMDBStore.writerThreadName) ?? 0
            switch scenario {
            case .steps: report = try await stepsScenario(runtime, prefix: prefix)
            case .queue: report = try await stepsScenario(runtime, prefix: prefix, queue: QueueEntry("bench"))
            case .timers: report = try await timersScenario(runtime, prefix: prefix)
            case .events: report = try await eventsScenario(runtime, prefix: prefix)
            case .restart: report = try await restartScenario(runtime, store: store, location: target.location, prefix: prefix)
            case .check: report = try await checkScenario(runtime, store: store, prefix: prefix)
            case .raw: report = try await rawScenario(store: store, prefix: prefix)
            case .wake: report = try await wakeScenario(store: store, prefix: prefix)
            case .resident: report = try await residentScenario(runtime, prefix: prefix)
            case .codec: report = try codecScenario()
            case .recovery:
                // Its processes open the store themselves (LMDB admits one at a time).
                await store.close()
                report = try await recoveryScenario(location: target.location)
            }
            report.cpuMicrosecondsPerWorkflow = (Self.cpuSeconds() - cpuBefore) / Double(workflows) * 1e6
            if let writerAfter = Self.threadCPUSeconds(named: LMDBStore.writerThreadName) {
                report.writerCPUMicroseconds = (writerAfter - writerBefore) / Double(workflows) * 1e6
            }
            if let raw, let rawWorkflows = raw.workflowsPerSecond, let workflowsPerSecond = report.workflowsPerSecond {
                // Both write K + 2 events per workflow: the ratio of workflows is the ratio of events.
                report.rawEventsPerSecond = raw.eventsPerSecond
                report.rawCPUMicroseconds = raw.cpuMicrosecondsPerWorkflow
                report.fractionOfRaw = workflowsPerSecond / rawWorkflows
            }
            if case .postgres(let configuration, _) = target.location { report.store = configuration.displayURL }
            await store.close()
            return report
        } catch {
            await store.close()
            throw error
        }
    }

    /// Removes a store the run made: the temporary directory, or the schema and everything in it.
    private static func remove(_ location: StoreLocation) async {
        switch location {
        case .lmdb(let directory):
            try? FileManager.default.removeItem(atPath: directory)
        case .postgres(let configuration, _):
            do {
                // The run's store is closed (the restart scenario's child had one too): a new one drops it.
                let store = try await PostgresStore.connect(configuration: configuration, logger: commandLogger)
                do {
                    try await store.dropSchema()
                } catch {
                    await store.close()
                    throw error
                }
                await store.close()
            } catch {
                FileHandle.standardError.write(Data("Could not drop the schema of \(location): \(error)\n".utf8))
            }
        }
    }

    /// The workflows the scenarios run (`continuum check` registers them too, so that it can
    /// gate a store the bench wrote).
    static let workflows: [any Workflow] = [
        BenchWorkflow(), RecordBenchWorkflow(), SleepWorkflow(), EventWorkflow(), CheckWorkflow(), RecoveryWorkflow(), LongHistoryWorkflow(), ResidentWorkflow(),
    ]

    /// Opens the store at `location` and a runtime with the bench's workflows, both silent.
    static func open(
        _ location: StoreLocation, parkAfter: Duration? = .seconds(10), lease: Duration? = nil, recoveryGate: RecoveryGate? = nil,
        queues: [String: QueueLimits] = [:], recoveryConcurrency: Int? = nil, dormantAfter: Duration? = nil, maxResident: Int? = nil
    ) async throws -> (any EventStore, WorkflowRuntime) {
        let store: any EventStore
        switch location {
        case .lmdb(let directory):
            var storeConfiguration = LMDBStore.Configuration()
            storeConfiguration.logger = Logger(label: "continuum.lmdb", factory: { _ in SwiftLogNoOpLogHandler() })
            store = try LMDBStore(path: directory, configuration: storeConfiguration)
        case .postgres(var configuration, _):
            if let lease { configuration.leaseDuration = lease }
            // Warnings only (a failed commit, say): they go to standard error.
            store = try await PostgresStore.connect(configuration: configuration, logger: commandLogger)
        }
        var workflows = workflows
        if let recoveryGate { workflows.append(RecoveryWorkflow(gate: recoveryGate)) }
        var configuration = WorkflowRuntime.Configuration(logger: Logger(label: "continuum", factory: { _ in SwiftLogNoOpLogHandler() }), parkAfter: parkAfter)
        configuration.queues = queues
        if let recoveryConcurrency { configuration.recoveryConcurrency = recoveryConcurrency }
        configuration.dormantAfter = dormantAfter
        if let maxResident { configuration.maxResidentWorkflows = maxResident }
        let runtime = WorkflowRuntime(store: store, workflows: workflows, configuration: configuration)
        return (store, runtime)
    }

    /// Runs `work(index)` for every index below `total` on `concurrency` workers; returns the elapsed time and each call's latency.
    func fanOut(total: Int, _ work: @escaping @Sendable (Int) async throws -> Void) async throws -> (Duration, [Double]) {
        let next = Counter()
        let clock = ContinuousClock()
        let started = clock.now
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for _ in 0..<min(concurrency, total) {
                group.addTask {
                    var mine: [Double] = []
                    while true {
                        let index = next.value.add(1, ordering: .relaxed).oldValue
                        guard index < total else { break }
                        let begin = clock.now
                        try await work(index)
                        mine.append((clock.now - begin).milliseconds)
                    }
                    return mine
                }
            }
            return try await group.reduce(into: [Double]()) { $0 += $1 }
        }
        return (clock.now - started, latencies.sorted())
    }

    private func stepsScenario(_ runtime: WorkflowRuntime, prefix: String, queue: QueueEntry? = nil) async throws -> Report {
        let stepCount = steps
        let payload = payload
        let (elapsed, latencies) = try await runtime.withRunning { runtime in
            try await fanOut(total: workflows) { index in
                let id = prefix + String(index)
                switch payload {
                case .int:
                    let output = try await runtime.start(BenchWorkflow.self, id: id, input: stepCount, queue: queue).result()
                    guard output == stepCount * (stepCount - 1) / 2 else {
                        throw ValidationError("workflow \(index) returned \(output), expected \(stepCount * (stepCount - 1) / 2)")
                    }
                case .record:
                    let order = BenchOrder(
                        id: "order-\(index)", customer: "customer-\(index % 97)", amountCents: 1_250 + index % 1_000,
                        items: ["sku-\(index % 13)", "sku-\(index % 29)"])
                    let input = RecordBenchWorkflow.Input(order: order, steps: stepCount)
                    let receipt = try await runtime.start(RecordBenchWorkflow.self, id: id, input: input, queue: queue).result()
                    guard receipt.amountCents == RecordBenchWorkflow.expectedTotal(input) else {
                        throw ValidationError("workflow \(index) returned \(receipt.amountCents), expected \(RecordBenchWorkflow.expectedTotal(input))")
                    }
                }
            }
        }
        let seconds = elapsed.seconds
        var report = Report(scenario: queue == nil ? "steps" : "queue", workflows: workflows, concurrency: concurrency, seconds: seconds, latencies: latencies)
        report.steps = steps
        report.payload = payload.rawValue
        report.workflowsPerSecond = Double(workflows) / seconds
        report.stepsPerSecond = Double(workflows * steps) / seconds
        return report
    }

    private func timersScenario(_ runtime: WorkflowRuntime, prefix: String) async throws -> Report {
        let total = workflows
        let (elapsed, lateness, committed, early) = try await runtime.withRunning { runtime in
            let clock = ContinuousClock()
            let started = clock.now
            // Start every workflow (each sleeps a random 0–2 s), then wait for them all.
            _ = try await fanOut(total: total) { index in
                try await runtime.start(SleepWorkflow.self, id: prefix + String(index), input: Int.random(in: 0...2000))
            }
            _ = try await fanOut(total: total) { index in
                _ = try await runtime.handle(SleepWorkflow.self, id: prefix + String(index)).result()
            }
            let elapsed = clock.now - started
            var lateness: [Double] = []
            var committed: [Double] = []
            lateness.reserveCapacity(total)
            committed.reserveCapacity(total)
            var early = 0
            for index in 0..<total {
                var due: Int64?
                for event in try await runtime.history(of: prefix + String(index)) {
                    switch event.kind {
                    case .waitStarted(_, .timer, let deadline): due = deadline
                    case .waitEnded(_, .fired(let latenessNanoseconds)):
                        // Lateness as history records it: the wheel's firing time minus the deadline.
                        // The event's timestamp is when the workflow took the firing and appended it.
                        lateness.append(Double(latenessNanoseconds) / 1e6)
                        if let due {
                            committed.append(Double(event.timestamp - due) / 1e6)
                            if event.timestamp < due { early += 1 }
                        }
                    default: continue
                    }
                }
            }
            return (elapsed, lateness.sorted(), committed.sorted(), early)
        }
        var report = Report(scenario: "timers", workflows: total, concurrency: concurrency, seconds: elapsed.seconds, latencies: lateness)
        report.appendedP50 = percentile(committed, 0.50)
        report.appendedP99 = percentile(committed, 0.99)
        report.timersPerSecond = Double(lateness.count) / elapsed.seconds
        report.early = early
        report.fired = lateness.count
        return report
    }

    private func eventsScenario(_ runtime: WorkflowRuntime, prefix: String) async throws -> Report {
        let total = workflows
        let (elapsed, latencies) = try await runtime.withRunning { runtime in
            _ = try await fanOut(total: total) { index in
                try await runtime.start(EventWorkflow.self, id: prefix + String(index), input: 0)
            }
            // Each sender sends one event and waits until its workflow has it and has finished.
            return try await fanOut(total: total) { index in
                let id = prefix + String(index)
                try await runtime.send("go", to: id, payload: index, dedupKey: "bench-\(index)")
                guard try await runtime.handle(EventWorkflow.self, id: id).result() == index else {
                    throw ValidationError("workflow \(id) received another event")
                }
            }
        }
        var report = Report(scenario: "events", workflows: total, concurrency: concurrency, seconds: elapsed.seconds, latencies: latencies)
        report.eventsPerSecond = Double(total) / elapsed.seconds
        return report
    }

    struct Report: Encodable {
        var scenario: String
        /// The PostgreSQL database measured (without its password); `nil` for LMDB.
        var store: String?
        var workflows: Int
        var concurrency: Int
        var seconds: Double
        var steps: Int?
        /// Steps: what the workflows passed (`int` or `record`).
        var payload: String?
        var workflowsPerSecond: Double?
        var stepsPerSecond: Double?
        var timersPerSecond: Double?
        var eventsPerSecond: Double?
        var fired: Int?
        /// Recovery: from opening the store to every workflow completed; how many were unfinished
        /// when the loading process was killed; the recovery's CPU per workflow it finished.
        var secondsToComplete: Double?
        var completed: Int?
        var unfinishedAtKill: Int?
        var recoveryCPUMicroseconds: Double?
        /// Restart: from spawning the process to ready, and the new process's memory.
        var restartSeconds: Double?
        var readySeconds: Double?
        var residentMegabytes: Double?
        var peakResidentMegabytes: Double?
        /// Resident: the anonymous memory each waiting workflow adds, in bytes.
        var residentBytesPerWorkflow: Double?
        /// Resident: the same once the allocator handed back its free memory (`malloc_trim`).
        var trimmedBytesPerWorkflow: Double?
        /// Resident: the CPU per workflow of waking every waiting workflow with an event (`--steps 0`).
        var wakeCPUMicroseconds: Double?
        var early: Int?
        /// The process's CPU time (user + system) for the whole scenario, per workflow, in µs.
        var cpuMicrosecondsPerWorkflow: Double?
        /// The part of it the LMDB store's writer thread took (`nil` on PostgreSQL).
        var writerCPUMicroseconds: Double?
        /// Check: how long the deploy gate took, and per workflow.
        var checkSeconds: Double?
        var checkMicrosecondsPerWorkflow: Double?
        /// Timers: deadline → the workflow appending the firing.
        var appendedP50: Double?
        var appendedP99: Double?
        /// Wake: each shape of history, with snapshots and without.
        var wake: [WakeFigures]?
        /// Codec: CPU time per round (an order and a receipt encoded and decoded), with
        /// `PayloadCoder` and with Foundation's JSON.
        var codecNanoseconds: Double?
        var foundationNanoseconds: Double?
        /// Steps with `--beside-raw`: the raw scenario's events per second in the same run, its
        /// CPU per workflow, and the steps' workflows per second as a fraction of its.
        var rawEventsPerSecond: Double?
        var rawCPUMicroseconds: Double?
        var fractionOfRaw: Double?
        var p50: Double
        var p99: Double
        var max: Double

        init(scenario: String, workflows: Int, concurrency: Int, seconds: Double, latencies sorted: [Double]) {
            self.scenario = scenario
            self.workflows = workflows
            self.concurrency = concurrency
            self.seconds = seconds
            p50 = percentile(sorted, 0.50)
            p99 = percentile(sorted, 0.99)
            max = sorted.last ?? 0
        }

        enum CodingKeys: String, CodingKey {
            case scenario, store, workflows, steps, payload, concurrency, seconds, fired, early
            case workflowsPerSecond = "workflows_per_second"
            case stepsPerSecond = "steps_per_second"
            case timersPerSecond = "timers_per_second"
            case eventsPerSecond = "events_per_second"
            case restartSeconds = "restart_seconds"
            case secondsToComplete = "seconds_to_complete"
            case completed
            case unfinishedAtKill = "unfinished_at_kill"
            case recoveryCPUMicroseconds = "recovery_cpu_us_per_workflow"
            case cpuMicrosecondsPerWorkflow = "cpu_us_per_workflow"
            case writerCPUMicroseconds = "writer_cpu_us_per_workflow"
            case checkSeconds = "check_seconds"
            case checkMicrosecondsPerWorkflow = "check_us_per_workflow"
            case readySeconds = "ready_seconds"
            case residentMegabytes = "rss_mb"
            case peakResidentMegabytes = "peak_rss_mb"
            case residentBytesPerWorkflow = "resident_bytes_per_workflow"
            case wakeCPUMicroseconds = "wake_cpu_us_per_workflow"
            case trimmedBytesPerWorkflow = "trimmed_bytes_per_workflow"
            case appendedP50 = "appended_p50_ms"
            case appendedP99 = "appended_p99_ms"
            case wake
            case codecNanoseconds = "codec_ns_per_round"
            case foundationNanoseconds = "foundation_ns_per_round"
            case rawEventsPerSecond = "raw_events_per_second"
            case rawCPUMicroseconds = "raw_cpu_us_per_workflow"
            case fractionOfRaw = "fraction_of_raw"
            case p50 = "p50_ms"
            case p99 = "p99_ms"
            case max = "max_ms"
        }

        var text: String {
            var lines = ["\(workflows) workflows, scenario \(scenario), concurrency \(concurrency), in \(format(seconds)) s"]
            if let store { lines.append("  store        PostgreSQL \(store)") }
            if let wake, let steps {
                lines.append("  \(steps) durable steps each, then parked; woken one at a time by an event")
                for shape in wake { lines += shape.lines }
            }
            if let workflowsPerSecond, let stepsPerSecond, let steps {
                lines.append("  \(steps) durable steps each")
                lines.append("  workflows/s  \(format(workflowsPerSecond))")
                lines.append("  steps/s      \(format(stepsPerSecond))")
                lines.append("  latency      p50 \(format(p50)) ms   p99 \(format(p99)) ms   max \(format(max)) ms")
                if let rawEventsPerSecond, let fractionOfRaw {
                    lines.append("  raw limit    \(format(rawEventsPerSecond)) events/s in this run (--scenario raw); the steps reach \(format(fractionOfRaw)) of it")
                }
            }
            if let timersPerSecond, let fired, let early {
                lines.append("  timers fired \(fired), early \(early), timers/s \(format(timersPerSecond))")
                lines.append("  lateness     p50 \(format(p50)) ms   p99 \(format(p99)) ms   max \(format(max)) ms (deadline → fired)")
                if let appendedP50, let appendedP99 {
                    lines.append("  appended     p50 \(format(appendedP50)) ms   p99 \(format(appendedP99)) ms (deadline → firing appended)")
                }
            }
            if let restartSeconds, let readySeconds, let residentMegabytes, let peakResidentMegabytes {
                lines.append("  restart      \(format(restartSeconds)) s from spawning the process to ready (\(format(readySeconds)) s inside it)")
                lines.append("  memory       RSS \(format(residentMegabytes)) MB when ready, peak \(format(peakResidentMegabytes)) MB")
            }
            if let secondsToComplete, let readySeconds, let unfinishedAtKill, let peakResidentMegabytes, let recoveryCPUMicroseconds {
                lines.append("  recovery     \(unfinishedAtKill) in flight at SIGKILL; all \(workflows) completed \(format(secondsToComplete)) s after opening the store (ready in \(format(readySeconds)) s)")
                lines.append("  memory       peak RSS \(format(peakResidentMegabytes)) MB; CPU \(format(recoveryCPUMicroseconds)) µs per recovered workflow")
            } else if let eventsPerSecond, scenario == "raw" {
                lines.append("  events/s     \(format(eventsPerSecond)) written straight to the store, no runtime (the limit for --scenario steps)")
            } else if let eventsPerSecond {
                lines.append("  events/s     \(format(eventsPerSecond))")
                lines.append("  delivery     p50 \(format(p50)) ms   p99 \(format(p99)) ms   max \(format(max)) ms (send → workflow finished)")
            }
            if let residentBytesPerWorkflow, let residentMegabytes {
                lines.append("  resident     \(format(residentBytesPerWorkflow)) bytes of anonymous memory per waiting workflow (RSS \(format(residentMegabytes)) MB)")
                if let trimmedBytesPerWorkflow { lines.append("  held         \(format(trimmedBytesPerWorkflow)) bytes per waiting workflow once the allocator's free memory is handed back") }
                if let wakeCPUMicroseconds { lines.append("  wake         \(format(wakeCPUMicroseconds)) µs of CPU per workflow woken by an event, to its end") }
            }
            if let codecNanoseconds, let foundationNanoseconds {
                lines.append("  codec        \(format(codecNanoseconds)) ns of CPU per round with PayloadCoder, \(format(foundationNanoseconds)) ns with Foundation's JSON (ratio \(format(codecNanoseconds / foundationNanoseconds)))")
                lines.append("               a round: an order encoded with sorted keys and a receipt encoded, both decoded back")
            }
            if let checkSeconds, let checkMicrosecondsPerWorkflow {
                lines.append("  deploy gate  \(format(checkSeconds)) s for all of them (\(format(checkMicrosecondsPerWorkflow)) µs per workflow)")
            }
            if let cpuMicrosecondsPerWorkflow {
                lines.append("  CPU          \(format(cpuMicrosecondsPerWorkflow)) µs per workflow (user + system)")
            }
            if let writerCPUMicroseconds {
                lines.append("               \(format(writerCPUMicroseconds)) of them on the store's writer thread")
            }
            return lines.joined(separator: "\n")
        }
    }
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

/// An order as a service might pass one: the record bench's input.
struct BenchOrder: Codable, Sendable {
    var id: String
    var customer: String
    var amountCents: Int
    var items: [String]
}

/// What each of the record bench's steps returns, and its output.
struct BenchReceipt: Codable, Sendable {
    var step: String
    var reference: String
    var amountCents: Int
}

/// K steps that each return a receipt for the order; returns a receipt of their sum
/// (`bench --payload record`).
struct RecordBenchWorkflow: Workflow {
    static let name = "continuum.bench.record"

    struct Input: Codable, Sendable {
        var order: BenchOrder
        var steps: Int
    }

    func run(_ ctx: WorkflowContext, input: Input) async throws -> BenchReceipt {
        var total = 0
        for index in 0..<input.steps {
            let receipt = try await ctx.step("step-\(index)") {
                BenchReceipt(step: "step-\(index)", reference: "\(input.order.id)/\(index)", amountCents: input.order.amountCents + index)
            }
            total += receipt.amountCents
        }
        return BenchReceipt(step: "total", reference: input.order.id, amountCents: total)
    }

    /// The total a run of `input` returns.
    static func expectedTotal(_ input: Input) -> Int {
        input.steps * input.order.amountCents + input.steps * (input.steps - 1) / 2
    }
}

/// Sleeps `input` milliseconds.
struct SleepWorkflow: Workflow {
    static let name = "continuum.bench.sleep"

    func run(_ ctx: WorkflowContext, input milliseconds: Int) async throws -> Int {
        try await ctx.sleep(for: .milliseconds(milliseconds))
        return milliseconds
    }
}

/// Waits for one "go" event and returns its payload.
struct EventWorkflow: Workflow {
    static let name = "continuum.bench.event"

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        try await ctx.waitForEvent("go", as: Int.self) ?? -1
    }
}

/// Three steps, then a day's sleep: an unfinished workflow for the deploy gate to replay.
struct CheckWorkflow: Workflow {
    static let name = "continuum.bench.check"

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        var total = 0
        for index in 0..<3 { total += try await ctx.step("step-\(index)") { index + input } }
        try await ctx.sleep(for: .seconds(86_400))
        return total
    }
}

extension Bench {
    /// Starts N workflows that sleep after three steps, then times the deploy gate over them.
    func checkScenario(_ runtime: WorkflowRuntime, store: any EventStore, prefix: String) async throws -> Report {
        let total = workflows
        let (elapsed, _) = try await runtime.withRunning { runtime in
            let started = try await fanOut(total: total) { index in
                try await runtime.start(CheckWorkflow.self, id: prefix + String(index), input: index)
            }
            // Every one asleep: its timer is in the store's index.
            while try await store.timers(after: nil, limit: total).count < total {
                try await Task.sleep(for: .milliseconds(100))
            }
            return started
        }
        let cpuBefore = Self.cpuSeconds()
        let report = try await WorkflowReplayer(workflows: [CheckWorkflow()]).check(store: store)
        let cpu = Self.cpuSeconds() - cpuBefore
        guard report.checked == total, report.passed else {
            throw ValidationError("the gate checked \(report.checked) of \(total) workflows, \(report.breaking) breaking")
        }
        var result = Report(scenario: "check", workflows: total, concurrency: concurrency, seconds: elapsed.seconds, latencies: [])
        result.checkSeconds = report.seconds
        result.checkMicrosecondsPerWorkflow = report.seconds / Double(total) * 1e6
        FileHandle.standardError.write(Data("check: \(total) workflows replayed in \(report.seconds) s, \(cpu) s of CPU\n".utf8))
        return result
    }

    /// The CPU time so far of this process's thread named `name`, in seconds, from the kernel's
    /// scheduler statistics (`/proc/self/task/*/schedstat`, nanoseconds on a CPU); `nil` when
    /// no thread has that name (a PostgreSQL store has no writer thread) or there is no `/proc`.
    static func threadCPUSeconds(named name: String) -> Double? {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return nil }
        for task in tasks {
            guard let comm = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8),
                comm.trimmingCharacters(in: .newlines) == name,
                let schedstat = try? String(contentsOfFile: "/proc/self/task/\(task)/schedstat", encoding: .utf8),
                let nanoseconds = schedstat.split(separator: " ").first.flatMap({ Double($0) })
            else { continue }
            return nanoseconds / 1e9
        }
        return nil
    }

    /// The process's user + system CPU time so far, in seconds.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }
}

/// A shared counter that hands out workflow indices to the bench's workers.
final class Counter: Sendable {
    let value = Atomic<Int>(0)
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
