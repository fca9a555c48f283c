@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

/// What a schedule starts: records the slot it ran for, or waits for "done" when told to.
struct Report: Workflow {
    static let name = "report"
    let ledger: Ledger

    struct Input: Codable, Sendable {
        var title: String
        var hold = false
    }

    func run(_ ctx: WorkflowContext, input: Input) async throws -> String {
        try await ctx.step("write") { ledger.record("\(ctx.workflowID)") }
        if input.hold { _ = try await ctx.waitForEvent("done", as: Int.self) }
        return input.title
    }
}

/// Starts a runtime on `clock` over the store in `path`.
private func withScheduler(
    _ path: String, _ clock: ManualClock, _ ledger: Ledger, _ body: (WorkflowRuntime) async throws -> Void
) async throws {
    try await WorkflowRuntime.withLMDB(path: path, workflows: [Report(ledger: ledger)], runtime: .init(clock: clock, parkAfter: nil), body)
}

/// Moves `clock` a minute at a time, `minutes` times, waiting after each move until the
/// schedule's workflow sleeps again.
private func advance(_ clock: ManualClock, _ runtime: WorkflowRuntime, minutes: Int) async throws {
    for _ in 0..<minutes {
        clock.advance(by: .seconds(60))
        try await runtime.waitForTimers(1)
    }
}

