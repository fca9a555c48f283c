@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

private func withParkingRuntime<R>(
    path: String, clock: ManualClock, workflows: [any Workflow], parkAfter: Duration = .milliseconds(50),
    _ body: (WorkflowRuntime) async throws -> R
) async throws -> R {
    try await WorkflowRuntime.withLMDB(
        path: path, workflows: workflows, runtime: .init(clock: clock, parkAfter: parkAfter, timerHorizon: .seconds(1)), body)
}

/// The resident set size of this process, in bytes.
func residentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
        let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
    else { return 0 }
    return kilobytes * 1024
}

@Suite("Parking", .serialized)
struct ParkingTests {
    @Test("a sleeping workflow leaves memory, and its timer brings it back to finish")
    func sleeperParkedAndWoken() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await withParkingRuntime(path: path, clock: clock, workflows: [Reminder(ledger: ledger)]) { runtime throws in
                let handle = try await runtime.start(Reminder.self, id: "r", input: "cy")
                try await runtime.waitForIndexedTimers(1)
                try await parkAll(runtime, clock: clock)
                #expect(runtime.pendingTimers == 0, "the parked workflow still sleeps in memory")
                #expect(try await runtime.status(of: "r")?.status == .running)
                clock.advance(by: .seconds(3 * 86_400))
                #expect(try await handle.result() == "reminded cy")
            }
            #expect(ledger.count("signup") == 1 && ledger.count("remind") == 1)
        }
    }

    @Test("an event wakes a parked workflow and is delivered")
    func eventWakesParked() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await withParkingRuntime(path: path, clock: clock, workflows: [Survey(ledger: ledger)]) { runtime throws in
                let handle = try await runtime.start(Survey.self, id: "s", input: .init(count: 2))
                try await runtime.waitForHistory(of: "s") { $0.count == 2 }
                try await parkAll(runtime, clock: clock)
                try await runtime.send("feedback", to: "s", payload: Feedback(stars: 4))
                try await runtime.waitForHistory(of: "s") { $0.count == 5 }
                try await parkAll(runtime, clock: clock)
                try await runtime.send("feedback", to: "s", payload: Feedback(stars: 5))
                #expect(try await handle.result() == [4, 5])
            }
            #expect(ledger.count("thank") == 1)
        }
    }

    @Test("after a restart, parked workflows stay in the store until their timers come due")
    func parkedNotRecoveredEagerly() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await withParkingRuntime(path: path, clock: clock, workflows: [Reminder(ledger: ledger)]) { runtime throws in
                for index in 0..<10 { try await runtime.start(Reminder.self, id: "r\(index)", input: "\(index)") }
                try await runtime.waitForIndexedTimers(10)
                try await parkAll(runtime, clock: clock)
            }
            try await withParkingRuntime(path: path, clock: clock, workflows: [Reminder(ledger: ledger)]) { runtime throws in
                try await Task.sleep(for: .milliseconds(100))
                #expect(runtime.residentWorkflows == 0, "recovery replayed parked workflows")
                clock.advance(by: .seconds(3 * 86_400))
                for index in 0..<10 { #expect(try await runtime.handle(Reminder.self, id: "r\(index)").result() == "reminded \(index)") }
            }
            #expect(ledger.count("remind") == 10)
        }
    }

    @Test("a parked workflow whose type is no longer registered stays parked at start; an event wakes it suspended, and is kept for when it runs again")
    func parkedOfUnknownType() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await withParkingRuntime(path: path, clock: clock, workflows: [Survey(ledger: ledger)]) { runtime throws in
                try await runtime.start(Survey.self, id: "s", input: .init(count: 1))
                try await runtime.waitForHistory(of: "s") { $0.count == 2 }
                try await parkAll(runtime, clock: clock)
            }
            try await withParkingRuntime(path: path, clock: clock, workflows: []) { runtime throws in
                try await Task.sleep(for: .milliseconds(100))
                #expect(runtime.residentWorkflows == 0, "recovery replayed a parked workflow")
                #expect(try await runtime.status(of: "s")?.status == .running)
                try await runtime.send("feedback", to: "s", payload: Feedback(stars: 3))
                try await eventually { try await runtime.suspension(of: "s") != nil }
                #expect(try await runtime.suspension(of: "s")?.code == "unknownWorkflowType")
                let kinds = try await runtime.history(of: "s").map(\.kind)
                #expect(kinds.contains { if case .eventReceived = $0 { true } else { false } }, "the event was dropped: \(kinds)")
            }
            try await withParkingRuntime(path: path, clock: clock, workflows: [Survey(ledger: ledger)]) { runtime throws in
                try await runtime.resume("s")
                #expect(try await runtime.handle(Survey.self, id: "s").result() == [3])
            }
            #expect(ledger.count("thank") == 1)
        }
    }

    @Test("no more workflows are in memory than maxResidentWorkflows; the others wait in the store, then all finish")
    func residencyLimit() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            let configuration = WorkflowRuntime.Configuration(
                clock: clock, parkAfter: .milliseconds(20), timerHorizon: .seconds(1), maxResidentWorkflows: 10)
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Reminder(ledger: ledger)], runtime: configuration) { runtime throws in
                let peak = try await withThrowingTaskGroup(of: Int.self) { group in
                    group.addTask {
                        var peak = 0
                        while !Task.isCancelled {
                            peak = max(peak, runtime.residentWorkflows)
                            // Parking runs on the clock: move it so that workflows waiting for room get it.
                            clock.advance(by: .milliseconds(50))
                            try? await Task.sleep(for: .milliseconds(1))
                        }
                        return peak
                    }
                    for index in 0..<100 { try await runtime.start(Reminder.self, id: "r\(index)", input: "\(index)") }
                    // All asleep (each parked to make room for the next), then all woken at once.
                    try await eventually(timeout: .seconds(60)) { try await runtime.store.timers(after: nil, limit: 101).count == 100 }
                    try await parkAll(runtime, clock: clock)
                    clock.advance(by: .seconds(3 * 86_400))
                    for index in 0..<100 { #expect(try await runtime.handle(Reminder.self, id: "r\(index)").result() == "reminded \(index)") }
                    group.cancelAll()
                    return try await group.next() ?? 0
                }
                #expect(peak <= 10, "\(peak) workflows were in memory at once")
                #expect(peak >= 5, "the limit was never approached (peak \(peak)): the test did not exercise it")
            }
            #expect(ledger.count("remind") == 100 && ledger.count("signup") == 100)
        }
    }

    @Test("many sleeping workflows cost disk, not memory; then their timers all fire")
    func manySleepers() async throws {
        let count = ProcessInfo.processInfo.environment["CONTINUUM_SLEEPERS"].flatMap(Int.init) ?? 100_000
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            let before = residentBytes()
            try await withParkingRuntime(path: path, clock: clock, workflows: [Reminder(ledger: ledger)]) { runtime throws in
                // Time moves while they start, so those already asleep park as the others start.
                try await withClockRunning(clock) {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for worker in 0..<100 {
                            group.addTask {
                                for index in stride(from: worker, to: count, by: 100) {
                                    try await runtime.start(Reminder.self, id: "many-\(index)", input: "\(index)")
                                }
                            }
                        }
                        try await group.waitForAll()
                    }
                }
                // Every workflow is asleep (its timer indexed), then every one has left memory.
                try await eventually(timeout: .seconds(120)) { try await runtime.store.timers(after: nil, limit: count + 1).count == count }
                try await parkAll(runtime, clock: clock, timeout: .seconds(120))
                let parked = residentBytes()
                print("parking test: \(count) sleeping workflows parked; RSS \(before / 1_048_576) MiB before, \(parked / 1_048_576) MiB parked")
                #expect(parked - before < 1_024 * 1_048_576, "resident memory grew by \((parked - before) / 1_048_576) MiB")
                clock.advance(by: .seconds(3 * 86_400))
                do {
                    try await eventually(timeout: .seconds(120)) { try await runtime.list(status: .completed, limit: count + 1).count == count }
                } catch {
                    let completed = try await runtime.list(status: .completed, limit: count + 1).count
                    let timers = try await runtime.store.timers(after: nil, limit: count + 1).count
                    Issue.record("\(completed) of \(count) completed; \(runtime.residentWorkflows) in memory, \(timers) timers indexed")
                }
            }
            #expect(ledger.count("remind") == count)
        }
    }
}
