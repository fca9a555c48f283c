@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import MetricsTestKit
import Synchronization
import Testing

/// Counts how many run at once, and the most that ever did.
final class Overlap: Sendable {
    private let state = Mutex<(now: Int, most: Int, order: [String])>((0, 0, []))
    func enter(_ name: String) { state.withLock { $0.now += 1; $0.most = max($0.most, $0.now); $0.order.append(name) } }
    func exit() { state.withLock { $0.now -= 1 } }
    var most: Int { state.withLock { $0.most } }
    var order: [String] { state.withLock { $0.order } }
}

/// One step on queue "api" (partition and priority from the input) that takes `millis`.
struct CallsAPI: Workflow {
    static let name = "calls-api"
    let overlap: Overlap

    struct Input: Codable, Sendable {
        var millis: Int
        var partition: String? = nil
        var priority = 0
    }

    func run(_ ctx: WorkflowContext, input: Input) async throws -> String {
        let overlap = self.overlap
        let id = ctx.workflowID
        return try await ctx.step("call", queue: QueueEntry("api", partition: input.partition, priority: input.priority)) { () async throws -> String in
            overlap.enter(id)
            defer { overlap.exit() }
            try await Task.sleep(for: .milliseconds(input.millis))
            return id
        }
    }
}

/// Whose body runs on a queue of workflows: records while it runs until "go".
struct QueuedJob: Workflow {
    static let name = "queued-job"
    let overlap: Overlap

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        overlap.enter(ctx.workflowID)
        defer { overlap.exit() }
        _ = try await ctx.waitForEvent("go", as: Int.self)
        return input
    }
}

/// Runs on queue "jobs" and calls steps on it: one on its own partition, one naming none, and
/// two side by side; then, when told, one on partition "other".
struct SelfQueued: Workflow {
    static let name = "self-queued"
    let bodies: Overlap
    let steps: Overlap

    struct Input: Codable, Sendable {
        var partition: String
        var otherPartition = false
    }

    func run(_ ctx: WorkflowContext, input: Input) async throws -> String {
        bodies.enter(ctx.workflowID)
        defer { bodies.exit() }
        let steps = self.steps
        let id = ctx.workflowID
        @Sendable func work(_ name: String) async throws -> String {
            steps.enter("\(id) \(name)")
            defer { steps.exit() }
            try await Task.sleep(for: .milliseconds(20))
            return name
        }
        var done: [String] = []
        done.append(try await ctx.step("own", queue: QueueEntry("jobs", partition: input.partition)) { try await work("own") })
        done.append(try await ctx.step("unnamed", queue: QueueEntry("jobs")) { try await work("unnamed") })
        async let left = ctx.step("left", queue: QueueEntry("jobs", partition: input.partition)) { try await work("left") }
        async let right = ctx.step("right", queue: QueueEntry("jobs", partition: input.partition)) { try await work("right") }
        done += try await [left, right]
        if input.otherPartition {
            do {
                done.append(try await ctx.step("other", queue: QueueEntry("jobs", partition: "other")) { try await work("other") })
            } catch let error as ContinuumError where error.code == .stepFailed {
                done.append("\(error)".contains("ContinuumError.invalidArgument") ? "refused" : "\(error)")
            }
        }
        return done.joined(separator: " ")
    }
}

/// Runs on queue "metered" and calls three steps on it, one after the other.
struct Metered: Workflow {
    static let name = "metered"
    let steps: Overlap

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        for index in 0..<3 {
            try await ctx.step("call-\(index)", queue: QueueEntry("metered")) { steps.enter("call-\(index)"); steps.exit() }
        }
        return input
    }
}

private func runtime(_ path: String, queues: [String: QueueLimits], clock: ManualClock? = nil, workflows: [any Workflow]) -> WorkflowRuntime.Configuration {
    var configuration = WorkflowRuntime.Configuration(parkAfter: nil)
    if let clock { configuration.clock = clock }
    configuration.queues = queues
    return configuration
}

