@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

/// A child: fetches a page, after an optional durable sleep and an optional "go" event; fails when told.
struct Scrape: Workflow {
    static let name = "scrape"
    let ledger: Ledger

    struct Input: Codable, Sendable {
        var source: Int
        var sleepSeconds: Int? = nil
        var waitForGo = false
        var fail = false
    }

    func run(_ ctx: WorkflowContext, input: Input) async throws -> String {
        if let seconds = input.sleepSeconds { try await ctx.sleep(for: .seconds(seconds)) }
        if input.waitForGo {
            do {
                _ = try await ctx.waitForEvent("go", as: Int.self)
            } catch let error as ContinuumError where error.code == .cancelled {
                try await ctx.step("compensate") { ledger.record("compensate-\(input.source)") }
                throw error
            }
        }
        return try await ctx.step("fetch") { () throws -> String in
            ledger.record("fetch-\(input.source)")
            if input.fail { throw ScrapeError(source: input.source) }
            return "page-\(input.source)"
        }
    }
}

struct ScrapeError: Error, CustomStringConvertible {
    var source: Int
    var description: String { "source \(source) is down" }
}

/// A parent: one child per source, side by side; a child's failure is caught and reported.
struct Research: Workflow {
    static let name = "research"
    let ledger: Ledger

    struct Input: Codable, Sendable {
        var sources: [Scrape.Input]
        var readTwice = false
    }

    func run(_ ctx: WorkflowContext, input: Input) async throws -> [String] {
        try await withThrowingTaskGroup(of: String.self) { group in
            for source in input.sources {
                group.addTask {
                    do {
                        let child = try await ctx.startChild(Scrape.self, name: "scrape-\(source.source)", input: source)
                        let page = try await child.result()
                        if input.readTwice {
                            let again = try await child.result()
                            return again == page ? page : "differs"
                        }
                        return page
                    } catch let error as ContinuumError where error.code == .childFailed {
                        let cause = (error.cause as? FailureRecord)?.message ?? "?"
                        return "failed \(error.workflowID ?? "?"): \(cause.contains("source 1 is down") ? "source 1 is down" : cause)"
                    }
                }
            }
            var pages: [String] = []
            for try await page in group { pages.append(page) }
            try await ctx.step("report") { ledger.record("report") }
            return pages.sorted()
        }
    }
}

/// A parent that starts one child and ends without waiting for it.
struct Launcher: Workflow {
    static let name = "launcher"

    struct Input: Codable, Sendable {
        var policy: ParentClosePolicy
    }

    func run(_ ctx: WorkflowContext, input: Input) async throws -> String {
        let child = try await ctx.startChild(Scrape.self, name: "worker", input: .init(source: 9, waitForGo: true), onParentClose: input.policy)
        return child.id
    }
}

/// A parent that waits for a child that waits for "go".
struct Patient: Workflow {
    static let name = "patient"

    func run(_ ctx: WorkflowContext, input: Int) async throws -> String {
        try await ctx.child(Scrape.self, name: "slow", input: .init(source: input, waitForGo: true))
    }
}

/// A child that keeps its place in memory for a while: one step that takes `millis`.
struct Lingers: Workflow {
    static let name = "lingers"

    struct Input: Codable, Sendable {
        var value: Int
        var millis: Int
    }

    func run(_ ctx: WorkflowContext, input: Input) async throws -> Int {
        try await ctx.step("work") { () async throws -> Int in
            try await Task.sleep(for: .milliseconds(input.millis))
            return input.value
        }
    }
}

/// A parent that starts `count` children side by side and adds up their outputs.
struct Sums: Workflow {
    static let name = "sums"

    struct Input: Codable, Sendable {
        var count: Int
        var millis: Int
    }

    func run(_ ctx: WorkflowContext, input: Input) async throws -> Int {
        try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<input.count {
                group.addTask { try await ctx.child(Lingers.self, name: "c\(index)", input: .init(value: index, millis: input.millis)) }
            }
            return try await group.reduce(0, +)
        }
    }
}

