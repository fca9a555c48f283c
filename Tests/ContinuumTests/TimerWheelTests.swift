@testable @_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

private let millisecond: Int64 = 1_000_000
private let second: Int64 = 1_000 * millisecond
private let start: Int64 = 1_767_225_600 * second

@Suite("Timer wheel")
struct TimerWheelTests {
    /// Runs the wheel against a sorted list of the same timers, advancing by seeded random
    /// steps from a millisecond to two minutes: at every step the wheel must fire exactly the
    /// timers due by then, in due order.
    @Test("fires exactly the timers due, in due order, never early", arguments: 0..<8)
    func matchesReference(seed: UInt64) {
        var random = SeededGenerator(seed: seed)
        // Odd seeds run before 1970, where ticks and turns are negative.
        let start = seed % 2 == 0 ? start : -start
        var wheel = TimerWheel<Int>(now: start)
        var reference: [(due: Int64, value: Int)] = []
        for value in 0..<500 {
            // Spread over levels 0 to 3: the next second, minutes, hours.
            let spans: [Int64] = [second, 300 * second, 6 * 3_600 * second]
            let due = start + Int64.random(in: 0...spans.randomElement(using: &random)!, using: &random)
            wheel.insert(due: due, payload: value)
            reference.append((due, value))
        }
        reference.sort { ($0.due, $0.value) < ($1.due, $1.value) }
        var now = start
        var fired: [Int] = []
        while !reference.isEmpty {
            // Mostly short steps (walked tick by tick), some long ones (a jump).
            let step = Bool.random(using: &random) ? 500 * millisecond : 120 * second
            now += Int64.random(in: 1...step, using: &random)
            let batch = wheel.advance(to: now)
            #expect(batch.allSatisfy { $0.due <= now }, "a timer fired early")
            #expect(zip(batch, batch.dropFirst()).allSatisfy { $0.due <= $1.due }, "a batch is out of due order")
            let expected = reference.prefix { $0.due <= now }
            #expect(batch.map(\.payload) == expected.map(\.value))
            if let earliest = reference.dropFirst(expected.count).first?.due {
                #expect((wheel.nextWake ?? .max) <= earliest, "the next wake is after the earliest timer")
            }
            reference.removeFirst(expected.count)
            fired += batch.map(\.payload)
        }
        #expect(fired.count == 500 && Set(fired).count == 500, "a timer fired twice or not at all")
        #expect(wheel.isEmpty)
    }

    @Test("a far timer cascades down the levels and fires in its own millisecond")
    func cascades() {
        var wheel = TimerWheel<String>(now: start)
        func level() -> Int? { (0...4).first { wheel.count(atLevel: $0) == 1 } }
        let due = start + 3 * 3_600 * second + 7 * millisecond
        wheel.insert(due: due, payload: "far")
        // Three hours is beyond level 1's 65 s (where it sits depends on how `start` falls in the turns).
        var levels = [level()]
        for before in [3_600 * second, 70 * second, 200 * millisecond, 1] {
            #expect(wheel.advance(to: due - before).isEmpty, "fired \(before) ns early")
            levels.append(level())
        }
        #expect(levels.first.map { ($0 ?? 0) >= 2 } == true)
        #expect(levels.compactMap { $0 } == levels.compactMap { $0 }.sorted(by: >), "a timer moved up a level: \(levels)")
        #expect(Set(levels.compactMap { $0 }).count >= 3, "the timer did not cascade: \(levels)")
        #expect(wheel.advance(to: due).map(\.payload) == ["far"])
        #expect(wheel.isEmpty)
    }

    @Test("a timer past the top level waits in the overflow list and still fires")
    func overflow() {
        var wheel = TimerWheel<String>(now: start)
        let due = start + 400 * 86_400 * second
        wheel.insert(due: due, payload: "next year")
        #expect(wheel.count(atLevel: 4) == 1)
        #expect(wheel.advance(to: due - second).isEmpty)
        #expect(wheel.advance(to: due).map(\.payload) == ["next year"])
    }

