@_spi(Testing) import Continuum
import ContinuumHTTP
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Prometheus
import Testing

/// Waits for an "approve" event and returns who approved.
struct Approval: Workflow {
    static let name = "approval"
    struct Input: Codable, Sendable { var amount: Int }
    struct Decision: Codable, Sendable { var by: String }

    func run(_ ctx: WorkflowContext, input: Input) async throws -> String {
        let decision = try await ctx.waitForEvent("approve", as: Decision.self)
        return "\(input.amount) approved by \(decision?.by ?? "nobody")"
    }
}

/// Publishes its input, then waits for "go".
struct Publisher: Workflow {
    static let name = "publisher"

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        try await ctx.publish("state", ["seen": input])
        _ = try await ctx.waitForEvent("go", as: Int.self)
        return input
    }
}

/// Throws at once: a workflow that fails.
struct Refusal: Workflow {
    static let name = "refusal"
    struct NotToday: Error, CustomStringConvertible { var description: String { "not today" } }

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int { throw NotToday() }
}

/// Runs the API over a fresh LMDB store on a real server on 127.0.0.1.
func withAPI(
    _ configuration: ContinuumAPI.Configuration = .init(),
    workflows: [any Workflow] = [Approval()],
    runtime runtimeConfiguration: WorkflowRuntime.Configuration = .init(),
    routes: @Sendable (Router<BasicRequestContext>) -> Void = { _ in },
    _ body: @Sendable (any TestClientProtocol, WorkflowRuntime) async throws -> Void
) async throws {
    try await withTemporaryDirectory { path in
        try await withAPI(path: path, configuration, workflows: workflows, runtime: runtimeConfiguration, routes: routes, body)
    }
}

/// Runs the API over the LMDB store in `path` on a real server on 127.0.0.1, with the test's
/// own `routes` beside it.
func withAPI(
    path: String, _ configuration: ContinuumAPI.Configuration = .init(), workflows: [any Workflow] = [Approval()],
    runtime runtimeConfiguration: WorkflowRuntime.Configuration = .init(),
    routes: @Sendable (Router<BasicRequestContext>) -> Void = { _ in },
    _ body: @Sendable (any TestClientProtocol, WorkflowRuntime) async throws -> Void
) async throws {
    try await WorkflowRuntime.withLMDB(path: path, workflows: workflows, runtime: runtimeConfiguration) { runtime throws in
        let router = Router()
        ContinuumAPI(runtime: runtime, configuration: configuration).register(on: router)
        routes(router)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in try await body(client, runtime) }
    }
}

extension TestResponse {
    /// The body decoded as JSON.
    func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(Array(buffer: body)))
    }

    /// The error code of a JSON error body.
    var errorCode: String? { (try? decode(APIError.Body.self))?.error.code }
}

