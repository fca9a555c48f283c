@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

private let day: Duration = .seconds(86_400)

/// Step, sleep three days, step.
struct Reminder: Workflow {
    static let name = "reminder"
    let ledger: Ledger

    func run(_ ctx: WorkflowContext, input: String) async throws -> String {
        try await ctx.step("signup") { ledger.record("signup") }
        try await ctx.sleep(for: day * 3)
        try await ctx.step("remind") { ledger.record("remind") }
        return "reminded \(input)"
    }
}

struct Feedback: Codable, Sendable, Equatable {
    var stars: Int
}

/// Waits for `count` "feedback" events (each with the given timeout), recording each step.
struct Survey: Workflow {
    static let name = "survey"
    let ledger: Ledger

    struct Input: Codable, Sendable {
        var count: Int
        var timeoutDays: Int?
        var stepFirst = false
    }

    func run(_ ctx: WorkflowContext, input: Input) async throws -> [Int?] {
        if input.stepFirst {
            try await ctx.sleep(for: .seconds(60), name: "warm-up")
        }
        var answers: [Int?] = []
        for _ in 0..<input.count {
            let feedback = try await ctx.waitForEvent("feedback", as: Feedback.self, timeout: input.timeoutDays.map { day * $0 })
            answers.append(feedback?.stars)
        }
        try await ctx.step("thank") { ledger.record("thank") }
        return answers
    }
}


@Suite("Durable sleep")
struct SleepTests {
    @Test("a three-day sleep ends after three days of the injected clock, not before")
    func sleepsThreeDays() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [Reminder(ledger: ledger)]) { runtime throws in
                let handle = try await runtime.start(Reminder.self, id: "r", input: "ada")
                try await runtime.waitForTimers(1)
                clock.advance(by: day * 2 + .seconds(86_399))
                try await Task.sleep(for: .milliseconds(30))
                #expect(ledger.count("remind") == 0, "the timer fired early")
                #expect(try await runtime.status(of: "r")?.status == .running)
                clock.advance(by: .seconds(1))
                #expect(try await handle.result() == "reminded ada")
                let history = try await runtime.history(of: "r")
                guard case .waitStarted(_, .timer, let due?) = history[2].kind, case .waitEnded(_, .fired(let lateness)) = history[3].kind else {
                    Issue.record("expected waitStarted and waitEnded at 2 and 3: \(history.map(\.kind))")
                    return
                }
                #expect(due == history[2].timestamp + (day * 3).components.seconds * 1_000_000_000)
                #expect(lateness == 0)
            }
            #expect(ledger.count("signup") == 1 && ledger.count("remind") == 1)
        }
    }

    @Test("a sleep survives a restart: not early before its deadline, once and at once after downtime past it")
    func sleepAcrossRestarts() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [Reminder(ledger: ledger)]) { runtime throws in
                try await runtime.start(Reminder.self, id: "r", input: "bo")
                try await runtime.waitForTimers(1)
            }
            // Restarted one day later: still asleep.
            clock.advance(by: day)
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [Reminder(ledger: ledger)]) { runtime throws in
                try await runtime.waitForTimers(1)
                #expect(ledger.count("remind") == 0)
            }
            // Down for five more days: the overdue timer fires at once on restart, with its lateness recorded.
            clock.advance(by: day * 5)
            let history = try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [Reminder(ledger: ledger)]) { runtime in
                #expect(try await runtime.handle(Reminder.self, id: "r").result() == "reminded bo")
                return try await runtime.history(of: "r")
            }
            #expect(ledger.count("signup") == 1 && ledger.count("remind") == 1)
            let fired = history.compactMap { event -> Int64? in
                if case .waitEnded(_, .fired(let lateness)) = event.kind { return lateness }
                return nil
            }
            #expect(fired == [(day * 3).components.seconds * 1_000_000_000])
        }
    }
}