    @Test("a clock jump fires every overdue timer once, in due order, and keeps the rest")
    func clockJump() {
        var wheel = TimerWheel<Int>(now: start)
        for value in 0..<1_000 { wheel.insert(due: start + Int64(1_000 - value) * 300 * second, payload: value) }
        let jump = start + 2 * 86_400 * second  // two days later; the timers span 3.5 days
        let fired = wheel.advance(to: jump)
        #expect(fired.map(\.due) == fired.map(\.due).sorted())
        #expect(fired.count == 576 && fired.allSatisfy { $0.due <= jump })
        #expect(wheel.count == 424)
        let rest = wheel.advance(to: jump + 2 * 86_400 * second)
        #expect(rest.count == 424 && Set(fired.map(\.payload) + rest.map(\.payload)).count == 1_000)
    }

    @Test("a removed timer never fires; a timer in the past fires at the next advance")
    func removeAndPast() {
        var wheel = TimerWheel<String>(now: start)
        let gone = wheel.insert(due: start + 10 * millisecond, payload: "gone")
        wheel.insert(due: start + 20 * millisecond, payload: "kept")
        #expect(wheel.remove(gone)?.payload == "gone")
        #expect(wheel.remove(gone) == nil)
        #expect(wheel.advance(to: start + 15 * millisecond).isEmpty)
        wheel.insert(due: start - second, payload: "overdue")
        #expect(wheel.advance(to: start + 15 * millisecond).map(\.payload) == ["overdue"])
        #expect(wheel.advance(to: start + 20 * millisecond).map(\.payload) == ["kept"])
    }

    @Test("the next wake is the earliest due time near, and no later than a far timer's cascade")
    func nextWake() {
        var wheel = TimerWheel<String>(now: start)
        #expect(wheel.nextWake == nil)
        wheel.insert(due: start + 90 * second, payload: "far")
        let wake = wheel.nextWake ?? .max
        #expect(wake > start && wake <= start + 90 * second)
        wheel.insert(due: start + 5 * millisecond + 3, payload: "near")
        #expect(wheel.nextWake == start + 5 * millisecond + 3)
    }
}

@Suite("Timer service")
struct TimerServiceTests {
    /// Runs a timer service on `clock` for the duration of `body`.
    private func withTimers<R>(_ clock: ManualClock, _ body: (TimerService) async throws -> R) async throws -> R {
        let service = TimerService(clock: clock)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await service.run(wake: { _ in }) }
            defer { group.cancelAll() }
            return try await body(service)
        }
    }

    @Test("a sleep of three days ends when the manual clock reaches it, not a nanosecond before")
    func manualClock() async throws {
        let clock = ManualClock()
        try await withTimers(clock) { timers in
            let due = clock.now() + 3 * 86_400 * second
            async let firedAt = timers.sleep(until: due)
            async let justBefore = timers.sleep(until: due - 1)
            try await eventually { timers.sleeping == 2 }
            clock.advance(toNanoseconds: due - 1)
            // The driver has processed that moment: the earlier timer fired, the later one did not.
            #expect(try await justBefore == due - 1)
            #expect(timers.sleeping == 1)
            clock.advance(toNanoseconds: due + 5)
            #expect(try await firedAt == due + 5)
        }
    }

    @Test("an earlier timer wakes a driver sleeping until a later one")
    func doorbell() async throws {
        let clock = ManualClock()
        try await withTimers(clock) { timers in
            let now = clock.now()
            async let late = timers.sleep(until: now + 86_400 * second)
            try await eventually { timers.sleeping == 1 }
            async let early = timers.sleep(until: now + second)
            try await eventually { timers.sleeping == 2 }
            clock.advance(by: .seconds(1))
            #expect(try await early == now + second)
            #expect(timers.sleeping == 1)
            clock.advance(by: .seconds(86_400))
            #expect(try await late == now + 86_401 * second)
        }
    }

    @Test("a cancelled sleep leaves the wheel at once")
    func cancellation() async throws {
        let clock = ManualClock()
        try await withTimers(clock) { timers in
            let sleeper = Task { try await timers.sleep(until: clock.now() + 60 * second) }
            try await eventually { timers.scheduled == 1 }
            sleeper.cancel()
            await #expect(throws: CancellationError.self) { try await sleeper.value }
            #expect(timers.scheduled == 0)
        }
    }
}