@Suite("Queues")
struct QueueTests {
    @Test("a queue's concurrency limit holds for steps of many workflows, and every one runs")
    func stepConcurrency() async throws {
        try await withTemporaryDirectory { path in
            let overlap = Overlap()
            let configuration = runtime(path, queues: ["api": QueueLimits(concurrency: 3)], workflows: [])
            try await WorkflowRuntime.withLMDB(path: path, workflows: [CallsAPI(overlap: overlap)], runtime: configuration) { runtime throws in
                let handles = try await (0..<20).asyncMap { try await runtime.start(CallsAPI.self, id: "c\($0)", input: .init(millis: 60)) }
                for handle in handles { _ = try await handle.result() }
            }
            // Never more than 3; on a loaded machine the 60 ms steps may not always line up 3 at once.
            #expect(overlap.most <= 3 && overlap.most >= 2, "at most 3 at once: \(overlap.most)")
            #expect(overlap.order.count == 20)
        }
    }

    @Test("per-partition limits: one at a time per customer, customers side by side")
    func partitions() async throws {
        try await withTemporaryDirectory { path in
            let overlap = Overlap()
            let configuration = runtime(path, queues: ["api": QueueLimits(perPartition: 1)], workflows: [])
            try await WorkflowRuntime.withLMDB(path: path, workflows: [CallsAPI(overlap: overlap)], runtime: configuration) { runtime throws in
                var handles: [WorkflowHandle<CallsAPI>] = []
                for index in 0..<8 {
                    handles.append(try await runtime.start(CallsAPI.self, id: "p\(index)", input: .init(millis: 30, partition: "customer-\(index % 2)")))
                }
                for handle in handles { _ = try await handle.result() }
            }
            #expect(overlap.most == 2, "two customers at once, one call each: \(overlap.most)")
        }
    }

    @Test("waiting work is served by priority, then in the order it was queued")
    func priority() async throws {
        try await withTemporaryDirectory { path in
            let overlap = Overlap()
            let metrics = TestMetrics()
            var configuration = runtime(path, queues: ["jobs": QueueLimits(concurrency: 1)], workflows: [])
            configuration.metricsFactory = metrics
            try await WorkflowRuntime.withLMDB(path: path, workflows: [QueuedJob(overlap: overlap)], runtime: configuration) { runtime throws in
                try await runtime.start(QueuedJob.self, id: "first", input: 0, queue: QueueEntry("jobs"))
                try await eventually { overlap.order == ["first"] }
                try await runtime.start(QueuedJob.self, id: "low", input: 1, queue: QueueEntry("jobs"))
                try await runtime.start(QueuedJob.self, id: "high", input: 2, queue: QueueEntry("jobs", priority: 10))
                try await runtime.start(QueuedJob.self, id: "later", input: 3, queue: QueueEntry("jobs"))
                // All three wait for the one slot (the gauge says so), whatever order their drivers asked in.
                try await eventually { (try? metrics.expectGauge("continuum_queue_waiting", [("queue", "jobs")]))?.lastValue == 3 }
                for id in ["first", "high", "low", "later"] {
                    try await eventually { overlap.order.last == id }
                    try await runtime.send("go", to: id, payload: 1)
                }
                _ = try await runtime.handle(QueuedJob.self, id: "later").result()
            }
            #expect(overlap.order == ["first", "high", "low", "later"])
        }
    }

