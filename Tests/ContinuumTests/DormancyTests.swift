@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

/// A runtime whose waiting workflows become dormant after 20 ms of the clock (and park after
/// `parkAfter`, when given).
private func withDormancy<R>(
    path: String, clock: ManualClock, workflows: [any Workflow], parkAfter: Duration? = nil, _ body: (WorkflowRuntime) async throws -> R
) async throws -> R {
    var configuration = WorkflowRuntime.Configuration(clock: clock, parkAfter: parkAfter, timerHorizon: .seconds(1))
    configuration.dormantAfter = .milliseconds(20)
    return try await WorkflowRuntime.withLMDB(path: path, workflows: workflows, runtime: configuration, body)
}

/// Moves the clock until `count` workflows are dormant and no driver runs.
private func restAll(_ runtime: WorkflowRuntime, clock: ManualClock, count: Int, timeout: Duration = .seconds(30)) async throws {
    try await eventually(timeout: timeout) {
        if runtime.dormantWorkflows == count && runtime.drivenWorkflows == 0 { return true }
        clock.advance(by: .milliseconds(100))
        return false
    }
}

@Suite("Dormant workflows", .serialized)
struct DormancyTests {
    @Test("a sleeping workflow gives up its task but stays in memory, appends nothing, still counts as a waiting timer, and its timer wakes it to finish")
    func sleeperRestsAndWakes() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await withDormancy(path: path, clock: clock, workflows: [Reminder(ledger: ledger)]) { runtime throws in
                let handle = try await runtime.start(Reminder.self, id: "r", input: "cy")
                let asleep = try await runtime.waitForHistory(of: "r") { $0.contains { $0.kindName == "waitStarted" } }
                try await restAll(runtime, clock: clock, count: 1)
                #expect(runtime.residentWorkflows == 1, "a dormant workflow stays in memory")
                #expect(try await runtime.history(of: "r").count == asleep.count, "resting appended to the history")
                #expect(try await runtime.status(of: "r")?.status == .running)
                // Its sleep still counts as a waiting timer, as a test that moves the clock expects.
                #expect(runtime.pendingTimers == 1)
                try await runtime.waitForTimers(1, timeout: .seconds(1))
                clock.advance(by: .seconds(3 * 86_400))
                #expect(try await handle.result() == "reminded cy")
                #expect(runtime.pendingTimers == 0)
            }
            #expect(ledger.count("signup") == 1 && ledger.count("remind") == 1)
        }
    }

    @Test("an event wakes a dormant workflow, which replays from the state it kept and takes the event")
    func eventWakesDormant() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await withDormancy(path: path, clock: clock, workflows: [Survey(ledger: ledger)]) { runtime throws in
                let handle = try await runtime.start(Survey.self, id: "s", input: .init(count: 2))
                try await runtime.waitForHistory(of: "s") { $0.count == 2 }
                try await restAll(runtime, clock: clock, count: 1)
                try await runtime.send("feedback", to: "s", payload: Feedback(stars: 4))
                // The event with the end of the wait it takes (one append), then the next wait.
                let history = try await runtime.waitForHistory(of: "s") { $0.count == 5 }
                #expect(history.map(\.kindName) == ["workflowStarted", "waitStarted", "eventReceived", "waitEnded", "waitStarted"])
                try await restAll(runtime, clock: clock, count: 1)
                try await runtime.send("feedback", to: "s", payload: Feedback(stars: 5))
                #expect(try await handle.result() == [4, 5])
            }
            #expect(ledger.count("thank") == 1)
        }
    }

    @Test("an event for a dormant workflow that no wait takes is kept for a later wait, without waking it")
    func bufferedWhileDormant() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await withDormancy(path: path, clock: clock, workflows: [Survey(ledger: ledger)]) { runtime throws in
                let handle = try await runtime.start(Survey.self, id: "s", input: .init(count: 1, stepFirst: true))
                try await runtime.waitForTimers(1)
                try await restAll(runtime, clock: clock, count: 1)
                try await runtime.send("feedback", to: "s", payload: Feedback(stars: 3))
                #expect(runtime.dormantWorkflows == 1 && runtime.drivenWorkflows == 0, "an event no wait takes woke the workflow")
                clock.advance(by: .seconds(61))
                #expect(try await handle.result() == [3])
            }
            #expect(ledger.count("thank") == 1)
        }
    }

    @Test("cancelling a dormant workflow wakes it to compensate", arguments: [Booking.Phase.sleep, .event])
    func cancelDormant(phase: Booking.Phase) async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await withDormancy(path: path, clock: clock, workflows: [Booking(ledger: ledger, gate: nil)]) { runtime throws in
                let handle = try await runtime.start(Booking.self, id: "b", input: phase)
                try await runtime.waitForHistory(of: "b") { $0.contains { $0.kindName == "waitStarted" } }
                try await restAll(runtime, clock: clock, count: 1)
                try await runtime.cancel("b", reason: "changed plans")
                let error = await #expect(throws: ContinuumError.self) { try await handle.result() }
                #expect(error?.code == .cancelled)
                #expect(try await runtime.status(of: "b")?.status == .cancelled)
                try await eventually { runtime.residentWorkflows == 0 && runtime.dormantWorkflows == 0 }
            }
            #expect(ledger.count("reserve") == 1 && ledger.count("release") == 1 && ledger.count("notify") == 1 && ledger.count("ship") == 0)
        }
    }

    @Test("a dormant workflow is still parked after parkAfter, and its timer brings it back from the store")
    func dormantThenParked() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await withDormancy(path: path, clock: clock, workflows: [Reminder(ledger: ledger)], parkAfter: .seconds(2)) { runtime throws in
                let handle = try await runtime.start(Reminder.self, id: "r", input: "cy")
                try await runtime.waitForHistory(of: "r") { $0.contains { $0.kindName == "waitStarted" } }
                try await restAll(runtime, clock: clock, count: 1)
                try await parkAll(runtime, clock: clock)
                #expect(runtime.dormantWorkflows == 0 && runtime.pendingTimers == 0)
                #expect(try await runtime.store.load(id: "r")?.summary.status == .running)
                clock.advance(by: .seconds(3 * 86_400))
                #expect(try await handle.result() == "reminded cy")
            }
            #expect(ledger.count("signup") == 1 && ledger.count("remind") == 1)
        }
    }

    @Test("a query of a dormant workflow answers from memory; a reset takes it over and runs it again")
    func queryAndReset() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await withDormancy(path: path, clock: clock, workflows: [Tracked(ledger: ledger)]) { runtime throws in
                let handle = try await runtime.start(Tracked.self, id: "t", input: 2)
                let waiting = try await runtime.waitForHistory(of: "t") { $0.contains { $0.kindName == "waitStarted" } }
                try await restAll(runtime, clock: clock, count: 1)
                #expect(try await runtime.query("t", "progress", as: Progress.self) == Progress(done: 2, of: 2))
                #expect(runtime.dormantWorkflows == 1 && runtime.drivenWorkflows == 0, "a query woke the workflow")
                #expect(try await runtime.history(of: "t").count == waiting.count)
                // Reset to the second step: it runs again, then the workflow waits again.
                try await runtime.reset("t", toStep: "part-1")
                try await eventually { ledger.count("part") == 3 }
                try await runtime.waitForHistory(of: "t") { $0.filter { $0.kindName == "waitStarted" }.count == 2 }
                try await runtime.send("finish", to: "t", payload: 1)
                #expect(try await handle.result() == 2)
            }
            #expect(ledger.count("part") == 3)
        }
    }

    @Test("dormant workflows are recovered by the next run, and finish")
    func restartWithDormant() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await withDormancy(path: path, clock: clock, workflows: [Reminder(ledger: ledger)]) { runtime throws in
                for index in 0..<5 { try await runtime.start(Reminder.self, id: "r\(index)", input: "\(index)") }
                try await runtime.waitForTimers(5)
                try await restAll(runtime, clock: clock, count: 5)
            }
            try await withDormancy(path: path, clock: clock, workflows: [Reminder(ledger: ledger)]) { runtime throws in
                clock.advance(by: .seconds(3 * 86_400))
                for index in 0..<5 { #expect(try await runtime.handle(Reminder.self, id: "r\(index)").result() == "reminded \(index)") }
            }
            #expect(ledger.count("signup") == 5 && ledger.count("remind") == 5)
        }
    }

    @Test("workflows resting and woken over and over by events sent at once all take every event, in order")
    func soak() async throws {
        let count = 200
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            var configuration = WorkflowRuntime.Configuration(clock: clock, parkAfter: nil, timerHorizon: .seconds(1))
            configuration.dormantAfter = .zero
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Survey(ledger: ledger)], runtime: configuration) { runtime throws in
                // The clock moves all along, so workflows rest between (and while) events arrive.
                let peak = try await withClockRunning(clock, step: .milliseconds(300)) {
                    let sampler = Task {
                        var peak = 0
                        while !Task.isCancelled {
                            peak = max(peak, runtime.dormantWorkflows)
                            try? await Task.sleep(for: .milliseconds(1))
                        }
                        return peak
                    }
                    defer { sampler.cancel() }
                    for index in 0..<count { try await runtime.start(Survey.self, id: "s\(index)", input: .init(count: 3)) }
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for worker in 0..<8 {
                            group.addTask {
                                for index in stride(from: worker, to: count, by: 8) {
                                    for stars in 1...3 {
                                        try await runtime.send("feedback", to: "s\(index)", payload: Feedback(stars: stars))
                                        if (index + stars) % 3 == 0 { try await Task.sleep(for: .milliseconds(1)) }
                                    }
                                }
                            }
                        }
                        try await group.waitForAll()
                    }
                    for index in 0..<count {
                        #expect(try await runtime.handle(Survey.self, id: "s\(index)").result() == [1, 2, 3])
                    }
                    sampler.cancel()
                    return await sampler.value
                }
                #expect(peak >= 10, "only \(peak) workflows were dormant at once: the test did not exercise waking")
            }
            #expect(ledger.count("thank") == count)
        }
    }
}
