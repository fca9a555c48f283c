@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Logging
import Testing

/// Returns a result of `input` bytes from a step that would be retried if it could be.
private struct Oversized: Workflow {
    static let name = "oversized"
    let ledger: Ledger

    struct Input: Codable, Sendable {
        var stepBytes: Int
        var outputBytes: Int
    }

    func run(_ ctx: WorkflowContext, input: Input) async throws -> String {
        let value: String
        do {
            value = try await ctx.step("big", retry: .exponential(maxAttempts: 5, initial: .milliseconds(1))) { () -> String in
                ledger.record("big")
                return String(repeating: "x", count: input.stepBytes)
            }
        } catch let error as ContinuumError {
            ledger.record("caught \(error.code)")
            value = "fallback"
        }
        _ = try await ctx.waitForEvent("go", as: String.self)
        return value + String(repeating: "y", count: input.outputBytes)
    }
}

private func limited(_ bytes: Int) -> WorkflowRuntime.Configuration {
    var configuration = WorkflowRuntime.Configuration()
    configuration.maxPayloadSize = bytes
    return configuration
}

@Suite("Bad input")
struct BadInputTests {
    @Test("an oversized input or event is refused with payloadTooLarge and nothing is stored")
    func oversizedStartAndEvent() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Oversized(ledger: ledger)], runtime: limited(1024)) { runtime in
                let padded = await errorOf {
                    _ = try await runtime.start(type: "oversized", id: "raw", json: Array(#"{"stepBytes": 1, "outputBytes": 0, "pad": "\#(String(repeating: "z", count: 2048))"}"#.utf8))
                }
                #expect((padded as? ContinuumError)?.code == .payloadTooLarge)
                #expect(try await runtime.status(of: "raw") == nil)
                let handle = try await runtime.start(Oversized.self, id: "w", input: .init(stepBytes: 10, outputBytes: 0))
                try await runtime.waitForHistory(of: "w") { $0.count == 3 }
                let before = try await runtime.history(of: "w")
                let error = await #expect(throws: ContinuumError.self) {
                    try await runtime.send("go", to: "w", payload: String(repeating: "e", count: 4096))
                }
                #expect(error?.code == .payloadTooLarge)
                #expect(error?.message.contains("maxPayloadSize") == true)
                #expect(try await runtime.history(of: "w") == before, "a refused event appended")
                try await runtime.send("go", to: "w", payload: "ok")
                #expect(try await handle.result() == String(repeating: "x", count: 10))
            }
        }
    }

    @Test("an oversized step result fails the step once, never retried, the same error live and on replay; an oversized output fails the workflow")
    func oversizedResultAndOutput() async throws {
        try await withTemporaryDirectory { path in
            let ledger = Ledger()
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Oversized(ledger: ledger)], runtime: limited(1024)) { runtime in
                _ = try await runtime.start(Oversized.self, id: "step", input: .init(stepBytes: 4096, outputBytes: 0))
                try await runtime.waitForHistory(of: "step") { $0.contains { $0.kindName == "waitStarted" } }
                #expect(ledger.count("big") == 1, "an oversized result was retried")
                let kinds = try await runtime.history(of: "step").map(\.kind)
                #expect(kinds.filter { if case .stepRetrying = $0 { true } else { false } }.isEmpty)
                let failures = kinds.compactMap { if case .stepFailed(_, let failure) = $0 { failure } else { nil } }
                #expect(failures.count == 1 && failures.first?.type == "ContinuumError.payloadTooLarge", "\(failures)")

                let output = try await runtime.start(Oversized.self, id: "output", input: .init(stepBytes: 600, outputBytes: 600))
                try await runtime.send("go", to: "output", payload: "ok")
                let outputError = await #expect(throws: ContinuumError.self) { try await output.result() }
                #expect(outputError?.message.contains("payloadTooLarge") == true, "\(outputError?.message ?? "")")
                #expect(try await runtime.status(of: "output")?.status == .failed)
            }
            // Replayed in a new runtime, the workflow code catches the same error as live.
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Oversized(ledger: ledger)], runtime: limited(1024)) { runtime in
                try await runtime.send("go", to: "step", payload: "ok")
                #expect(try await runtime.handle(Oversized.self, id: "step").result() == "fallback")
            }
            #expect(ledger.count("caught stepFailed") == 2, "live and replay differ")
            #expect(ledger.count("big") == 2, "one run for each workflow, none on replay")
        }
    }

    @Test("ids and event names with odd bytes are stored and found exactly; over the key limit or not NFC they are refused")
    func oddIDs() async throws {
        struct Echo: Workflow {
            static let name = "echo"
            func run(_ ctx: WorkflowContext, input: String) async throws -> String {
                let name = try await ctx.step("name") { input }
                return try await ctx.waitForEvent(name, as: String.self) ?? ""
            }
        }
        let odd = [
            "a\u{0}b", "a", "\u{202E}evil", "line\nbreak\ttab", "emoji 😀", "caf\u{E9}", String(repeating: "é", count: 255) + "x",
            "../../etc/passwd", "<script>", "\u{7F}\u{1B}[31m", String(repeating: "z", count: 511),
        ]
        try await withTemporaryDirectory { path in
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Echo()]) { runtime in
                for id in odd {
                    let handle = try await runtime.start(Echo.self, id: id, input: id.utf8.count > 256 ? "long" : id)
                    try await runtime.waitForHistory(of: id) { $0.count == 3 }
                    try await runtime.send(id.utf8.count > 256 ? "long" : id, to: id, payload: "for \(id.utf8.count)")
                    #expect(try await handle.result() == "for \(id.utf8.count)")
                }
                #expect(try await runtime.list(limit: 100).map(\.id).sorted() == odd.sorted(), "an id was altered or merged with another")
                let tooLong = await errorOf { try await runtime.start(Echo.self, id: String(repeating: "z", count: 512), input: "x") }
                #expect((tooLong as? ContinuumError)?.code == .invalidArgument)
                let decomposed = await errorOf { try await runtime.start(Echo.self, id: "cafe\u{301}", input: "x") }
                #expect((decomposed as? ContinuumError)?.code == .invalidArgument)
                #expect(try await runtime.list(limit: 100).count == odd.count)
            }
        }
    }

    @Test("a workflowStarted value whose trace context is cut short or claims 4 billion pairs is corruptedData")
    func traceContextBounds() throws {
        let started = BinaryCodec.encode(HistoryEvent(sequence: 0, timestamp: 1, kind: .workflowStarted(type: "t", input: [1])))
        let header = 5
        func withTail(_ tail: [UInt8]) -> [UInt8] {
            BinaryCodec.seal { writer in
                writer.bytes.append(contentsOf: started[header...])
                writer.bytes.append(contentsOf: tail)
            }
        }
        let pair: [UInt8] = [1, 0, 0, 0, UInt8(ascii: "k"), 1, 0, 0, 0, UInt8(ascii: "v")]
        let cases: [(String, [UInt8])] = [
            ("4 billion pairs", [0xFF, 0xFF, 0xFF, 0xFF]),
            ("a pair cut short", [1, 0, 0, 0] + pair.dropLast(3)),
            ("a count cut short", [1, 0]),
            ("a pair and then junk", [1, 0, 0, 0] + pair + [9]),
        ]
        for (what, value) in cases.map({ ($0.0, withTail($0.1)) }) {
            let error = #expect(throws: ContinuumError.self, "\(what)") { try BinaryCodec.decodeEvent(value, sequence: 0) }
            #expect(error?.code == .corruptedData, "\(what)")
        }
        // Zero pairs and one pair decode.
        #expect(try BinaryCodec.decodeEvent(withTail([0, 0, 0, 0]), sequence: 0).kind == .workflowStarted(type: "t", input: [1]))
        #expect(
            try BinaryCodec.decodeEvent(withTail([1, 0, 0, 0] + pair), sequence: 0).kind
                == .workflowStarted(type: "t", input: [1], traceContext: ["k": "v"]))
    }

    @Test("seeded random envelopes: the event codec decodes or names the damage, never crashes", arguments: 0..<20)
    func codecNeverCrashes(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        for _ in 0..<500 {
            let length = Int.random(in: 0...80, using: &random)
            let tag = UInt8.random(in: 0...13, using: &random)
            let timestamp = Int64.random(in: .min ... .max, using: &random)
            let noise = (0..<length).map { _ in UInt8.random(in: 0 ... .max, using: &random) }
            // A valid checksum over a random body: only the decoder's own checks stand in the way.
            let value = BinaryCodec.seal { writer in
                writer.write(tag)
                writer.write(timestamp)
                writer.bytes.append(contentsOf: noise)
            }
            do {
                let event = try BinaryCodec.decodeEvent(value, sequence: 1)
                let again = try BinaryCodec.decodeEvent(BinaryCodec.encode(event), sequence: 1)
                #expect(again == event, "seed \(seed): an event that decoded does not survive a round trip")
            } catch let error as ContinuumError {
                #expect(error.code == .corruptedData, "seed \(seed): \(error)")
            }
        }
    }
}