    @Test("a rate limit lets so many start per window, by the runtime's clock")
    func rate() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let overlap = Overlap()
            let configuration = runtime(path, queues: ["api": QueueLimits(rate: .init(4, per: .seconds(60)))], clock: clock, workflows: [])
            try await WorkflowRuntime.withLMDB(path: path, workflows: [CallsAPI(overlap: overlap)], runtime: configuration) { runtime throws in
                var handles: [WorkflowHandle<CallsAPI>] = []
                for index in 0..<10 { handles.append(try await runtime.start(CallsAPI.self, id: "r\(index)", input: .init(millis: 0))) }
                try await eventually { overlap.order.count == 4 }
                try await Task.sleep(for: .milliseconds(50))
                #expect(overlap.order.count == 4, "more than 4 started within a minute")
                clock.advance(by: .seconds(61))
                try await eventually { overlap.order.count == 8 }
                clock.advance(by: .seconds(61))
                for handle in handles { _ = try await handle.result() }
            }
            #expect(overlap.order.count == 10)
        }
    }

    @Test("a deadline that passes while a workflow waits for its queue slot is recorded on time; the body runs only with a slot, and ends timedOut")
    func deadlineWhileQueued() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let overlap = Overlap()
            let metrics = TestMetrics()
            var configuration = runtime(path, queues: ["jobs": QueueLimits(concurrency: 1)], clock: clock, workflows: [])
            configuration.metricsFactory = metrics
            try await WorkflowRuntime.withLMDB(path: path, workflows: [QueuedJob(overlap: overlap)], runtime: configuration) { runtime throws in
                try await runtime.start(QueuedJob.self, id: "holder", input: 0, queue: QueueEntry("jobs"))
                try await eventually { overlap.order == ["holder"] }
                let late = try await runtime.start(QueuedJob.self, id: "late", input: 1, timeout: .seconds(30), queue: QueueEntry("jobs"))
                try await eventually { (try? metrics.expectGauge("continuum_queue_waiting", [("queue", "jobs")]))?.lastValue == 1 }
                clock.advance(by: .seconds(30))
                try await runtime.waitForHistory(of: "late") { $0.contains { $0.kindName == "deadlinePassed" } }
                #expect(overlap.order == ["holder"], "the late workflow's body ran without a slot: \(overlap.order)")
                // The holder ends; the late workflow gets the slot, and its body ends at once, timed out.
                try await runtime.send("go", to: "holder", payload: 1)
                let error = await errorOf { _ = try await late.result() }
                #expect((error as? ContinuumError)?.code == .timedOut, "\(String(describing: error))")
                #expect(overlap.order == ["holder", "late"] && overlap.most == 1)
            }
        }
    }

    @Test("a step on its workflow's own queue runs within the workflow's slot instead of waiting for it")
    func stepWithinOwnSlot() async throws {
        try await withTemporaryDirectory { path in
            let bodies = Overlap()
            let steps = Overlap()
            let configuration = runtime(path, queues: ["jobs": QueueLimits(concurrency: 1, perPartition: 1)], workflows: [])
            try await WorkflowRuntime.withLMDB(path: path, workflows: [SelfQueued(bodies: bodies, steps: steps)], runtime: configuration) { runtime throws in
                var handles: [WorkflowHandle<SelfQueued>] = []
                for index in 0..<3 {
                    handles.append(try await runtime.start(SelfQueued.self, id: "s\(index)", input: .init(partition: "a"), queue: QueueEntry("jobs", partition: "a")))
                }
                for handle in handles {
                    let done = try await withTimeout(.seconds(30)) { try await handle.result() }
                    #expect(done == "own unnamed left right")
                }
                // The only slot is its workflow's: a step on another partition of the queue could never have one.
                let other = try await runtime.start(
                    SelfQueued.self, id: "o", input: .init(partition: "a", otherPartition: true), queue: QueueEntry("jobs", partition: "a"))
                let refused = try await withTimeout(.seconds(30)) { try await other.result() }
                #expect(refused == "own unnamed left right refused")
            }
            #expect(bodies.most == 1, "one workflow body at a time: \(bodies.most)")
            #expect(steps.order.count == 16 && !steps.order.contains { $0.hasSuffix(" other") })
            // Only one workflow's steps ran at a time (the two side by side share its slot).
            #expect(steps.most <= 2, "\(steps.most)")
        }
    }

    @Test("a step within its workflow's slot still counts against the queue's rate")
    func withinSlotCountsRate() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let steps = Overlap()
            let configuration = runtime(path, queues: ["metered": QueueLimits(concurrency: 1, rate: .init(2, per: .seconds(60)))], clock: clock, workflows: [])
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Metered(steps: steps)], runtime: configuration) { runtime throws in
                let handle = try await runtime.start(Metered.self, id: "m", input: 5, queue: QueueEntry("metered"))
                // The workflow's own start and its first step fill the window of two.
                try await eventually { steps.order.count == 1 }
                try await Task.sleep(for: .milliseconds(50))
                #expect(steps.order.count == 1, "a step started past the rate: \(steps.order)")
                clock.advance(by: .seconds(61))
                #expect(try await withTimeout(.seconds(30)) { try await handle.result() } == 5)
            }
            #expect(steps.order == ["call-0", "call-1", "call-2"])
        }
    }

    @Test("workflows on a queue: only as many bodies run as it allows; the rest start as slots free, in the order they were queued")
    func workflowQueue() async throws {
        try await withTemporaryDirectory { path in
            let overlap = Overlap()
            let metrics = TestMetrics()
            var configuration = runtime(path, queues: ["jobs": QueueLimits(concurrency: 2)], workflows: [])
            configuration.metricsFactory = metrics
            try await WorkflowRuntime.withLMDB(path: path, workflows: [QueuedJob(overlap: overlap)], runtime: configuration) { runtime throws in
                for index in 0..<5 { try await runtime.start(QueuedJob.self, id: "j\(index)", input: index, queue: QueueEntry("jobs")) }
                try await eventually { overlap.order.count == 2 }
                try await eventually { (try? metrics.expectGauge("continuum_queue_waiting", [("queue", "jobs")]))?.lastValue == 3 }
                #expect(try await runtime.history(of: "j4").contains { $0.kind == .enqueued(QueueEntry("jobs")) })
                // Each slot freed goes to the earliest queued of those waiting.
                var released: Set<String> = []
                while released.count < 5 {
                    let running = overlap.order.filter { !released.contains($0) }
                    let next = try #require(running.first)
                    try await runtime.send("go", to: next, payload: 1)
                    _ = try await runtime.handle(QueuedJob.self, id: next).result()
                    released.insert(next)
                    if released.count < 4 { try await eventually { overlap.order.count == min(5, released.count + 2) } }
                }
                let waited = Array(overlap.order.dropFirst(2))
                #expect(waited == waited.sorted(), "the waiting workflows started out of their queued order: \(overlap.order)")
            }
            #expect(overlap.most == 2 && overlap.order.count == 5)
        }
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}