@Suite("Schedules", .serialized)
struct ScheduleTests {
    @Test("a schedule starts its workflow once per slot under the slot's id; it is listed with its next times, replaced and deleted")
    func firesPerSlot() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()  // 2026-01-01T00:00:00Z
            let ledger = Ledger()
            try await withScheduler(path, clock, ledger) { runtime throws in
                try await runtime.schedule("minutely", cron: "* * * * *", workflow: Report.self, input: .init(title: "t"))
                try await runtime.waitForTimers(1)
                let info = try #require(try await runtime.schedule(named: "minutely"))
                #expect(info.next.first?.formatted(.iso8601) == "2026-01-01T00:01:00Z" && info.next.count == 5)
                try await advance(clock, runtime, minutes: 3)
                for minute in 1...3 {
                    let id = "minutely@2026-01-01T00:0\(minute):00Z"
                    try await runtime.waitForStatus(of: id, .completed)
                }
                #expect(try await runtime.schedules().map(\.schedule.name) == ["minutely"])
                // Replaced: every five minutes from now on.
                try await runtime.schedule("minutely", cron: "*/5 * * * *", workflow: Report.self, input: .init(title: "t"))
                try await runtime.waitForTimers(1)
                let replaced = try #require(try await runtime.schedule(named: "minutely"))
                #expect(replaced.schedule.cron == "*/5 * * * *" && replaced.next.first?.formatted(.iso8601) == "2026-01-01T00:05:00Z")
                try await advance(clock, runtime, minutes: 2)
                try await runtime.waitForStatus(of: "minutely@2026-01-01T00:05:00Z", .completed)
                #expect(try await runtime.status(of: "minutely@2026-01-01T00:04:00Z") == nil)
                // Deleted: nothing more starts; it can be created again under its name.
                try await runtime.unschedule("minutely")
                #expect(try await runtime.schedules().isEmpty)
                clock.advance(by: .seconds(600))
                try await Task.sleep(for: .milliseconds(50))
                #expect(try await runtime.status(of: "minutely@2026-01-01T00:10:00Z") == nil)
                try await runtime.schedule("minutely", cron: "0 * * * *", workflow: Report.self, input: .init(title: "again"))
                #expect(try await runtime.schedule(named: "minutely")?.schedule.cron == "0 * * * *")
            }
            #expect(ledger.total == 4, "\(ledger.names.sorted())")
        }
    }

    @Test("after downtime, missed slots run as the catch-up policy says: all (bounded), the latest, or none", arguments: [
        (CatchUpPolicy.all(max: 3), 3), (.latest, 1), (.skip, 0),
    ])
    func catchUp(policy: CatchUpPolicy, expected: Int) async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await withScheduler(path, clock, ledger) { runtime throws in
                // Overlap allowed: the caught-up slots start one after another, each before the last ended.
                try await runtime.schedule("s", cron: "*/10 * * * *", workflow: Report.self, input: .init(title: "t"), catchUp: policy, overlap: .allow)
                try await runtime.waitForTimers(1)
            }
            // Nobody runs for an hour and five minutes: six slots come and go.
            clock.advance(by: .seconds(3_900))
            try await withScheduler(path, clock, ledger) { runtime throws in
                try await runtime.waitForTimers(1)
                let info = try #require(try await runtime.schedule(named: "s"))
                #expect(info.started == expected && info.skipped == 6 - expected, "\(info)")
                #expect(info.next.first?.formatted(.iso8601) == "2026-01-01T01:10:00Z")
            }
            #expect(ledger.total == expected)
            if expected > 0 { #expect(ledger.count("s@2026-01-01T01:00:00Z") == 1) }
        }
    }

    @Test("a slot whose previous workflow still runs is skipped with overlap .skip, started with .allow")
    func overlap() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await withScheduler(path, clock, ledger) { runtime throws in
                try await runtime.schedule("held", cron: "* * * * *", workflow: Report.self, input: .init(title: "t", hold: true))
                try await runtime.schedule("both", cron: "* * * * *", workflow: Report.self, input: .init(title: "t", hold: true), overlap: .allow)
                try await runtime.waitForTimers(2)
                for _ in 0..<2 {
                    clock.advance(by: .seconds(60))
                    try await runtime.waitForTimers(2)
                }
                try await runtime.waitForHistory(of: "both@2026-01-01T00:02:00Z") { $0.contains { $0.kindName == "waitStarted" } }
                #expect(try await runtime.status(of: "held@2026-01-01T00:01:00Z")?.status == .running)
                #expect(try await runtime.status(of: "held@2026-01-01T00:02:00Z") == nil)
                #expect(try await runtime.schedule(named: "held")?.skipped == 1)
            }
        }
    }

    @Test("a slot whose workflow cannot start (its type not registered now) is skipped, and the schedule goes on")
    func failedSlotSkipped() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await withScheduler(path, clock, ledger) { runtime throws in
                try await runtime.schedule("s", cron: "* * * * *", workflow: Report.self, input: .init(title: "t"))
                try await runtime.waitForTimers(1)
            }
            // A build without the workflow's type: the next slot cannot start it.
            try await WorkflowRuntime.withLMDB(path: path, workflows: [], runtime: .init(clock: clock, parkAfter: nil)) { runtime throws in
                try await runtime.waitForTimers(1)
                clock.advance(by: .seconds(60))
                try await eventually { try await runtime.schedule(named: "s")?.skipped == 1 }
                #expect(try await runtime.status(of: "continuum.schedule:s")?.status == .running)
            }
            // The type is back: the next slot starts it.
            try await withScheduler(path, clock, ledger) { runtime throws in
                try await runtime.waitForTimers(1)
                clock.advance(by: .seconds(60))
                try await runtime.waitForStatus(of: "s@2026-01-01T00:02:00Z", .completed)
            }
        }
    }

    @Test("a schedule is checked before anything is stored")
    func refusals() async throws {
        try await withTemporaryDirectory { path in
            try await withScheduler(path, ManualClock(), Ledger()) { runtime throws in
                let cron = await errorOf { try await runtime.schedule(Schedule(name: "x", cron: "61 * * * *", workflow: "report", input: #"{"title":"t"}"#)) }
                #expect((cron as? ContinuumError)?.code == .invalidArgument)
                let zone = await errorOf { try await runtime.schedule(Schedule(name: "x", cron: "* * * * *", timeZone: "Mars/Olympus", workflow: "report", input: #"{"title":"t"}"#)) }
                #expect((zone as? ContinuumError)?.code == .invalidArgument)
                let type = await errorOf { try await runtime.schedule(Schedule(name: "x", cron: "* * * * *", workflow: "nope", input: "{}")) }
                #expect((type as? ContinuumError)?.code == .unknownWorkflowType)
                let input = await errorOf { try await runtime.schedule(Schedule(name: "x", cron: "* * * * *", workflow: "report", input: #"{"nope":1}"#)) }
                #expect((input as? ContinuumError)?.code == .payloadCoding)
                let missing = await errorOf { try await runtime.unschedule("x") }
                #expect((missing as? ContinuumError)?.code == .unknownWorkflow)
                #expect(try await runtime.list(limit: 10).isEmpty)
                #expect(!runtime.workflowTypes.contains("continuum.schedule"))
            }
        }
    }
}
