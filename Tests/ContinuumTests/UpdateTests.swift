@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

struct Item: Codable, Sendable {
    var name: String
    var quantity: Int
}

struct NoSuchUpdate: Error, CustomStringConvertible {
    var name: String
    var description: String { "no update named '\(name)'" }
}

/// Takes "add" updates until one adds "checkout", replying with the number of items so far;
/// refuses unknown update names and negative quantities before they are recorded.
struct Cart: Workflow {
    static let name = "cart"

    func validateUpdate(named name: String, payload: [UInt8]) throws {
        guard name == "add" else { throw NoSuchUpdate(name: name) }
        if let item = try? JSONDecoder().decode(Item.self, from: Data(payload)), item.quantity < 0 {
            throw ContinuumError(.invalidArgument, "a quantity cannot be negative")
        }
    }

    func run(_ ctx: WorkflowContext, input: String) async throws -> [String] {
        var items: [String] = []
        while !items.contains("checkout") {
            try await ctx.handleUpdate("add", as: Item.self) { item in
                items.append(item.name)
                return items.count
            }
        }
        return items
    }
}

@Suite("Updates")
struct UpdateTests {
    @Test("an update gets the workflow's reply; its dedup key records it once and repeats the reply; refusals record nothing")
    func updates() async throws {
        try await withTemporaryDirectory { path in
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Cart()]) { runtime throws in
                let handle = try await runtime.start(Cart.self, id: "c", input: "ada")
                #expect(try await runtime.update("c", "add", payload: Item(name: "pen", quantity: 1), dedupKey: "u1", as: Int.self) == 1)
                #expect(try await runtime.update("c", "add", payload: Item(name: "ink", quantity: 2), as: Int.self) == 2)
                // The same key again: the first reply, nothing new recorded.
                func received() async throws -> Int {
                    try await runtime.history(of: "c").count { $0.kindName == "eventReceived" }
                }
                let before = try await received()
                #expect(try await runtime.update("c", "add", payload: Item(name: "pen", quantity: 1), dedupKey: "u1", as: Int.self) == 1)
                #expect(try await received() == before)
                // Refused by the type's validation: nothing recorded.
                let negative = await errorOf { _ = try await runtime.update("c", "add", payload: Item(name: "pen", quantity: -1), as: Int.self) }
                #expect((negative as? ContinuumError)?.code == .updateRejected, "\(String(describing: negative))")
                let unknown = await errorOf { _ = try await runtime.update("c", "remove", payload: Item(name: "pen", quantity: 1), as: Int.self) }
                #expect((unknown as? ContinuumError)?.message.contains("no update named 'remove'") == true, "\(String(describing: unknown))")
                #expect(try await received() == before)
                // Recorded, but its payload does not decode: the body rejects it and goes on.
                let malformed = await errorOf { _ = try await runtime.update("c", "add", json: Array(#"{"name": 5}"#.utf8)) }
                #expect((malformed as? ContinuumError)?.code == .updateRejected, "\(String(describing: malformed))")
                // Updates to names reserved for the runtime cannot be forged as events.
                let forged = await errorOf { try await runtime.send("continuum.update:add", to: "c", payload: ["id": "x", "payload": "{}"]) }
                #expect((forged as? ContinuumError)?.code == .invalidArgument)

                #expect(try await runtime.update("c", "add", payload: Item(name: "checkout", quantity: 0), as: Int.self) == 3)
                #expect(try await handle.result() == ["pen", "ink", "checkout"])
                let late = await errorOf { _ = try await runtime.update("c", "add", payload: Item(name: "late", quantity: 1), as: Int.self) }
                #expect((late as? ContinuumError)?.code == .workflowFinished, "\(String(describing: late))")
                let nobody = await errorOf { _ = try await runtime.update("nobody", "add", payload: Item(name: "x", quantity: 1), as: Int.self) }
                #expect((nobody as? ContinuumError)?.code == .unknownWorkflow)
            }
        }
    }

    @Test("a typed event resent with its dedup key is a duplicate, whatever order the encoder would write its keys in")
    func typedResendIsDuplicate() async throws {
        struct Wide: Codable, Sendable { var a = 1, b = "two", c = 3.5, d = [4], e = ["f": 6], g = true }
        try await withTemporaryDirectory { path in
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Errand(ledger: Ledger())]) { runtime throws in
                try await runtime.start(Errand.self, id: "w", input: "x")
                let first = try await runtime.send("note", to: "w", payload: Wide(), dedupKey: "same")
                for _ in 0..<30 {
                    let again = try await runtime.send("note", to: "w", payload: Wide(), dedupKey: "same")
                    #expect(again.duplicate && again.sequence == first.sequence)
                }
            }
        }
    }

    @Test("an update wakes a parked workflow and gets its reply; one nobody takes in time is timedOut and stays recorded")
    func parkedAndUnanswered() async throws {
        try await withTemporaryDirectory { path in
            let clock = ManualClock()
            let configuration = WorkflowRuntime.Configuration(clock: clock, parkAfter: .milliseconds(50), timerHorizon: .seconds(1))
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Cart(), Errand(ledger: Ledger())], runtime: configuration) { runtime throws in
                try await runtime.start(Cart.self, id: "p", input: "cy")
                try await runtime.waitForHistory(of: "p") { $0.contains { $0.kindName == "waitStarted" } }
                try await parkAll(runtime, clock: clock)
                #expect(try await runtime.update("p", "add", payload: Item(name: "pen", quantity: 1), as: Int.self) == 1)

                // A workflow that never takes updates: the caller's wait ends, the update stays recorded.
                try await runtime.start(Errand.self, id: "a", input: "x")
                let error = await errorOf {
                    _ = try await runtime.update("a", "anything", payload: 1, dedupKey: "k", timeout: .milliseconds(200), as: Int.self)
                }
                #expect((error as? ContinuumError)?.code == .timedOut, "\(String(describing: error))")
                let recorded = try await runtime.history(of: "a").filter { if case .eventReceived(let name, _, "continuum.update:k") = $0.kind { name == "continuum.update:anything" } else { false } }
                #expect(recorded.count == 1)
            }
        }
    }
}