func json(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

@Suite("HTTP API")
struct HTTPTests {
    @Test("POST /v1/workflows/{type}?timeout=… records the deadline; a bad timeout is refused before anything is stored")
    func startWithTimeout() async throws {
        try await withAPI { client, runtime in
            let started = try await client.execute(uri: "/v1/workflows/approval?id=t-1&timeout=3600", method: .post, body: json(#"{"amount": 1}"#))
            #expect(started.status == .created)
            let history = try await runtime.history(of: "t-1")
            guard history.count > 1, case .deadlineSet(let due) = history[1].kind else {
                Issue.record("no deadline recorded: \(history.map(\.kindName))")
                return
            }
            #expect(due == history[0].timestamp + 3_600_000_000_000)
            for bad in ["0", "-5", "soon"] {
                let refused = try await client.execute(uri: "/v1/workflows/approval?id=t-2&timeout=\(bad)", method: .post, body: json(#"{"amount": 1}"#))
                #expect(refused.status == .badRequest && refused.errorCode == "invalidArgument", "timeout=\(bad)")
            }
            #expect(try await runtime.status(of: "t-2") == nil)
        }
    }

    @Test("POST /v1/workflows/{type}?queue=…&partition=…&priority=… records the queue with the start; partition alone is refused")
    func startOnQueue() async throws {
        try await withAPI { client, runtime in
            let started = try await client.execute(
                uri: "/v1/workflows/approval?id=q-1&queue=jobs&partition=acme&priority=5", method: .post, body: json(#"{"amount": 1}"#))
            #expect(started.status == .created)
            #expect(try await runtime.history(of: "q-1").contains { $0.kind == .enqueued(QueueEntry("jobs", partition: "acme", priority: 5)) })
            let refused = try await client.execute(uri: "/v1/workflows/approval?id=q-2&partition=acme", method: .post, body: json(#"{"amount": 1}"#))
            #expect(refused.status == .badRequest && refused.errorCode == "invalidArgument")
            let badPriority = try await client.execute(uri: "/v1/workflows/approval?id=q-3&queue=jobs&priority=high", method: .post, body: json(#"{"amount": 1}"#))
            #expect(badPriority.status == .badRequest)
            let (second, third) = (try await runtime.status(of: "q-2"), try await runtime.status(of: "q-3"))
            #expect(second == nil && third == nil)
        }
    }

    @Test("GET /v1/workflows/{id}/queries/{name} answers the published JSON, 404 unknownQuery for a name never published")
    func queryRoute() async throws {
        try await withAPI(workflows: [Approval(), Publisher()]) { client, runtime in
            try await runtime.start(Publisher.self, id: "pub-1", input: 7)
            try await runtime.waitForHistory(of: "pub-1") { $0.contains { $0.kindName == "waitStarted" } }
            let answer = try await client.execute(uri: "/v1/workflows/pub-1/queries/state", method: .get)
            #expect(answer.status == .ok)
            #expect(try answer.decode([String: Int].self) == ["seen": 7])
            let missing = try await client.execute(uri: "/v1/workflows/pub-1/queries/other", method: .get)
            #expect(missing.status == .notFound && missing.errorCode == "unknownQuery")
            let nobody = try await client.execute(uri: "/v1/workflows/nobody/queries/state", method: .get)
            #expect(nobody.status == .notFound && nobody.errorCode == "unknownWorkflow")
        }
    }

    @Test("start → wait for an event → send it → completed, over a real server")
    func endToEnd() async throws {
        try await withAPI { client, runtime in
            let started = try await client.execute(uri: "/v1/workflows/approval?id=po-1", method: .post, body: json(#"{"amount": 120}"#))
            #expect(started.status == .created)
            let receipt = try started.decode(StartReceipt.self)
            #expect(receipt.id == "po-1" && receipt.type == "approval" && receipt.created)
            // Starting it again with the same input is the same run.
            let again = try await client.execute(uri: "/v1/workflows/approval?id=po-1", method: .post, body: json(#"{"amount": 120}"#))
            #expect(again.status == .ok)
            #expect(try again.decode(StartReceipt.self).created == false)
            try await runtime.waitForHistory(of: "po-1") { $0.count == 2 }  // started, waiting
            let status = try await client.execute(uri: "/v1/workflows/po-1", method: .get)
            #expect(try status.decode(WorkflowInfo.self).status == .running)

            let sent = try await client.execute(
                uri: "/v1/workflows/po-1/events/approve", method: .post, headers: [.init("Idempotency-Key")!: "delivery-7"],
                body: json(#"{"by": "ops"}"#))
            #expect(sent.status == .accepted)
            let event = try sent.decode(EventReceipt.self)
            #expect(event.workflowID == "po-1" && !event.duplicate)
            #expect(try await runtime.handle(Approval.self, id: "po-1").result() == "120 approved by ops")

            let done = try await client.execute(uri: "/v1/workflows/po-1", method: .get)
            let info = try done.decode(WorkflowInfo.self)
            #expect(info.status == .completed && info.type == "approval")
            // The output's exact JSON text.
            #expect(info.result == #""120 approved by ops""#)
            // The history is the export file the replayer reads: every stored event, exactly.
            let history = try await client.execute(uri: "/v1/workflows/po-1/history", method: .get)
            let exported = try WorkflowHistory(json: Data(Array(buffer: history.body)))
            #expect(exported.events == (try await runtime.history(of: "po-1")))
            #expect(exported.id == "po-1" && exported.type == "approval" && exported.status == .completed)
            // Ids in paths are percent-decoded.
            _ = try await client.execute(uri: "/v1/workflows/approval?id=a%20b", method: .post, body: json(#"{"amount": 1}"#))
            #expect(try await client.execute(uri: "/v1/workflows/a%20b", method: .get).decode(WorkflowInfo.self).id == "a b")
            let list = try await client.execute(uri: "/v1/workflows?status=completed", method: .get)
            let page = try list.decode(WorkflowList.self)
            #expect(page.workflows.map(\.id) == ["po-1"] && page.next == nil)
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .ok)
            #expect(try health.decode(HealthStatus.self).status == "ready")
        }
    }

    @Test("a repeated Idempotency-Key returns the first receipt; with another body it is a conflict; neither appends")
    func idempotency() async throws {
        try await withAPI { client, runtime in
            _ = try await client.execute(uri: "/v1/workflows/approval?id=po-2", method: .post, body: json(#"{"amount": 1}"#))
            let key: HTTPFields = [.init("Idempotency-Key")!: "k-1"]
            let first = try await client.execute(uri: "/v1/workflows/po-2/events/approve", method: .post, headers: key, body: json(#"{"by": "a"}"#))
            #expect(first.status == .accepted)
            _ = try await runtime.handle(Approval.self, id: "po-2").result()
            let count = try await runtime.history(of: "po-2").count
            let repeated = try await client.execute(uri: "/v1/workflows/po-2/events/approve", method: .post, headers: key, body: json(#"{"by": "a"}"#))
            #expect(repeated.status == .ok)
            #expect(try repeated.decode(EventReceipt.self) == EventReceipt(workflowID: "po-2", sequence: try first.decode(EventReceipt.self).sequence, duplicate: true))
            let changed = try await client.execute(uri: "/v1/workflows/po-2/events/approve", method: .post, headers: key, body: json(#"{"by": "b"}"#))
            #expect(changed.status == .conflict && changed.errorCode == "dedupKeyConflict")
            #expect(try await runtime.history(of: "po-2").count == count)
        }
    }

    @Test("a refused dedup key is named by the header it came from: Idempotency-Key, else webhook-id")
    func refusedKeyNamesItsHeader() async throws {
        try await withAPI { client, _ in
            _ = try await client.execute(uri: "/v1/workflows/approval?id=po-k", method: .post, body: json(#"{"amount": 1}"#))
            for header in ["Idempotency-Key", "webhook-id"] {
                let response = try await client.execute(
                    uri: "/v1/workflows/po-k/events/approve", method: .post, headers: [.init(header)!: String(repeating: "k", count: 300)],
                    body: json("{}"))
                #expect(response.status == .badRequest && response.errorCode == "invalidArgument")
                let message = try response.decode(APIError.Body.self).error.message
                #expect(message.contains(header), "\(message)")
            }
        }
    }

    @Test("every refused request gets its status and code, and appends nothing")
    func errors() async throws {
        try await withAPI(.init(maxBodySize: 1024)) { client, runtime in
            _ = try await client.execute(uri: "/v1/workflows/approval?id=open", method: .post, body: json(#"{"amount": 1}"#))
            _ = try await client.execute(uri: "/v1/workflows/approval?id=done", method: .post, body: json(#"{"amount": 2}"#))
            _ = try await client.execute(uri: "/v1/workflows/done/events/approve", method: .post, body: json(#"{"by": "x"}"#))
            _ = try await runtime.handle(Approval.self, id: "done").result()
            try await runtime.waitForHistory(of: "open") { $0.count == 2 }
            let before = [try await runtime.history(of: "open").count, try await runtime.history(of: "done").count]
            let big = ByteBuffer(repeating: UInt8(ascii: " "), count: 4096)
            let cases: [(String, HTTPRequest.Method, ByteBuffer?, HTTPResponse.Status, String)] = [
                ("/v1/workflows/approval?id=big", .post, big, .contentTooLarge, "bodyTooLarge"),
                ("/v1/workflows/open/events/approve", .post, big, .contentTooLarge, "bodyTooLarge"),
                ("/v1/workflows/nope?id=x", .post, json("{}"), .notFound, "unknownWorkflowType"),
                ("/v1/workflows/missing/events/approve", .post, json("{}"), .notFound, "unknownWorkflow"),
                ("/v1/workflows/missing", .get, nil, .notFound, "unknownWorkflow"),
                ("/v1/workflows/missing/cancel", .post, nil, .notFound, "unknownWorkflow"),
                ("/v1/workflows/done/events/approve", .post, json(#"{"by": "late"}"#), .conflict, "workflowFinished"),
                ("/v1/workflows/done/cancel", .post, nil, .conflict, "workflowFinished"),
                ("/v1/workflows/open/events/approve", .post, json("{not json"), .badRequest, "invalidJSON"),
                // "a" in UTF-16: JSON, but not in the UTF-8 the API takes.
                ("/v1/workflows/open/events/approve", .post, ByteBuffer(bytes: [0x22, 0x00, 0x61, 0x00, 0x22, 0x00]), .badRequest, "invalidJSON"),
                ("/v1/workflows/open/events/approve", .post, json(String(repeating: "[", count: 600)), .badRequest, "invalidJSON"),
                ("/v1/workflows/open/cancel", .post, json("[1"), .badRequest, "invalidJSON"),
                ("/v1/workflows/open/cancel", .post, json(#"{"reason": 7}"#), .badRequest, "invalidArgument"),
                ("/v1/workflows/approval?id=typed", .post, json(#"{"amount": "many"}"#), .badRequest, "payloadCoding"),
                ("/v1/workflows/approval?id=open", .post, json(#"{"amount": 99}"#), .conflict, "workflowIDConflict"),
                ("/v1/workflows/approval?id=" + String(repeating: "x", count: 600), .post, json("{}"), .badRequest, "invalidArgument"),
                // 512 bytes: one more than LMDB's largest key.
                ("/v1/workflows/approval?id=" + String(repeating: "y", count: 512), .post, json(#"{"amount": 1}"#), .badRequest, "invalidArgument"),
                // "café" spelled with a combining accent (not NFC).
                ("/v1/workflows/approval?id=cafe%CC%81", .post, json(#"{"amount": 1}"#), .badRequest, "invalidArgument"),
                ("/v1/workflows?status=sleepy", .get, nil, .badRequest, "invalidArgument"),
                ("/v1/workflows?limit=0", .get, nil, .badRequest, "invalidArgument"),
                ("/v1/workflows?after=zz", .get, nil, .badRequest, "invalidArgument"),
            ]
            for (uri, method, body, status, code) in cases {
                let response = try await client.execute(uri: uri, method: method, body: body)
                #expect(response.status == status, "\(method) \(uri.prefix(60))")
                #expect(response.errorCode == code, "\(method) \(uri.prefix(60))")
            }
            let after = [try await runtime.history(of: "open").count, try await runtime.history(of: "done").count]
            #expect(after == before, "a refused request appended")
            #expect(try await runtime.list(limit: 100).count == 2, "a refused start stored a workflow")
        }
    }

    @Test("a browser request from another site cannot change workflows; the same origin can")
    func crossSite() async throws {
        try await withAPI { client, runtime in
            let evil: [HTTPFields] = [[.origin: "http://evil.example"], [.init("Sec-Fetch-Site")!: "cross-site"], [.origin: "null"]]
            for headers in evil {
                let start = try await client.execute(uri: "/v1/workflows/approval?id=x", method: .post, headers: headers, body: json(#"{"amount": 1}"#))
                #expect(start.status == .forbidden && start.errorCode == "crossSiteRequest", "\(headers)")
            }
            #expect(try await runtime.list(limit: 10).isEmpty, "a cross-site start stored a workflow")
            // The test client names the server `localhost` (no port) in its Host header; a browser
            // on this page would send that same authority as its Origin.
            let same = try await client.execute(
                uri: "/v1/workflows/approval?id=ok", method: .post, headers: [.origin: "http://localhost", .init("Sec-Fetch-Site")!: "same-origin"],
                body: json(#"{"amount": 1}"#))
            #expect(same.status == .created, "\(String(buffer: same.body))")
            try await runtime.waitForHistory(of: "ok") { $0.count == 2 }
            let cancel = try await client.execute(uri: "/ui/workflows/ok/cancel", method: .post, headers: [.origin: "http://evil.example"])
            #expect(cancel.status == .forbidden)
            #expect(try await runtime.history(of: "ok").count == 2, "a cross-site form cancelled the workflow")
            // Reading stays open to any origin's navigation.
            #expect(try await client.execute(uri: "/v1/workflows/ok", method: .get, headers: [.origin: "http://evil.example"]).status == .ok)
        }
    }

    @Test("with tokens, every route but /healthz needs one; a wrong one is refused")
    func bearerTokens() async throws {
        try await withAPI(.init(tokens: ["first-token", "second-token"])) { client, runtime in
            let none = try await client.execute(uri: "/v1/workflows/approval?id=t", method: .post, body: json(#"{"amount": 1}"#))
            #expect(none.status == .unauthorized && none.errorCode == "unauthorized")
            let wrong = try await client.execute(
                uri: "/v1/workflows/approval?id=t", method: .post, headers: [.authorization: "Bearer first-tokeN"], body: json(#"{"amount": 1}"#))
            #expect(wrong.status == .unauthorized)
            #expect(try await runtime.list(limit: 10).isEmpty, "an unauthenticated start stored a workflow")
            let right = try await client.execute(
                uri: "/v1/workflows/approval?id=t", method: .post, headers: [.authorization: "Bearer second-token"], body: json(#"{"amount": 1}"#))
            #expect(right.status == .created)
            #expect(try await client.execute(uri: "/v1/workflows/t", method: .get).status == .unauthorized)
            #expect(try await client.execute(uri: "/v1/workflows", method: .get).status == .unauthorized)
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
            // The scheme's name is case-insensitive.
            #expect(try await client.execute(uri: "/v1/workflows/t", method: .get, headers: [.authorization: "bearer first-token"]).status == .ok)
        }
    }

    @Test("the checks run in order: the body size, then the caller, then the site a browser sent it from, then the handler")
    func checkOrder() async throws {
        try await withAPI(.init(tokens: ["t"], maxBodySize: 1024)) { client, runtime in
            let big = ByteBuffer(repeating: UInt8(ascii: " "), count: 4096)
            let evil: HTTPFields = [.origin: "http://evil.example"]
            var evilWithToken = evil
            evilWithToken[.authorization] = "Bearer t"
            let steps: [(HTTPFields, ByteBuffer, HTTPResponse.Status, String)] = [
                (evil, big, .contentTooLarge, "bodyTooLarge"),
                (evil, json("{}"), .unauthorized, "unauthorized"),
                (evilWithToken, json("{}"), .forbidden, "crossSiteRequest"),
                ([.authorization: "Bearer t"], json("{}"), .notFound, "unknownWorkflowType"),
            ]
            for (headers, body, status, code) in steps {
                let api = try await client.execute(uri: "/v1/workflows/nope?id=x", method: .post, headers: headers, body: body)
                #expect(api.status == status && api.errorCode == code, "API: \(code)")
                // The dashboard's forms pass the same checks, and answer with pages.
                let form = try await client.execute(uri: "/ui/workflows/nobody/cancel", method: .post, headers: headers, body: body)
                #expect(form.status == status && form.headers[.contentType]?.hasPrefix("text/html") == true, "dashboard: \(code)")
            }
            #expect(try await runtime.list(limit: 10).isEmpty)
        }
    }

    @Test("webhook signatures: valid, rotated secret, wrong secret, stale timestamp, tampered body, replayed elsewhere")
    func signatures() async throws {
        let old = "whsec_" + Data("the old secret".utf8).base64EncodedString()
        let new = "whsec_" + Data("the new secret".utf8).base64EncodedString()
        try await withAPI(.init(tokens: ["admin"], webhookSecrets: [old, new])) { client, runtime in
            let admin: HTTPFields = [.authorization: "Bearer admin"]
            for id in ["w1", "w2", "w3"] {
                _ = try await client.execute(uri: "/v1/workflows/approval?id=\(id)", method: .post, headers: admin, body: json(#"{"amount": 5}"#))
                try await runtime.waitForHistory(of: id) { $0.count == 2 }
            }
            func deliver(to id: String, secret: String, signedBody: String, sentBody: String, age: Int64 = 0, delivery: String) async throws -> TestResponse {
                let timestamp = Int64(Date().timeIntervalSince1970) - age
                let signature = WebhookVerifier.signature(secret: secret, id: delivery, timestamp: timestamp, body: Data(signedBody.utf8))
                return try await client.execute(
                    uri: "/v1/workflows/\(id)/events/approve", method: .post,
                    headers: [
                        .init("webhook-id")!: delivery, .init("webhook-timestamp")!: "\(timestamp)", .init("webhook-signature")!: signature,
                    ],
                    body: json(sentBody))
            }
            let body = #"{"by": "hook"}"#
            let refused: [(String, TestResponse)] = [
                ("wrong secret", try await deliver(to: "w1", secret: "whsec_" + Data("nope".utf8).base64EncodedString(), signedBody: body, sentBody: body, delivery: "d1")),
                ("stale", try await deliver(to: "w1", secret: new, signedBody: body, sentBody: body, age: 600, delivery: "d2")),
                ("tampered", try await deliver(to: "w1", secret: new, signedBody: body, sentBody: #"{"by": "mallory"}"#, delivery: "d3")),
            ]
            for (what, response) in refused {
                #expect(response.status == .unauthorized && response.errorCode == "badSignature", "\(what)")
            }
            #expect(try await runtime.history(of: "w1").count == 2, "a refused delivery appended")
            #expect(try await deliver(to: "w1", secret: new, signedBody: body, sentBody: body, delivery: "d4").status == .accepted)
            #expect(try await deliver(to: "w2", secret: old, signedBody: body, sentBody: body, delivery: "d5").status == .accepted)
            #expect(try await runtime.handle(Approval.self, id: "w1").result() == "5 approved by hook")
            #expect(try await runtime.handle(Approval.self, id: "w2").result() == "5 approved by hook")
            // The webhook id deduplicates a redelivery.
            let again = try await deliver(to: "w1", secret: new, signedBody: body, sentBody: body, delivery: "d4")
            #expect(again.status == .ok)
            #expect(try again.decode(EventReceipt.self).duplicate)
            // A replayed signed delivery with an unsigned Idempotency-Key of its own is still a duplicate.
            let timestamp = Int64(Date().timeIntervalSince1970)
            let replay = try await client.execute(
                uri: "/v1/workflows/w1/events/approve", method: .post,
                headers: [
                    .init("webhook-id")!: "d4", .init("webhook-timestamp")!: "\(timestamp)",
                    .init("webhook-signature")!: WebhookVerifier.signature(secret: new, id: "d4", timestamp: timestamp, body: Data(body.utf8)),
                    .init("Idempotency-Key")!: "fresh-key",
                ],
                body: json(body))
            #expect(replay.status == .ok, "a replay with a new key was appended")
            #expect(try replay.decode(EventReceipt.self).duplicate, "a replay with a new key was appended")
            // The path is not signed: the captured delivery replayed to another workflow is refused.
            let elsewhere = try await deliver(to: "w3", secret: new, signedBody: body, sentBody: body, delivery: "d4")
            #expect(elsewhere.status == .conflict && elsewhere.errorCode == "webhookReplayed")
            #expect(try await runtime.history(of: "w3").count == 2, "a replayed delivery appended")
        }
    }
}

extension HTTPTests {
    @Test("the status shows how a workflow ended: its result, the error it threw, the reason it was cancelled, why it is suspended")
    func outcomes() async throws {
        try await withTemporaryDirectory { path in
            // Nothing parks here: a parked workflow is not recovered at start (its unknown type
            // is found when it next wakes), and a loaded machine can outlast `parkAfter`.
            try await withAPI(path: path, workflows: [Approval(), Refusal()], runtime: .init(parkAfter: nil)) { client, runtime in
                #expect(try await client.execute(uri: "/v1/workflows/refusal?id=r1", method: .post, body: json("1")).status == .created)
                await #expect(throws: ContinuumError.self) { try await runtime.handle(Refusal.self, id: "r1").result() }
                let failed = try await client.execute(uri: "/v1/workflows/r1", method: .get).decode(WorkflowInfo.self)
                #expect(failed.status == .failed && failed.result == nil && failed.reason == nil)
                #expect(failed.error?.message == "not today" && failed.error?.type.hasSuffix("NotToday") == true, "\(failed)")

                _ = try await client.execute(uri: "/v1/workflows/approval?id=c1", method: .post, body: json(#"{"amount": 3}"#))
                try await runtime.waitForHistory(of: "c1") { $0.count == 2 }
                let cancel = try await client.execute(uri: "/v1/workflows/c1/cancel", method: .post, body: json(#"{"reason": "no longer needed"}"#))
                #expect(cancel.status == .accepted)
                let receipt = try cancel.decode(CancelReceipt.self)
                #expect(receipt.id == "c1" && receipt.cancelRequested)
                await #expect(throws: ContinuumError.self) { try await runtime.handle(Approval.self, id: "c1").result() }
                let cancelled = try await client.execute(uri: "/v1/workflows/c1", method: .get).decode(WorkflowInfo.self)
                #expect(cancelled.status == .cancelled && cancelled.reason == "no longer needed" && cancelled.error == nil)

                _ = try await client.execute(uri: "/v1/workflows/approval?id=orphan", method: .post, body: json(#"{"amount": 4}"#))
                try await runtime.waitForHistory(of: "orphan") { $0.count == 2 }
                let running = try await client.execute(uri: "/v1/workflows/orphan", method: .get).decode(WorkflowInfo.self)
                #expect(running.status == .running && running.suspension == nil && running.result == nil)
            }
            // Reopened without the approval type: the waiting workflow is suspended, and says why.
            try await withAPI(path: path, workflows: [Refusal()]) { client, runtime in
                try await eventually { try await runtime.suspension(of: "orphan") != nil }
                let suspended = try await client.execute(uri: "/v1/workflows/orphan", method: .get).decode(WorkflowInfo.self)
                #expect(suspended.status == .suspended && suspended.suspension?.code == "unknownWorkflowType", "\(suspended)")
                let listed = try await client.execute(uri: "/v1/workflows?status=suspended", method: .get).decode(WorkflowList.self)
                #expect(listed.workflows.map(\.id) == ["orphan"] && listed.workflows[0].suspension == nil)
            }
        }
    }

    @Test("the collections mount under any prefix, beside the host's own routes; the dashboard's links and cookie follow")
    func mountedUnderPrefixes() async throws {
        try await withTemporaryDirectory { path in
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Approval()]) { runtime throws in
                let router = Router()
                router.get("/") { _, _ in "the host's own page" }
                let api = ContinuumAPI(runtime: runtime, configuration: .init(tokens: ["t"]))
                api.register(on: router, atPath: "/continuum")
                // One collection on its own, in a group with the context it needs.
                router.group("/ops", context: ContinuumRequestContext<BasicRequestContext>.self).addRoutes(api.dashboardRoutes())
                router.group("/tenants/:tenant", context: ContinuumRequestContext<BasicRequestContext>.self).addRoutes(api.dashboardRoutes())
                let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
                try await app.test(.live) { client in
                    let auth: HTTPFields = [.authorization: "Bearer t"]
                    let started = try await client.execute(
                        uri: "/continuum/v1/workflows/approval?id=m/1", method: .post, headers: auth, body: json(#"{"amount": 1}"#))
                    #expect(started.status == .created)
                    try await runtime.waitForHistory(of: "m/1") { $0.count == 2 }
                    #expect(try await client.execute(uri: "/v1/workflows/m%2F1", method: .get, headers: auth).status == .notFound)
                    #expect(try await client.execute(uri: "/continuum/v1/workflows/m%2F1", method: .get, headers: auth).status == .ok)
                    #expect(try await client.execute(uri: "/continuum/healthz", method: .get).status == .ok)
                    let host = try await client.execute(uri: "/", method: .get)
                    #expect(String(buffer: host.body) == "the host's own page")

                    for (base, uri) in [("/continuum", "/continuum"), ("/continuum", "/continuum/"), ("/ops", "/ops/")] {
                        let overview = try await client.execute(uri: uri, method: .get, headers: auth)
                        #expect(overview.status == .ok, "\(uri)")
                        #expect(String(buffer: overview.body).contains(#"<a href="\#(base)/ui/workflows/m%2F1">m/1</a>"#), "\(uri)")
                        let timeline = String(buffer: try await client.execute(uri: base + "/ui/workflows/m%2F1", method: .get, headers: auth).body)
                        #expect(timeline.contains(#"<form id=send method=post action="\#(base)/ui/workflows/m%2F1/events">"#), "\(base)")
                        #expect(timeline.contains(#"<h1><a href="\#(base)/">Continuum</a></h1>"#), "\(base)")
                        let anonymous = try await client.execute(uri: base + "/ui/workflows/m%2F1", method: .get)
                        #expect(anonymous.status == .unauthorized)
                        #expect(String(buffer: anonymous.body).contains(#"<form id=login method=post action="\#(base)/login">"#), "\(base)")
                        let login = try await client.execute(
                            uri: base + "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"], body: json("token=t"))
                        #expect(login.status == .seeOther && login.headers[.location] == base + "/")
                        #expect(try cookieAttributes(login).contains("Path=\(base)"), "\(login.headers)")
                    }
                    // A mount path that could smuggle attributes into the cookie (`;` may stand in a path) gets Path=/.
                    let smuggled = try await client.execute(
                        uri: "/tenants/a;Domain=evil.example/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                        body: json("token=t"))
                    #expect(smuggled.status == .seeOther && smuggled.headers[.location] == "/tenants/a;Domain=evil.example/")
                    #expect(try cookieAttributes(smuggled) == ["Path=/", "HttpOnly", "SameSite=Strict"])
                    let cancelled = try await client.execute(uri: "/ops/ui/workflows/m%2F1/cancel", method: .post, headers: auth)
                    #expect(cancelled.status == .seeOther && cancelled.headers[.location] == "/ops/ui/workflows/m%2F1")
                    await #expect(throws: ContinuumError.self) { try await runtime.handle(Approval.self, id: "m/1").result() }
                }
            }
        }
    }

    @Test("runtime error codes map to statuses in one place", arguments: [
        (ContinuumError.Code.invalidArgument, 400), (.payloadCoding, 400), (.unknownWorkflow, 404), (.unknownWorkflowType, 404),
        (.workflowFinished, 409), (.workflowIDConflict, 409), (.dedupKeyConflict, 409), (.nondeterminism, 409), (.corruptedData, 409),
        (.notRunning, 503), (.storeClosed, 503), (.storeLocked, 503), (.ownershipLost, 503), (.storageFull, 507), (.payloadTooLarge, 413),
        (.alreadyRunning, 500), (.storageFailure, 500), (.suspended, 409), (.codeChanged, 409),
    ] as [(ContinuumError.Code, Int)])
    func statuses(code: ContinuumError.Code, status: Int) {
        let error = APIError(ContinuumError(code, "what happened"))
        #expect(error.status.code == status)
        #expect(error.code.name == code.name && error.message == "what happened")
    }
}

/// The attributes of a response's `Set-Cookie`, in any order.
func cookieAttributes(_ response: TestResponse) throws -> Set<String> {
    let cookie = try #require(response.headers[.setCookie])
    return Set(cookie.split(separator: ";").dropFirst().map { $0.trimmingCharacters(in: .whitespaces) })
}

extension HTTPTests {
    @Test("the replay guard refuses new signed ids while full of unexpired ones, and accepts again once they expire")
    func replayGuardCapacity() async throws {
        let secret = "whsec_" + Data("capacity".utf8).base64EncodedString()
        var configuration = ContinuumAPI.Configuration(tokens: ["admin"], webhookSecrets: [secret])
        // The window is short so the test can wait it out, but long enough that a loaded CI
        // machine's request latency never makes a fresh timestamp stale.
        // 12 s: under a full parallel suite (schemathesis beside it) three deliveries took over 4 s.
        let window: Int64 = 12
        configuration.webhooks = WebhookVerifier(secrets: [secret], tolerance: .seconds(window))
        configuration.webhookReplayCapacity = 2
        try await withAPI(configuration) { client, runtime in
            for id in ["c1", "c2", "c3"] {
                _ = try await client.execute(
                    uri: "/v1/workflows/approval?id=\(id)", method: .post, headers: [.authorization: "Bearer admin"], body: json(#"{"amount": 1}"#))
            }
            var latestSigned: Int64 = 0
            func deliver(to id: String, delivery: String) async throws -> TestResponse {
                let timestamp = Int64(Date().timeIntervalSince1970)
                latestSigned = max(latestSigned, timestamp)
                let body = #"{"by": "hook"}"#
                return try await client.execute(
                    uri: "/v1/workflows/\(id)/events/approve", method: .post,
                    headers: [
                        .init("webhook-id")!: delivery, .init("webhook-timestamp")!: "\(timestamp)",
                        .init("webhook-signature")!: WebhookVerifier.signature(secret: secret, id: delivery, timestamp: timestamp, body: Data(body.utf8)),
                    ],
                    body: json(body))
            }
            #expect(try await deliver(to: "c1", delivery: "x1").status == .accepted)
            #expect(try await deliver(to: "c2", delivery: "x2").status == .accepted)
            let full = try await deliver(to: "c3", delivery: "x3")
            #expect(full.status == .serviceUnavailable && full.errorCode == "webhookLimit")
            #expect(try await runtime.history(of: "c3").count == 2, "a refused delivery appended")
            // A redelivery of a remembered id still passes while full.
            #expect(try await deliver(to: "c1", delivery: "x1").status == .ok)
            // Once the first two are past their window, new ids are accepted again.
            while Int64(Date().timeIntervalSince1970) <= latestSigned + window {
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(try await deliver(to: "c3", delivery: "x3").status == .accepted)
        }
    }
}

@Suite("Metrics")
struct MetricsTests {
    @Test("/metrics reports started and finished workflows, step durations, events and commits in Prometheus format")
    func prometheus() async throws {
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        var store = LMDBStore.Configuration()
        store.metricsFactory = factory
        var runtimeConfiguration = WorkflowRuntime.Configuration()
        runtimeConfiguration.metricsFactory = factory
        try await withTemporaryDirectory { path in
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Approval()], configuration: store, runtime: runtimeConfiguration) { runtime throws in
                let router = Router()
                ContinuumAPI(runtime: runtime, configuration: .init(tokens: ["t"], metrics: registry)).register(on: router)
                let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
                try await app.test(.live) { client in
                    for index in 0..<3 {
                        try await runtime.start(Approval.self, id: "m\(index)", input: .init(amount: index))
                        try await runtime.send("approve", to: "m\(index)", payload: Approval.Decision(by: "ops"))
                        _ = try await runtime.handle(Approval.self, id: "m\(index)").result()
                    }
                    // No token needed, like a probe.
                    let response = try await client.execute(uri: "/metrics", method: .get)
                    #expect(response.status == .ok)
                    let text = String(buffer: response.body)
                    #expect(text.contains("continuum_workflows_started_total 3"), "\(text.prefix(3000))")
                    #expect(text.contains(#"continuum_workflows_finished_total{status="completed"} 3"#))
                    #expect(text.contains("continuum_events_received_total 3"))
                    #expect(text.contains("continuum_commit_duration_seconds_count"))
                    #expect(text.contains("continuum_commit_batch_size"))
                }
            }
        }
    }
}

/// Answers "double" updates with twice their payload, until one doubles 0.
struct Doubler: Workflow {
    static let name = "doubler"

    func validateUpdate(named name: String, payload: [UInt8]) throws {
        guard name == "double" else { throw ContinuumError(.invalidArgument, "only 'double' is understood") }
    }

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        var last = input
        while last != 0 {
            last = try await ctx.handleUpdate("double", as: Int.self) { $0 * 2 } ?? 0
        }
        return input
    }
}

@Suite("HTTP updates")
struct HTTPUpdateTests {
    @Test("POST /v1/workflows/{id}/updates/{name} answers the reply; Idempotency-Key repeats it; a refusal is 422 updateRejected")
    func updateRoute() async throws {
        try await withAPI(workflows: [Approval(), Doubler()]) { client, runtime in
            try await runtime.start(Doubler.self, id: "d-1", input: 1)
            let first = try await client.execute(
                uri: "/v1/workflows/d-1/updates/double", method: .post, headers: [.init("Idempotency-Key")!: "u-1"], body: json("21"))
            #expect(first.status == .ok, "\(String(buffer: first.body))")
            #expect((try? first.decode(Int.self)) == 42)
            let again = try await client.execute(
                uri: "/v1/workflows/d-1/updates/double", method: .post, headers: [.init("Idempotency-Key")!: "u-1"], body: json("21"))
            #expect(try again.decode(Int.self) == 42)
            let refused = try await client.execute(uri: "/v1/workflows/d-1/updates/triple", method: .post, body: json("1"))
            #expect(refused.status == .unprocessableContent && refused.errorCode == "updateRejected")
            let badJSON = try await client.execute(uri: "/v1/workflows/d-1/updates/double", method: .post, body: json("{"))
            #expect(badJSON.status == .badRequest)
            let unknown = try await client.execute(uri: "/v1/workflows/nobody/updates/double", method: .post, body: json("1"))
            #expect(unknown.status == .notFound)
        }
    }
}

@Suite("HTTP schedules")
struct HTTPScheduleTests {
    @Test("PUT, GET and DELETE /v1/schedules/{name}: checked before storing, listed with next fire times")
    func scheduleRoutes() async throws {
        try await withAPI { client, runtime in
            let put = try await client.execute(
                uri: "/v1/schedules/nightly", method: .put,
                body: json(#"{"cron": "0 6 * * *", "timeZone": "Europe/Paris", "workflow": "approval", "input": {"amount": 3}, "catchUp": "all", "catchUpMax": 2}"#))
            #expect(put.status == .ok, "\(String(buffer: put.body))")
            let answer = try put.decode(ScheduleAnswer.self)
            #expect(answer.cron == "0 6 * * *" && answer.catchUp == "all" && answer.catchUpMax == 2 && answer.input == #"{"amount":3}"#)
            #expect(answer.next.count == 5 && answer.next.allSatisfy { $0.hasSuffix(":00:00Z") })
            let list = try await client.execute(uri: "/v1/schedules", method: .get)
            #expect(try list.decode(ScheduleList.self).schedules.map(\.name) == ["nightly"])
            for (body, code) in [
                (#"{"cron": "61 * * * *", "workflow": "approval", "input": {"amount": 1}}"#, "invalidArgument"),
                (#"{"cron": "* * * * *", "workflow": "nope"}"#, "unknownWorkflowType"),
                (#"{"cron": "* * * * *", "workflow": "approval", "input": {"wrong": 1}}"#, "payloadCoding"),
                (#"{"cron": "* * * * *", "workflow": "approval", "input": {"amount": 1}, "overlap": "sometimes"}"#, "invalidArgument"),
                (#"{"nothing": true}"#, "invalidArgument"),
            ] {
                let refused = try await client.execute(uri: "/v1/schedules/bad", method: .put, body: json(body))
                #expect(refused.errorCode == code, "\(body): \(String(buffer: refused.body))")
            }
            #expect(try await client.execute(uri: "/v1/schedules/bad", method: .get).status == .notFound)
            #expect(try await client.execute(uri: "/v1/schedules/nightly", method: .delete).status == .noContent)
            #expect(try await client.execute(uri: "/v1/schedules/nightly", method: .delete).status == .notFound)
            #expect(try await runtime.schedules().isEmpty)
        }
    }
}