/// Queues on a store several runtimes share: the limits hold across all of them.
@Suite("Queues shared by several runtimes")
struct SharedQueueTests {
    /// Two runtimes (two owners, as two processes would be) on one shared store.
    private func withTwoRuntimes(
        queues: [String: QueueLimits], overlap: Overlap, _ body: (WorkflowRuntime, WorkflowRuntime) async throws -> Void
    ) async throws {
        // A lease no stall of a loaded machine outlasts: a takeover is not what these tests look
        // at, and one (a workflow run by both runtimes) would count a body twice.
        let store = InMemoryStore(configuration: .init(leaseDuration: .seconds(60)))
        #expect(store.sharedQueues != nil)
        var first = WorkflowRuntime.Configuration(parkAfter: nil)
        first.queues = queues
        first.owner = OwnerID("first")
        var second = first
        second.owner = OwnerID("second")
        let workflows: [any Workflow] = [CallsAPI(overlap: overlap), QueuedJob(overlap: overlap)]
        try await WorkflowRuntime.withRuntime(store: store, workflows: workflows, configuration: first) { a throws in
            try await WorkflowRuntime.withRuntime(store: store, workflows: workflows, configuration: second) { b throws in
                try await body(a, b)
            }
        }
    }

    @Test("steps of two runtimes on a queue of 2 never run more than 2 at once in all, and the runtimes share the slots")
    func concurrencyAcrossRuntimes() async throws {
        let overlap = Overlap()
        try await withTwoRuntimes(queues: ["api": QueueLimits(concurrency: 2)], overlap: overlap) { a, b in
            try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<12 {
                    let runtime = index.isMultiple(of: 2) ? a : b
                    group.addTask { try await runtime.start(CallsAPI.self, id: "w\(index)", input: .init(millis: 20)).result() }
                }
                var done = 0
                for try await _ in group { done += 1 }
                #expect(done == 12)
            }
        }
        #expect(overlap.most == 2, "\(overlap.most) steps ran at once on a queue of 2 shared by two runtimes")
        let order = overlap.order
        #expect(order.count == 12)
    }

    @Test("each runtime's view of a shared queue counts the work of both")
    func snapshotCountsEveryRuntime() async throws {
        let overlap = Overlap()
        try await withTwoRuntimes(queues: ["jobs": QueueLimits(concurrency: 2)], overlap: overlap) { a, b in
            let first = try await a.start(QueuedJob.self, id: "j1", input: 1, queue: QueueEntry("jobs"))
            let second = try await b.start(QueuedJob.self, id: "j2", input: 2, queue: QueueEntry("jobs"))
            let third = try await a.start(QueuedJob.self, id: "j3", input: 3, queue: QueueEntry("jobs"))
            for runtime in [a, b] {
                try await eventually {
                    try await runtime.queueSnapshot().first.map { [$0.running, $0.waiting, $0.shared ? 1 : 0] } == [2, 1, 1]
                }
            }
            for id in ["j1", "j2", "j3"] {
                try await eventually { try await a.history(of: id).contains { if case .waitStarted = $0.kind { true } else { false } } }
                let runtime = id == "j2" ? b : a
                try await runtime.send("go", to: id, payload: 0)
            }
            #expect(try await [first.result(), second.result(), third.result()] == [1, 2, 3])
        }
        #expect(overlap.most == 2)
    }

    @Test("a workflow taken over while it waits for a shared slot leaves this runtime instead of waiting for ever; the one holding the slot goes on")
    func takenWhileWaiting() async throws {
        // The store's clock: leases lapse when the test says (the runtime renews on its own clock).
        let clock = ManualClock()
        let store = InMemoryStore(configuration: .init(leaseDuration: .seconds(60), clock: clock))
        var configuration = WorkflowRuntime.Configuration(parkAfter: nil)
        configuration.queues = ["jobs": QueueLimits(concurrency: 1)]
        configuration.owner = OwnerID("a")
        let overlap = Overlap()
        try await WorkflowRuntime.withRuntime(store: store, workflows: [QueuedJob(overlap: overlap)], configuration: configuration) { runtime throws in
            let first = try await runtime.start(QueuedJob.self, id: "j1", input: 1, queue: QueueEntry("jobs"))
            _ = try await runtime.start(QueuedJob.self, id: "j2", input: 2, queue: QueueEntry("jobs"))
            try await eventually { try await store.queueLoad()["jobs"].map { [$0.running, $0.waiting] } == [1, 1] }
            #expect(runtime.residentWorkflows == 2)
            // j2's lease lapses and another owner takes it while it waits for the slot j1 holds.
            clock.advance(by: .seconds(61))
            _ = try #require(try await store.claim("j2", owner: OwnerID("thief")), "the lapsed claim could not be taken")
            try await eventually { runtime.residentWorkflows == 1 }
            #expect(try await store.queueLoad()["jobs"]?.waiting ?? 0 == 0)
            // j1 still holds its slot (its own lease lapsed, but nobody took it) and finishes.
            try await eventually { try await runtime.history(of: "j1").contains { if case .waitStarted = $0.kind { true } else { false } } }
            try await runtime.send("go", to: "j1", payload: 0)
            #expect(try await first.result() == 1)
        }
        #expect(overlap.order == ["j1"])
    }

    @Test("per-partition limits hold across runtimes")
    func partitionsAcrossRuntimes() async throws {
        let overlap = Overlap()
        try await withTwoRuntimes(queues: ["api": QueueLimits(perPartition: 1)], overlap: overlap) { a, b in
            try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<8 {
                    let runtime = index.isMultiple(of: 2) ? a : b
                    group.addTask { try await runtime.start(CallsAPI.self, id: "p\(index)", input: .init(millis: 15, partition: "customer")).result() }
                }
                for try await _ in group {}
            }
        }
        #expect(overlap.most == 1, "\(overlap.most) steps of one partition ran at once across two runtimes with a limit of 1")
    }

    @Test("a rate limit counts the starts of every runtime")
    func rateAcrossRuntimes() async throws {
        let overlap = Overlap()
        try await withTwoRuntimes(queues: ["api": QueueLimits(rate: .init(3, per: .milliseconds(600)))], overlap: overlap) { a, b in
            let began = ContinuousClock.now
            try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<9 {
                    let runtime = index.isMultiple(of: 2) ? a : b
                    group.addTask { try await runtime.start(CallsAPI.self, id: "r\(index)", input: .init(millis: 1)).result() }
                }
                for try await _ in group {}
            }
            // Nine starts at three per 600 ms: the last three wait for two windows to pass.
            #expect(ContinuousClock.now - began >= .milliseconds(1150), "nine starts took \(ContinuousClock.now - began) at 3 per 600 ms")
        }
        #expect(overlap.order.count == 9)
    }
}
