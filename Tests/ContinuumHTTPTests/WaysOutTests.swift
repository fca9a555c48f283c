@_spi(Testing) import Continuum
import ContinuumHTTP
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// Runs the steps its code names, then waits for a `finish` event: deploying it with other
/// `steps` under the same name is a code change that suspends the workflows v1 started.
struct Evolving: Workflow {
    static let name = "evolving"
    let steps: [String]

    func run(_ ctx: WorkflowContext, input: Int) async throws -> [String] {
        var done: [String] = []
        for step in steps { done.append(try await ctx.step(step) { "\(step)-done" }) }
        _ = try await ctx.waitForEvent("finish", as: String.self)
        return done
    }

    static let v1 = Evolving(steps: ["a", "b"])
    /// Step "b" renamed "x": replaying v1's history suspends at call 1.
    static let v2 = Evolving(steps: ["a", "x"])
}

/// Starts workflows `ids` with `original` in a store in `path`, each until it waits for
/// `finish` (with v1: started, a, b, waiting), then runs `body` over the API with `deployed`
/// registered instead, once those workflows are suspended when `deployed` does not match them.
func withSuspended(
    _ ids: [String], path: String, original: Evolving = .v1, deployed: Evolving = .v2, _ configuration: ContinuumAPI.Configuration = .init(),
    routes: @Sendable (Router<BasicRequestContext>) -> Void = { _ in },
    _ body: @Sendable (any TestClientProtocol, WorkflowRuntime) async throws -> Void
) async throws {
    try await WorkflowRuntime.withLMDB(path: path, workflows: [original]) { runtime throws in
        for id in ids {
            try await runtime.start(Evolving.self, id: id, input: 1)
            try await eventually { try await runtime.history(of: id).count == original.steps.count + 2 }
        }
    }
    try await withAPI(path: path, configuration, workflows: [deployed], routes: routes) { client, runtime in
        if deployed.steps != original.steps {
            for id in ids { try await eventually { try await runtime.status(of: id)?.status == .suspended } }
        }
        try await body(client, runtime)
    }
}

/// The actions (resume, reset, fork) a history records, in order.
func actions(_ events: [HistoryEvent]) -> [String] {
    events.compactMap { event in
        switch event.kind {
        case .workflowResumed(let action): "resumed by \(action.by): \(action.reason)"
        case .workflowReset(let target, let generation, let action): "reset to \(target) (\(generation)) by \(action.by): \(action.reason)"
        case .workflowForked(let from, let sequence, let action): "forked from \(from) at \(sequence) by \(action.by): \(action.reason)"
        default: nil
        }
    }
}