@Suite("Timer horizon", .serialized)
struct TimerHorizonTests {
    @Test("parked workflows' timers are read from the store one horizon at a time as time moves")
    func horizon() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            let configuration = WorkflowRuntime.Configuration(clock: clock, parkAfter: .milliseconds(20), timerHorizon: .seconds(60))
            // Three days of sleep for every workflow, started an hour apart: by the time the
            // last one parks, the first is due in 2 days and 22 hours, the last in three days.
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Reminder(ledger: ledger)], runtime: configuration) { runtime throws in
                for index in 0..<3 {
                    try await runtime.start(Reminder.self, id: "r\(index)", input: "\(index)")
                    try await runtime.waitForIndexedTimers(index + 1)
                    try await parkAll(runtime, clock: clock)
                    clock.advance(by: .seconds(3_600))
                }
            }
            // A restart reads only the horizon: none of the three is due within it.
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Reminder(ledger: ledger)], runtime: configuration) { runtime throws in
                try await eventually { runtime.timers.loadedHorizon >= clock.now() }
                #expect(runtime.timers.scheduled == 0, "a far timer was loaded into memory")
                // Move to 30 s before the first is due: it enters the wheel, the others do not.
                let firstDue = try #require(try await runtime.history(of: "r0").compactMap(\.timerDue).first)
                clock.advance(toNanoseconds: firstDue - 30 * second)
                try await eventually { runtime.timers.scheduled == 1 }
                #expect(ledger.count("remind") == 0, "a timer fired early")
                clock.advance(toNanoseconds: firstDue)
                #expect(try await runtime.handle(Reminder.self, id: "r0").result() == "reminded 0")
                #expect(ledger.count("remind") == 1)
                // Then the others, each in its turn (parking them moved the clock a little more).
                clock.advance(by: .seconds(2 * 3_600 + 60))
                #expect(try await runtime.handle(Reminder.self, id: "r1").result() == "reminded 1")
                #expect(try await runtime.handle(Reminder.self, id: "r2").result() == "reminded 2")
            }
            #expect(ledger.count("remind") == 3)
        }
    }

    @Test("two waits with the same deadline in one workflow keep its index entry until both end")
    func sharedDeadline() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [TwinWaits()]) { runtime throws in
                let handle = try await runtime.start(TwinWaits.self, id: "t", input: 0)
                try await runtime.waitForTimers(2)
                try await runtime.send("first", to: "t", payload: 1)
                try await eventually { runtime.pendingTimers == 1 }
                #expect(try await runtime.store.timers(after: nil, limit: 10).count == 1, "the shared deadline left the index")
                clock.advance(by: .seconds(60))
                #expect(try await handle.result() == 1)
                #expect(try await runtime.store.timers(after: nil, limit: 10).isEmpty, "a finished workflow left a timer behind")
            }
        }
    }
}

/// Waits for "first" and "second" at once, both timing out a minute later (the same deadline
/// on a manual clock).
private struct TwinWaits: Workflow {
    static let name = "twin-waits"

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        async let first = ctx.waitForEvent("first", as: Int.self, timeout: .seconds(60))
        async let second = ctx.waitForEvent("second", as: Int.self, timeout: .seconds(60))
        let (a, b) = try await (first, second)
        return (a ?? 0) + (b ?? 0)
    }
}

extension HistoryEvent {
    /// The deadline of a timer wait this event starts.
    fileprivate var timerDue: Int64? {
        if case .waitStarted(_, .timer, let due) = kind { return due }
        return nil
    }
}