@Suite("Concurrency")
struct ConcurrencyTests {
    /// One step, then done: cancellation races its completion.
    struct Quick: Workflow {
        static let name = "quick"
        func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
            try await ctx.step("only") { input * 2 }
        }
    }

    /// Consumes `input` "n" events and returns their values in order.
    struct Collector: Workflow {
        static let name = "collector"
        func run(_ ctx: WorkflowContext, input: Int) async throws -> [Int] {
            var values: [Int] = []
            for _ in 0..<input {
                if let value = try await ctx.waitForEvent("n", as: Int.self) { values.append(value) }
            }
            return values
        }
    }

    @Test("cancellation racing completion: one terminal state, and each caller learns the same one")
    func cancelRacesCompletion() async throws {
        try await withTemporaryDirectory { path in
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Quick()]) { runtime in
                for index in 0..<60 {
                    let id = "q\(index)"
                    let handle = try await runtime.start(Quick.self, id: id, input: index)
                    async let cancelled: (any Error)? = errorOf { try await runtime.cancel(id, reason: "race") }
                    async let result: Result<Int, any Error> = { () async -> Result<Int, any Error> in
                        do { return .success(try await handle.result()) } catch { return .failure(error) }
                    }()
                    let (cancelError, outcome) = await (cancelled, result)
                    let status = try await runtime.status(of: id)?.status
                    let terminal = try await runtime.history(of: id).filter {
                        switch $0.kind {
                        case .workflowCompleted, .workflowFailed, .workflowCancelled: true
                        default: false
                        }
                    }
                    #expect(terminal.count == 1, "\(id): \(terminal.count) terminal events")
                    switch outcome {
                    case .success(let value):
                        #expect(value == index * 2 && status == .completed)
                    case .failure(let error):
                        #expect((error as? ContinuumError)?.code == .cancelled && status == .cancelled, "\(id): \(error)")
                    }
                    if let cancelError {
                        // Refused only because the workflow had already completed.
                        #expect((cancelError as? ContinuumError)?.code == .workflowFinished && status == .completed, "\(cancelError)")
                    }
                }
            }
        }
    }

    @Test("twenty senders racing on one workflow: every acknowledged event is consumed once, in commit order")
    func manySenders() async throws {
        try await withTemporaryDirectory { path in
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Collector()]) { runtime in
                let senders = 20
                let each = 10
                let handle = try await runtime.start(Collector.self, id: "c", input: senders * each)
                let receipts = try await withThrowingTaskGroup(of: [(Int, EventReceipt)].self) { group in
                    for sender in 0..<senders {
                        group.addTask {
                            var receipts: [(Int, EventReceipt)] = []
                            for index in 0..<each {
                                let value = sender * 1000 + index
                                // Every send twice with its key, as a retrying sender would.
                                let receipt = try await runtime.send("n", to: "c", payload: value, dedupKey: "k\(value)")
                                let again = try await runtime.send("n", to: "c", payload: value, dedupKey: "k\(value)")
                                #expect(again.sequence == receipt.sequence && again.duplicate)
                                receipts.append((value, receipt))
                            }
                            return receipts
                        }
                    }
                    return try await group.reduce(into: []) { $0 += $1 }
                }
                #expect(Set(receipts.map(\.1.sequence)).count == senders * each, "two events share a sequence number")
                let values = try await handle.result()
                #expect(values == receipts.sorted { $0.1.sequence < $1.1.sequence }.map(\.0))
            }
        }
    }
}