extension HTTPTests {
    @Test("a suspended workflow is listed, says where its code stopped matching, and resumes over HTTP with who and why recorded")
    func resumeOverHTTP() async throws {
        try await withTemporaryDirectory { path in
            try await withSuspended(["p1", "p2"], path: path) { client, runtime in
                let info = try await client.execute(uri: "/v1/workflows/p1", method: .get).decode(WorkflowInfo.self)
                #expect(info.status == .suspended)
                // The whole record, as history holds it.
                let record = try #require(info.suspension)
                #expect(record == (try await runtime.suspension(of: "p1")))
                #expect(record.code == "nondeterminism" && record.index == 1, "\(record)")
                #expect(record.recorded == StepKey(name: "b", occurrence: 0) && record.requested == StepKey(name: "x", occurrence: 0))
                let listed = try await client.execute(uri: "/v1/workflows?status=suspended", method: .get).decode(WorkflowList.self)
                #expect(listed.workflows.map(\.id) == ["p1", "p2"] && listed.workflows.allSatisfy { $0.status == .suspended })
                #expect(try await client.execute(uri: "/v1/workflows?status=running", method: .get).decode(WorkflowList.self).workflows.isEmpty)

                // Resumed with the code that does not match: it runs, and is suspended again.
                let before = try await runtime.history(of: "p1").count
                let resumed = try await client.execute(
                    uri: "/v1/workflows/p1/resume", method: .post, body: json(#"{"by": "alice", "reason": "try v2 as it is"}"#))
                #expect(resumed.status == .accepted, "\(String(buffer: resumed.body))")
                #expect(try resumed.decode(ActionReceipt.self) == ActionReceipt(id: "p1", action: "resume", by: "alice", reason: "try v2 as it is"))
                try await eventually { try await runtime.history(of: "p1").count == before + 2 }
                let history = try await runtime.history(of: "p1")
                #expect(history.suffix(2).map(\.kindName) == ["workflowResumed", "workflowSuspended"])
                #expect(actions(history) == ["resumed by alice: try v2 as it is"])
                #expect(try await runtime.status(of: "p1")?.status == .suspended)
            }
            // v1 deployed again: resuming lets each complete; without a body, who is "http".
            try await withSuspended([], path: path, deployed: .v1) { client, runtime in
                #expect(try await runtime.status(of: "p1")?.status == .suspended, "a suspension did not survive the restart")
                let started = Date()
                #expect(try await client.execute(uri: "/v1/workflows/p1/resume", method: .post, body: json(#"{"by": "alice", "reason": "v1 is back"}"#)).status == .accepted)
                let anonymous = try await client.execute(uri: "/v1/workflows/p2/resume", method: .post)
                #expect(anonymous.status == .accepted)
                #expect(try anonymous.decode(ActionReceipt.self).by == "http")
                // The wait is in history already: the replay takes it up again, and the event ends it.
                for id in ["p1", "p2"] {
                    try await runtime.send("finish", to: id, json: Array(#""now""#.utf8))
                    #expect(try await runtime.handle(Evolving.self, id: id).result() == ["a-done", "b-done"])
                }
                let history = try await runtime.history(of: "p1")
                #expect(actions(history) == ["resumed by alice: try v2 as it is", "resumed by alice: v1 is back"])
                // When: the event's own time.
                let resumedAt = try #require(history.last { $0.kindName == "workflowResumed" }).date
                #expect(abs(resumedAt.timeIntervalSince(started)) < 60)
                #expect(actions(try await runtime.history(of: "p2")) == ["resumed by http: resumed over HTTP"])
                // What the API exports is that history, the new kinds with their fields.
                let exported = try WorkflowHistory(json: Data(Array(buffer: try await client.execute(uri: "/v1/workflows/p1/history", method: .get).body)))
                #expect(exported.events == history)
            }
        }
    }

    @Test("reset over HTTP reruns from a step with the code deployed now; the tail is superseded, kept, and left out on request")
    func resetOverHTTP() async throws {
        try await withTemporaryDirectory { path in
            try await withSuspended(["p1", "p2"], path: path) { client, runtime in
                let reset = try await client.execute(
                    uri: "/v1/workflows/p1/reset", method: .post, body: json(#"{"toStep": "b", "by": "bob", "reason": "b is x now"}"#))
                #expect(reset.status == .accepted, "\(String(buffer: reset.body))")
                #expect(try reset.decode(ActionReceipt.self) == ActionReceipt(id: "p1", action: "reset", by: "bob", reason: "b is x now"))
                // By event number: 2 is where "b" was recorded.
                let byEvent = try await client.execute(uri: "/v1/workflows/p2/reset", method: .post, body: json(#"{"toEvent": 2}"#))
                #expect(byEvent.status == .accepted, "\(String(buffer: byEvent.body))")
                for id in ["p1", "p2"] {
                    try await eventually { try await runtime.history(of: id).last?.kindName == "waitStarted" }
                    try await runtime.send("finish", to: id, json: Array(#""now""#.utf8))
                    #expect(try await runtime.handle(Evolving.self, id: id).result() == ["a-done", "x-done"])
                }
                let full = try await runtime.history(of: "p1")
                // 0 started, 1 a, 2 b, 3 waiting, 4 suspended, 5 reset to 2: 2 to 4 are superseded.
                #expect(actions(full) == ["reset to 2 (1) by bob: b is x now"])
                #expect(actions(try await runtime.history(of: "p2")) == ["reset to 2 (1) by http: reset over HTTP"])
                let exported = try WorkflowHistory(json: Data(Array(buffer: try await client.execute(uri: "/v1/workflows/p1/history", method: .get).body)))
                #expect(exported.events == full, "the history includes superseded events by default")
                let effectiveAnswer = try await client.execute(uri: "/v1/workflows/p1/history?includeSuperseded=false", method: .get)
                let effective = try WorkflowHistory(json: Data(Array(buffer: effectiveAnswer.body))).events
                #expect(effective == (try await runtime.history(of: "p1", includingSuperseded: false)))
                #expect(Set(full.map(\.sequence)).subtracting(effective.map(\.sequence)) == [2, 3, 4])
                #expect(!effective.contains { if case .stepCompleted(let step, _) = $0.kind { step.name == "b" } else { false } })
                let explicit = try WorkflowHistory(
                    json: Data(Array(buffer: try await client.execute(uri: "/v1/workflows/p1/history?includeSuperseded=true", method: .get).body)))
                #expect(explicit.events == full)

                // A finished workflow can be reset too: it runs again from the step (6, where "x"
                // was recorded), and the finish event it had received is delivered again.
                let length = full.count
                let again = try await client.execute(uri: "/v1/workflows/p1/reset", method: .post, body: json(#"{"toStep": "x", "reason": "once more"}"#))
                #expect(again.status == .accepted, "\(String(buffer: again.body))")
                try await eventually {
                    let status = try await runtime.status(of: "p1")?.status
                    let count = try await runtime.history(of: "p1").count
                    return status == .completed && count > length + 1
                }
                let rerun = try await runtime.history(of: "p1", includingSuperseded: false)
                #expect(actions(rerun).last == "reset to 6 (2) by http: once more")
                let steps = rerun.compactMap { if case .stepCompleted(let step, _) = $0.kind { step.name } else { nil } }
                #expect(steps == ["a", "x"], "\(rerun.map(\.kindName))")
                #expect(rerun.last?.kindName == "workflowCompleted")
            }
        }
    }

    @Test("fork over HTTP starts a new workflow from a copy of the history up to a step; the original is untouched")
    func forkOverHTTP() async throws {
        try await withTemporaryDirectory { path in
            try await withSuspended(["p1"], path: path) { client, runtime in
                let original = try await runtime.history(of: "p1")
                let forked = try await client.execute(
                    uri: "/v1/workflows/p1/fork", method: .post, body: json(#"{"toStep": "b", "as": "p1-v2", "by": "carol", "reason": "try v2 on a copy"}"#))
                #expect(forked.status == .created, "\(String(buffer: forked.body))")
                let receipt = try forked.decode(StartReceipt.self)
                #expect(receipt.id == "p1-v2" && receipt.type == "evolving" && receipt.created)
                try await eventually { try await runtime.history(of: "p1-v2").last?.kindName == "waitStarted" }
                try await runtime.send("finish", to: "p1-v2", json: Array(#""now""#.utf8))
                #expect(try await runtime.handle(Evolving.self, id: "p1-v2").result() == ["a-done", "x-done"])
                let copy = try await runtime.history(of: "p1-v2")
                #expect(actions(copy) == ["forked from p1 at 2 by carol: try v2 on a copy"])
                #expect(copy.prefix(2).map(\.kind) == original.prefix(2).map(\.kind), "the copy starts with the original's events")
                #expect(try await runtime.history(of: "p1") == original, "the fork changed the original")
                #expect(try await runtime.status(of: "p1")?.status == .suspended)

                // The same id again is a conflict, and creates nothing.
                let taken = try await client.execute(uri: "/v1/workflows/p1/fork", method: .post, body: json(#"{"toStep": "a", "as": "p1-v2"}"#))
                #expect(taken.status == .conflict && taken.errorCode == "workflowIDConflict")
                #expect(try await runtime.history(of: "p1-v2") == copy)
            }
        }
    }

    @Test("refused ways out (no token, cross-site, bad body, wrong state, unknown id or step, taken id) append nothing")
    func waysOutRefusals() async throws {
        try await withTemporaryDirectory { path in
            try await withSuspended(["p1", "done"], path: path, .init(tokens: ["ops"], maxBodySize: 8 * 1024)) { client, runtime in
                let ops: HTTPFields = [.authorization: "Bearer ops"]
                var crossSite = ops
                crossSite[.origin] = "http://evil.example"
                // "done" finished and "live" running, under the code deployed now.
                try await runtime.reset("done", toStep: "b", by: "test", reason: "setup")
                try await eventually { try await runtime.history(of: "done").last?.kindName == "waitStarted" }
                try await runtime.send("finish", to: "done", json: Array(#""now""#.utf8))
                _ = try await runtime.handle(Evolving.self, id: "done").result()
                try await runtime.start(Evolving.self, id: "live", input: 2)
                try await eventually { try await runtime.history(of: "live").last?.kindName == "waitStarted" }
                let ids = ["p1", "done", "live"]
                var before: [Int] = []
                for id in ids { before.append(try await runtime.history(of: id).count) }

                let long = String(repeating: "r", count: 5000)
                let cases: [(String, HTTPFields, String?, HTTPResponse.Status, String)] = [
                    ("/v1/workflows/p1/resume", [:], nil, .unauthorized, "unauthorized"),
                    ("/v1/workflows/p1/reset", [:], #"{"toStep": "b"}"#, .unauthorized, "unauthorized"),
                    ("/v1/workflows/p1/fork", [.authorization: "Bearer guess"], #"{"toStep": "b", "as": "f1"}"#, .unauthorized, "unauthorized"),
                    ("/v1/workflows/p1/resume", crossSite, nil, .forbidden, "crossSiteRequest"),
                    ("/v1/workflows/p1/reset", crossSite, #"{"toStep": "b"}"#, .forbidden, "crossSiteRequest"),
                    ("/v1/workflows/p1/fork", crossSite, #"{"toStep": "b", "as": "f2"}"#, .forbidden, "crossSiteRequest"),
                    ("/v1/workflows/p1/resume", ops, String(repeating: " ", count: 9000), .contentTooLarge, "bodyTooLarge"),
                    // Wrong state: only a suspended workflow resumes.
                    ("/v1/workflows/live/resume", ops, nil, .conflict, "notSuspended"),
                    ("/v1/workflows/done/resume", ops, nil, .conflict, "notSuspended"),
                    ("/v1/workflows/nobody/resume", ops, nil, .notFound, "unknownWorkflow"),
                    ("/v1/workflows/nobody/reset", ops, #"{"toStep": "a"}"#, .notFound, "unknownWorkflow"),
                    ("/v1/workflows/nobody/fork", ops, #"{"toStep": "a", "as": "f3"}"#, .notFound, "unknownWorkflow"),
                    // Bad bodies.
                    ("/v1/workflows/p1/resume", ops, "{by", .badRequest, "invalidJSON"),
                    ("/v1/workflows/p1/resume", ops, #"{"by": 7}"#, .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/resume", ops, #"{"by": "a\u0007b"}"#, .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/resume", ops, #"{"by": ""}"#, .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/resume", ops, #"{"reason": "\#(long)"}"#, .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/resume", ops, "[]", .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/reset", ops, nil, .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/reset", ops, "{}", .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/reset", ops, #"{"toStep": "b", "toEvent": 2}"#, .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/reset", ops, #"{"toEvent": 2, "occurrence": 0}"#, .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/reset", ops, #"{"toStep": "nope"}"#, .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/reset", ops, #"{"toStep": "b", "occurrence": 3}"#, .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/reset", ops, #"{"toStep": "b", "occurrence": -1}"#, .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/reset", ops, #"{"toStep": ""}"#, .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/reset", ops, #"{"toEvent": 0}"#, .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/reset", ops, #"{"toEvent": 999}"#, .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/reset", ops, #"{"toEvent": "2"}"#, .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/fork", ops, #"{"toStep": "b"}"#, .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/fork", ops, #"{"as": "f4"}"#, .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/fork", ops, #"{"toStep": "nope", "as": "f5"}"#, .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/fork", ops, #"{"toStep": "b", "as": ""}"#, .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/fork", ops, #"{"toStep": "b", "as": "\#(String(repeating: "y", count: 512))"}"#, .badRequest, "invalidArgument"),
                    ("/v1/workflows/p1/fork", ops, #"{"toStep": "b", "as": "live"}"#, .conflict, "workflowIDConflict"),
                    ("/v1/workflows/p1/history?includeSuperseded=maybe", ops, nil, .badRequest, "invalidArgument"),
                ]
                for (uri, headers, body, status, code) in cases {
                    let method: HTTPRequest.Method = uri.contains("/history") ? .get : .post
                    let response = try await client.execute(uri: uri, method: method, headers: headers, body: body.map(json))
                    #expect(response.status == status, "\(uri) \(body?.prefix(60) ?? "")")
                    #expect(response.errorCode == code, "\(uri) \(body?.prefix(60) ?? ""): \(String(buffer: response.body).prefix(300))")
                }
                var after: [Int] = []
                for id in ids { after.append(try await runtime.history(of: id).count) }
                #expect(after == before, "a refused way out appended")
                #expect(try await runtime.status(of: "p1")?.status == .suspended)
                #expect(try await runtime.list(limit: 100).map(\.id).sorted() == ["done", "live", "p1"], "a refused fork created a workflow")
            }
        }
    }
}

@Suite("Supersession")
struct SupersessionTests {
    @Test("each superseded event is attributed to the reset that superseded it; external events and events before the target are not")
    func attribution() throws {
        let action = ActionRecord(by: "t", reason: "r")
        let step = { (name: String, index: UInt32) in StepRecord(name: name, occurrence: 0, index: index, concurrent: false) }
        let kinds: [HistoryEvent.Kind] = [
            .workflowStarted(type: "evolving", input: Array("1".utf8)),  // 0
            .stepCompleted(step("a", 0), result: Array("1".utf8)),  // 1
            .stepCompleted(step("b", 1), result: Array("2".utf8)),  // 2
            .waitStarted(step("event:finish", 2), wait: .event("finish"), due: nil),  // 3
            .workflowSuspended(SuspensionRecord(code: "nondeterminism", message: "m")),  // 4
            .workflowReset(toSequence: 2, generation: 1, action),  // 5: supersedes 2, 3, 4
            .stepCompleted(step("x", 1), result: Array("3".utf8)),  // 6
            .eventReceived(name: "finish", payload: Array("null".utf8), dedupKey: nil),  // 7: delivered again, never superseded
            .workflowReset(toSequence: 1, generation: 2, action),  // 8: supersedes 1, 5, 6
            .stepCompleted(step("a", 0), result: Array("1".utf8)),  // 9
        ]
        let events = kinds.enumerated().map { HistoryEvent(sequence: UInt32($0.offset), timestamp: Int64($0.offset), kind: $0.element) }
        let resets = try Supersession.resets(in: events)
        let first = Supersession.Reset(generation: 1, sequence: 5)
        let second = Supersession.Reset(generation: 2, sequence: 8)
        #expect(resets == [2: first, 3: first, 4: first, 1: second, 5: second, 6: second])
        // The same events the runtime leaves out of the history in effect.
        let effective = Set(try WorkflowState.effective(events).map(\.sequence))
        #expect(Set(resets.keys) == Set(events.map(\.sequence)).subtracting(effective))
        #expect(try Supersession.resets(in: Array(events.prefix(5))).isEmpty)
    }
}
