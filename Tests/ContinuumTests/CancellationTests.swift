@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

/// Reserves, then waits (a sleep, an event, or a retried step); on cancellation it releases the
/// reservation in a compensating step, then notifies (optionally blocking there).
struct Booking: Workflow {
    static let name = "booking"
    let ledger: Ledger
    let gate: Gate?

    enum Phase: String, Codable, Sendable { case sleep, event, backoff }

    func run(_ ctx: WorkflowContext, input: Phase) async throws -> String {
        try await ctx.step("reserve") { ledger.record("reserve") }
        do {
            switch input {
            case .sleep:
                try await ctx.sleep(for: .seconds(3 * 86_400))
            case .event:
                _ = try await ctx.waitForEvent("payment", as: String.self)
            case .backoff:
                try await ctx.step("charge", retry: .exponential(maxAttempts: 10, initial: .seconds(60), jitter: 0)) {
                    ledger.record("charge")
                    throw Flaky()
                }
            }
        } catch let error as ContinuumError where error.code == .cancelled {
            try await ctx.step("release") { ledger.record("release") }
            try await ctx.step("notify") {
                ledger.record("notify")
                if let gate { try await gate.wait() }
            }
            throw error
        }
        try await ctx.step("ship") { ledger.record("ship") }
        return "shipped"
    }
}


@Suite("Cancellation")
struct CancellationTests {
    @Test("cancelling during a sleep, an event wait or a backoff runs the compensation and ends cancelled", arguments: [Booking.Phase.sleep, .event, .backoff])
    func cancelWhileWaiting(phase: Booking.Phase) async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [Booking(ledger: ledger, gate: nil)]) { runtime throws in
                let handle = try await runtime.start(Booking.self, id: "b", input: phase)
                switch phase {
                case .sleep, .backoff: try await runtime.waitForTimers(1)
                case .event: try await runtime.waitForHistory(of: "b") { $0.count == 3 }
                }
                try await runtime.cancel("b", reason: "customer changed their mind")
                try await runtime.cancel("b")  // twice is once
                let error = await #expect(throws: ContinuumError.self) { try await handle.result() }
                #expect(error?.code == .cancelled)
                #expect(error?.message.contains("customer changed their mind") == true)
                #expect(try await runtime.status(of: "b")?.status == .cancelled)
                let kinds = try await runtime.history(of: "b").map(\.kind)
                #expect(kinds.filter { if case .cancelRequested = $0 { true } else { false } }.count == 1)
                #expect(kinds.last == .workflowCancelled(reason: "customer changed their mind"))
                let finished = await #expect(throws: ContinuumError.self) { try await runtime.cancel("b") }
                #expect(finished?.code == .workflowFinished)
            }
            #expect(ledger.count("release") == 1 && ledger.count("notify") == 1 && ledger.count("ship") == 0)
            if phase == .backoff { #expect(ledger.count("charge") == 1, "no attempt after cancellation") }
        }
    }

    @Test("a compensation step that completed does not run again after a restart")
    func compensationRunsOnce() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let ledger = Ledger()
            let gate = Gate()
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [Booking(ledger: ledger, gate: gate)]) { runtime throws in
                try await runtime.start(Booking.self, id: "b", input: .sleep)
                try await runtime.waitForTimers(1)
                try await runtime.cancel("b")
                try await gate.waitUntilArrived(1)
            }
            #expect(ledger.count("release") == 1)
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [Booking(ledger: ledger, gate: nil)]) { runtime throws in
                let error = await #expect(throws: ContinuumError.self) { try await runtime.handle(Booking.self, id: "b").result() }
                #expect(error?.code == .cancelled)
            }
            #expect(ledger.count("reserve") == 1)
            #expect(ledger.count("release") == 1, "a committed compensation step ran again")
            #expect(ledger.count("notify") == 2, "the interrupted compensation step runs again")
        }
    }

    @Test("cancelling an unknown workflow is a named error")
    func unknown() async throws {
        try await withTemporaryDirectory { path in
            try await WorkflowRuntime.withLMDB(path: path, clock: ManualClock(), workflows: []) { runtime throws in
                let error = await #expect(throws: ContinuumError.self) { try await runtime.cancel("ghost") }
                #expect(error?.code == .unknownWorkflow)
            }
        }
    }
}