/// A parent that starts `input` children that wait for "go", then waits for "end" and ends,
/// cancelling them (``ParentClosePolicy/cancel``).
struct Closes: Workflow {
    static let name = "closes"

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        for index in 0..<input {
            _ = try await ctx.startChild(Scrape.self, name: "w\(index)", input: .init(source: index, waitForGo: true))
        }
        return try await ctx.waitForEvent("end", as: Int.self) ?? -1
    }
}

/// Runs `body` in a task of its own and throws ``ConditionTimeout`` once `limit` passes first.
///
/// A runtime whose workflows wait for each other does not unwind when cancelled (a driver
/// waiting for room in memory is not cancellable), so `withTimeout`, which waits for what it
/// cancels, would hang with it: on timeout this leaves the task behind, and the test fails.
func finishes(within limit: Duration, _ body: @escaping @Sendable () async throws -> Void) async throws {
    let (outcomes, continuation) = AsyncStream.makeStream(of: (any Error)?.self)
    let work = Task {
        do {
            try await body()
            continuation.yield(nil)
        } catch {
            continuation.yield(error)
        }
    }
    let timer = Task {
        try? await Task.sleep(for: limit)
        continuation.yield(ConditionTimeout(timeout: limit))
    }
    defer { timer.cancel() }
    for await outcome in outcomes {
        if outcome is ConditionTimeout { work.cancel() }
        if let outcome { throw outcome }
        return
    }
}

@Suite("Child workflows")
struct ChildWorkflowTests {
    private func workflows(_ ledger: Ledger) -> [any Workflow] {
        [Scrape(ledger: ledger), Research(ledger: ledger), Launcher(), Patient()]
    }