extension ConcurrencyTests {
    /// Each round: a step whose retry backoff is already due when it begins, a sleep due at
    /// once, and an event that a sender races with the wait for it.
    struct Racer: Workflow {
        static let name = "racer"
        struct Flaky: Error {}
        func run(_ ctx: WorkflowContext, input rounds: Int) async throws -> Int {
            var total = 0
            for round in 0..<rounds {
                total += try await ctx.step("flaky-\(round)", retry: .exponential(maxAttempts: 2, initial: .zero, jitter: 0)) { step in
                    guard step.attempt > 1 else { throw Flaky() }
                    return round
                }
                try await ctx.sleep(for: .zero, name: "nap-\(round)")
                total += try await ctx.waitForEvent("go", as: Int.self) ?? 0
            }
            return total
        }
    }

    @Test("a timer or event that ends a wait while the wait begins always wakes it")
    func waitsBeginAsTheyEnd() async throws {
        // The soak hung on this once in ~10,000 launches: the wait registered itself after a
        // hop off the workflow's actor, and a timer that fired in that gap woke nobody. Here
        // thousands of waits end as they begin; one lost wake-up leaves its workflow waiting
        // until the deadline below fails the test.
        let workflows = 60
        let rounds = 25
        var quiet = Logger(label: "racer")
        quiet.logLevel = .warning  // not a notice per retry
        try await withTemporaryDirectory { path in
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Racer()], runtime: .init(logger: quiet)) { runtime in
                let outcome = try await withThrowingTaskGroup(of: Bool.self) { group in
                    group.addTask {
                        try await withThrowingTaskGroup(of: Void.self) { workers in
                            for index in 0..<workflows {
                                workers.addTask {
                                    let id = "racer-\(index)"
                                    let handle = try await runtime.start(Racer.self, id: id, input: rounds)
                                    for round in 0..<rounds { try await runtime.send("go", to: id, payload: round) }
                                    #expect(try await handle.result() == 2 * (0..<rounds).reduce(0, +))
                                }
                            }
                            try await workers.waitForAll()
                        }
                        return true
                    }
                    group.addTask {
                        try await Task.sleep(for: .seconds(60))
                        return false
                    }
                    defer { group.cancelAll() }
                    return try await group.next() ?? false
                }
                if !outcome {
                    let stuck = try await runtime.list(status: .running, limit: 10).map(\.id)
                    Issue.record("workflows still waiting after 60 s (a lost wake-up): \(stuck)")
                }
            }
        }
    }
}