@Suite("External events")
struct EventTests {
    @Test("an event sent while the workflow waits is delivered to the wait")
    func eventAfterWait() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [Survey(ledger: ledger)]) { runtime throws in
                let handle = try await runtime.start(Survey.self, id: "s", input: .init(count: 1))
                try await runtime.waitForHistory(of: "s") { $0.count == 2 }
                let receipt = try await runtime.send("feedback", to: "s", payload: Feedback(stars: 5))
                #expect(receipt.duplicate == false)
                #expect(try await handle.result() == [5])
            }
        }
    }

    @Test("events sent before the wait are buffered durably and delivered first in, first out")
    func eventsBeforeWait() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [Survey(ledger: ledger)]) { runtime throws in
                try await runtime.start(Survey.self, id: "s", input: .init(count: 2, stepFirst: true))
                try await runtime.waitForTimers(1)
                try await runtime.send("feedback", to: "s", payload: Feedback(stars: 1))
                try await runtime.send("feedback", to: "s", payload: Feedback(stars: 2))
            }
            // Across a restart, the buffered events are still there, in order.
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [Survey(ledger: ledger)]) { runtime throws in
                clock.advance(by: .seconds(60))
                #expect(try await runtime.handle(Survey.self, id: "s").result() == [1, 2])
            }
        }
    }

    @Test("a repeated dedup key appends nothing and answers with the first receipt, also when 50 sends race; with another event it is a conflict")
    func dedup() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [Survey(ledger: ledger)]) { runtime throws in
                let handle = try await runtime.start(Survey.self, id: "s", input: .init(count: 2, stepFirst: true))
                try await runtime.waitForTimers(1)
                let first = try await runtime.send("feedback", to: "s", payload: Feedback(stars: 3), dedupKey: "msg-1")
                let again = try await runtime.send("feedback", to: "s", payload: Feedback(stars: 3), dedupKey: "msg-1")
                #expect(again == EventReceipt(workflowID: "s", sequence: first.sequence, duplicate: true))
                // The key again with another payload or another name is refused, and appends nothing.
                for (name, stars) in [("feedback", 5), ("other", 3)] {
                    let error = await #expect(throws: ContinuumError.self) {
                        try await runtime.send(name, to: "s", payload: Feedback(stars: stars), dedupKey: "msg-1")
                    }
                    #expect(error?.code == .dedupKeyConflict)
                }
                let receipts = try await withThrowingTaskGroup(of: EventReceipt.self) { group in
                    for _ in 0..<50 {
                        group.addTask { try await runtime.send("feedback", to: "s", payload: Feedback(stars: 4), dedupKey: "msg-2") }
                    }
                    return try await group.reduce(into: [EventReceipt]()) { $0.append($1) }
                }
                #expect(receipts.filter { !$0.duplicate }.count == 1)
                #expect(Set(receipts.map(\.sequence)).count == 1)
                let received = try await runtime.history(of: "s").filter { if case .eventReceived = $0.kind { true } else { false } }
                #expect(received.count == 2)
                clock.advance(by: .seconds(60))
                #expect(try await handle.result() == [3, 4])
            }
        }
    }

    @Test("a wait with a timeout returns nil when the timeout passes first; a later event stays buffered")
    func timeout() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [Survey(ledger: ledger)]) { runtime throws in
                let handle = try await runtime.start(Survey.self, id: "s", input: .init(count: 1, timeoutDays: 7))
                try await runtime.waitForTimers(1)
                clock.advance(by: day * 7)
                #expect(try await handle.result() == [nil])
                let history = try await runtime.history(of: "s")
                #expect(history.contains { $0.kind == .waitEnded(StepKey(name: "event:feedback", occurrence: 0), outcome: .timedOut) })
                let error = await #expect(throws: ContinuumError.self) {
                    try await runtime.send("feedback", to: "s", payload: Feedback(stars: 1))
                }
                #expect(error?.code == .workflowFinished)
            }
        }
    }

    @Test("an event for an unknown workflow is refused with a named error and nothing is written")
    func unknownWorkflow() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [Survey(ledger: Ledger())]) { runtime throws in
                let error = await #expect(throws: ContinuumError.self) {
                    try await runtime.send("feedback", to: "nobody", payload: Feedback(stars: 1))
                }
                #expect(error?.code == .unknownWorkflow)
                #expect(try await runtime.list().isEmpty)
            }
        }
    }

    @Test("an event sent right after a restart reaches a workflow that recovery has not loaded yet")
    func sendDuringRecovery() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [Survey(ledger: ledger)]) { runtime throws in
                for index in 0..<20 { try await runtime.start(Survey.self, id: "s\(index)", input: .init(count: 1)) }
                try await eventually {
                    for index in 0..<20 where try await runtime.history(of: "s\(index)").count != 2 { return false }
                    return true
                }
            }
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [Survey(ledger: ledger)]) { runtime throws in
                for index in 0..<20 { try await runtime.send("feedback", to: "s\(index)", payload: Feedback(stars: index)) }
                for index in 0..<20 { #expect(try await runtime.handle(Survey.self, id: "s\(index)").result() == [index]) }
            }
            #expect(ledger.count("thank") == 20)
        }
    }
}