    @Test("a parent fans out children, each runs once under a derived id, and their outputs come back")
    func fanOut() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, workflows: workflows(ledger)) { runtime throws in
                let sources = (0..<3).map { Scrape.Input(source: $0) }
                let pages = try await runtime.start(Research.self, id: "r", input: .init(sources: sources, readTwice: true)).result()
                #expect(pages == ["page-0", "page-1", "page-2"])
                let child = try await runtime.history(of: "r/scrape-1")
                #expect(child.count > 1 && child[1].kind == .startedAsChild(parent: "r", key: "scrape-1"))
                #expect(try await runtime.status(of: "r/scrape-1")?.status == .completed)
                let parent = try await runtime.history(of: "r")
                let notices = parent.filter { if case .eventReceived(let name, _, _) = $0.kind { name.hasPrefix("continuum.child:") } else { false } }
                #expect(notices.count == 3)
            }
            #expect((0..<3).allSatisfy { ledger.count("fetch-\($0)") == 1 } && ledger.count("report") == 1)
        }
    }

    @Test("a parent parked while its children sleep is woken by their ends, not by polling")
    func parkedParentWoken() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            let configuration = WorkflowRuntime.Configuration(clock: clock, parkAfter: .milliseconds(50), timerHorizon: .seconds(1))
            try await WorkflowRuntime.withLMDB(path: path, workflows: workflows(ledger), runtime: configuration) { runtime throws in
                let sources = (0..<2).map { Scrape.Input(source: $0, sleepSeconds: 86_400) }
                let handle = try await runtime.start(Research.self, id: "p", input: .init(sources: sources))
                try await runtime.waitForIndexedTimers(2)
                try await parkAll(runtime, clock: clock)
                #expect(runtime.residentWorkflows == 0 && runtime.pendingTimers == 0)
                #expect(try await runtime.status(of: "p")?.status == .running)
                clock.advance(by: .seconds(86_400))
                let pages = try await withTimeout(.seconds(20)) { try await handle.result() }
                #expect(pages == ["page-0", "page-1"])
            }
        }
    }

    @Test("a child's failure reaches the parent as childFailed with the child's id and failure")
    func childFailure() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, workflows: workflows(ledger)) { runtime throws in
                let sources = [Scrape.Input(source: 0), Scrape.Input(source: 1, fail: true)]
                let pages = try await runtime.start(Research.self, id: "f", input: .init(sources: sources)).result()
                #expect(pages == ["failed f/scrape-1: source 1 is down", "page-0"])
                #expect(try await runtime.status(of: "f/scrape-1")?.status == .failed)
            }
        }
    }

    @Test("cancelling a parent cancels the child it waits for, which compensates; the parent ends cancelled")
    func cancelPropagates() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, workflows: workflows(ledger)) { runtime throws in
                let handle = try await runtime.start(Patient.self, id: "w", input: 5)
                try await runtime.waitForHistory(of: "w/slow") { $0.contains { $0.kindName == "waitStarted" } }
                try await runtime.cancel("w", reason: "no longer needed")
                let error = await errorOf { _ = try await handle.result() }
                #expect((error as? ContinuumError)?.code == .cancelled)
                try await runtime.waitForStatus(of: "w/slow", .cancelled)
                let child = try await runtime.history(of: "w/slow")
                #expect(child.contains { $0.kind == .cancelRequested(reason: "its parent 'w' ended (cancelled)", by: "w") })
            }
            #expect(ledger.count("compensate-5") == 1 && ledger.count("fetch-5") == 0)
        }
    }

    @Test("a parent that ends first cancels its children by default, and leaves them running with .abandon")
    func parentClosePolicy() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, workflows: workflows(ledger)) { runtime throws in
                #expect(try await runtime.start(Launcher.self, id: "c", input: .init(policy: .cancel)).result() == "c/worker")
                try await runtime.waitForStatus(of: "c/worker", .cancelled)

                #expect(try await runtime.start(Launcher.self, id: "a", input: .init(policy: .abandon)).result() == "a/worker")
                #expect(try await runtime.status(of: "a/worker")?.status == .running)
                try await runtime.send("go", to: "a/worker", payload: 1)
                let page = try await runtime.handle(Scrape.self, id: "a/worker").result()
                #expect(page == "page-9")
                // The parent had ended: the child's notice is not taken, and nothing breaks.
                #expect(try await runtime.status(of: "a")?.status == .completed)
            }
        }
    }

    @Test("cancelling a suspended child (its type not registered here) tells its parent, which gets childCancelled")
    func suspendedChildCancelled() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            // Not parked (a parked child would be found unknown only when it wakes), however slow the machine.
            try await WorkflowRuntime.withLMDB(path: path, workflows: workflows(ledger), runtime: .init(parkAfter: nil)) { runtime throws in
                try await runtime.start(Patient.self, id: "s", input: 1)
                try await runtime.waitForHistory(of: "s/slow") { $0.contains { $0.kindName == "waitStarted" } }
            }
            // This runtime does not register the child's type: the child is suspended when recovered.
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Patient()]) { runtime throws in
                try await runtime.waitForStatus(of: "s/slow", .suspended)
                try await runtime.cancel("s/slow", reason: "its code is gone")
                let error = await errorOf { _ = try await runtime.handle(Patient.self, id: "s").result() }
                #expect((error as? ContinuumError)?.code == .workflowFailed, "\(String(describing: error))")
                #expect((error as? ContinuumError)?.message.contains("childCancelled") == true, "\(String(describing: error))")
                #expect(try await runtime.status(of: "s/slow")?.status == .cancelled)
            }
        }
    }

    @Test("children started before a restart are not started again; the parent finishes after it")
    func acrossRestart() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            let sources = (0..<3).map { Scrape.Input(source: $0, waitForGo: true) }
            try await WorkflowRuntime.withLMDB(path: path, workflows: workflows(ledger)) { runtime throws in
                try await runtime.start(Research.self, id: "x", input: .init(sources: sources))
                for source in 0..<3 {
                    try await runtime.waitForHistory(of: "x/scrape-\(source)") { $0.contains { $0.kindName == "waitStarted" } }
                }
                try await runtime.send("go", to: "x/scrape-0", payload: 1)
                try await runtime.waitForStatus(of: "x/scrape-0", .completed)
            }
            try await WorkflowRuntime.withLMDB(path: path, workflows: workflows(ledger)) { runtime throws in
                for source in 1..<3 { try await runtime.send("go", to: "x/scrape-\(source)", payload: 1) }
                #expect(try await runtime.handle(Research.self, id: "x").result() == ["page-0", "page-1", "page-2"])
                let parent = try await runtime.history(of: "x")
                let starts = parent.filter { if case .stepCompleted(let step, _) = $0.kind { step.name.hasPrefix("continuum.child:") } else { false } }
                #expect(starts.count == 3)
            }
            #expect((0..<3).allSatisfy { ledger.count("fetch-\($0)") == 1 })
        }
    }

    @Test(
        "children more than memory has room for tell their parked parent how they ended: the notice needs no room")
    func fanOutPastResidentLimit() async throws {
        try await withTemporaryDirectory { path in
            let configuration = WorkflowRuntime.Configuration(parkAfter: .milliseconds(50), maxResidentWorkflows: 4)
            try await finishes(within: .seconds(60)) {
                try await WorkflowRuntime.withLMDB(path: path, workflows: [Sums(), Lingers()], runtime: configuration) { runtime throws in
                    // The parent parks within 50 ms; each child then holds one of the four places
                    // for 500 ms, and ends while its parent is out of memory.
                    let total = try await runtime.start(Sums.self, id: "s", input: .init(count: 10, millis: 500)).result()
                    #expect(total == 45)
                    let notices = try await runtime.history(of: "s").filter {
                        if case .eventReceived(let name, _, _) = $0.kind { name.hasPrefix("continuum.child:") } else { false }
                    }
                    #expect(notices.count == 10)
                    #expect(try await runtime.history(of: "s").contains { $0.kindName == "workflowCompleted" })
                }
            }
        }
    }

    @Test(
        "parents that fill memory and end cancel their parked children without loading them first")
    func closeParkedChildrenPastResidentLimit() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            let configuration = WorkflowRuntime.Configuration(parkAfter: .milliseconds(50), maxResidentWorkflows: 2)
            try await finishes(within: .seconds(60)) {
                try await WorkflowRuntime.withLMDB(path: path, workflows: [Closes(), Scrape(ledger: ledger)], runtime: configuration) { runtime throws in
                    let parents = ["p", "q"]
                    for id in parents { try await runtime.start(Closes.self, id: id, input: 3) }
                    for id in parents {
                        for index in 0..<3 { try await runtime.waitForHistory(of: "\(id)/w\(index)") { $0.contains { $0.kindName == "waitStarted" } } }
                    }
                    try await eventually(timeout: .seconds(20)) { runtime.residentWorkflows == 0 }
                    // Both parents take the two places and end; each cancels its three parked children.
                    for id in parents { try await runtime.send("end", to: id, payload: 7) }
                    for id in parents { #expect(try await runtime.handle(Closes.self, id: id).result() == 7) }
                    for id in parents {
                        for index in 0..<3 { try await runtime.waitForStatus(of: "\(id)/w\(index)", .cancelled) }
                    }
                }
            }
            #expect((0..<3).allSatisfy { ledger.count("compensate-\($0)") == 2 }, "each child compensates once")
        }
    }

    @Test("a parent's history replays without running anything, and names reserved for children are refused")
    func replayAndReservedNames() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, workflows: workflows(ledger)) { runtime throws in
                let sources = (0..<2).map { Scrape.Input(source: $0) }
                _ = try await runtime.start(Research.self, id: "h", input: .init(sources: sources)).result()
                let history = WorkflowHistory(id: "h", type: Research.name, events: try await runtime.history(of: "h"))
                let before = ledger.total
                let result = await WorkflowReplayer(workflows: workflows(ledger)).replay(history)
                #expect(result.isCompatible, "\(result)")
                #expect(ledger.total == before, "a step ran during the replay")
                // The JSON form keeps the link.
                let child = WorkflowHistory(id: "h/scrape-0", type: Scrape.name, events: try await runtime.history(of: "h/scrape-0"))
                #expect(try WorkflowHistory(json: try child.json()) == child)

                try await runtime.start(Patient.self, id: "q", input: 1)
                let refused = await errorOf { try await runtime.send("continuum.child:slow", to: "q", payload: ["status": "completed"]) }
                #expect((refused as? ContinuumError)?.code == .invalidArgument)
            }
        }
    }
}
