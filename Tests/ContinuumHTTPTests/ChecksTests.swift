@_spi(Testing) import Continuum
@testable import ContinuumHTTP
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// The API's checks are one middleware per route (`APIChecks`); these pin down that every kind
/// of route still refuses in the order the separate middlewares did.
@Suite("HTTP checks")
struct ChecksTests {
    @Test("an event delivery and a schedule pass the checks in order: body size, caller (token, then signature), site, handler")
    func order() async throws {
        let secret = "whsec_" + Data("the secret".utf8).base64EncodedString()
        try await withAPI(.init(tokens: ["t"], webhookSecrets: [secret], maxBodySize: 1024)) { client, runtime in
            let big = ByteBuffer(repeating: UInt8(ascii: " "), count: 4096)
            let evil: HTTPFields = [.origin: "http://evil.example"]
            var evilWithToken = evil
            evilWithToken[.authorization] = "Bearer t"
            let timestamp = Int64(Date().timeIntervalSince1970)
            let badSignature: HTTPFields = [
                .init("webhook-id")!: "d1", .init("webhook-timestamp")!: "\(timestamp)", .init("webhook-signature")!: "v1,bm9wZQ==",
            ]
            var badSignatureWithToken = badSignature
            badSignatureWithToken[.authorization] = "Bearer t"
            var badSignatureFromEvil = badSignature
            badSignatureFromEvil[.origin] = "http://evil.example"
            let event = "/v1/workflows/nobody/events/approve"
            let steps: [(String, HTTPRequest.Method, HTTPFields, ByteBuffer, HTTPResponse.Status, String)] = [
                (event, .post, evil, big, .contentTooLarge, "bodyTooLarge"),
                (event, .post, evil, json("{}"), .unauthorized, "unauthorized"),
                (event, .post, evilWithToken, json("{}"), .forbidden, "crossSiteRequest"),
                // A refused signature is refused whatever comes after it …
                (event, .post, badSignatureFromEvil, json("{}"), .unauthorized, "badSignature"),
                // … but with an accepted token it is not looked at.
                (event, .post, badSignatureWithToken, json("{}"), .notFound, "unknownWorkflow"),
                (event, .post, [.authorization: "Bearer t"], json("{}"), .notFound, "unknownWorkflow"),
                ("/v1/schedules/s", .put, evil, big, .contentTooLarge, "bodyTooLarge"),
                ("/v1/schedules/s", .put, evil, json("{}"), .unauthorized, "unauthorized"),
                ("/v1/schedules/s", .put, evilWithToken, json("{}"), .forbidden, "crossSiteRequest"),
                ("/v1/schedules/s", .put, [.authorization: "Bearer t"], json("{}"), .badRequest, "invalidArgument"),
                ("/v1/schedules/s", .get, [.authorization: "Bearer t"], ByteBuffer(), .notFound, "unknownSchedule"),
            ]
            for (uri, method, headers, body, status, code) in steps {
                let response = try await client.execute(uri: uri, method: method, headers: headers, body: body)
                #expect(response.status == status && response.errorCode == code, "\(method) \(uri): \(code), got \(response.status) \(String(buffer: response.body))")
            }
            // The unauthorized answer names the signature as a way in only where one is accepted.
            let event401 = try await client.execute(uri: event, method: .post, body: json("{}"))
            let schedule401 = try await client.execute(uri: "/v1/schedules/s", method: .get)
            #expect(try event401.decode(APIError.Body.self).error.message.contains("webhook secret"))
            #expect(try !schedule401.decode(APIError.Body.self).error.message.contains("webhook secret"))
            #expect(try await runtime.list(limit: 10).isEmpty)
            #expect(try await runtime.schedules().isEmpty)
        }
    }

    @Test("a runtime error from the handler is answered as the API error its code calls for, on every kind of route")
    func runtimeErrors() async throws {
        try await withAPI { client, runtime in
            _ = try await client.execute(uri: "/v1/workflows/approval?id=done", method: .post, body: json(#"{"amount": 2}"#))
            #expect(try await client.execute(uri: "/v1/workflows/done/events/approve", method: .post, body: json(#"{"by": "x"}"#)).status == .accepted)
            _ = try await runtime.handle(Approval.self, id: "done").result()
            let late = try await client.execute(uri: "/v1/workflows/done/events/approve", method: .post, body: json(#"{"by": "late"}"#))
            #expect(late.status == .conflict && late.errorCode == "workflowFinished")
            // A schedule naming an unknown type: the runtime refuses it.
            let schedule = try await client.execute(uri: "/v1/schedules/s", method: .put, body: json(#"{"cron": "* * * * *", "workflow": "nope"}"#))
            #expect(schedule.status == .notFound && schedule.errorCode == "unknownWorkflowType")
        }
    }

    @Test("a header's value is the subscript's: none, one, several joined with commas, cookies with semicolons, any case")
    func headerValues() {
        let key = HTTPField.Name("Idempotency-Key")!
        var fields: HTTPFields = [.contentType: "application/json"]
        #expect(fields.value(key) == nil && fields[key] == nil)
        fields.append(HTTPField(name: HTTPField.Name("idempotency-key")!, value: "k1"))
        #expect(fields.value(key) == "k1" && fields[key] == "k1")
        fields.append(HTTPField(name: HTTPField.Name("IDEMPOTENCY-KEY")!, value: "k2"))
        #expect(fields.value(key) == "k1, k2" && fields.value(key) == fields[key])
        fields.append(HTTPField(name: .cookie, value: "a=1"))
        fields.append(HTTPField(name: .cookie, value: "b=2"))
        #expect(fields.value(.cookie) == "a=1; b=2" && fields.value(.cookie) == fields[.cookie])
        #expect(fields.value(.contentType) == "application/json")
        fields.append(HTTPField(name: .authorization, value: ""))
        #expect(fields.value(.authorization) == "" && fields[.authorization] == "")
    }
}
