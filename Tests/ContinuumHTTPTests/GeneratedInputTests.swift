@_spi(Testing) import Continuum
import ContinuumHTTP
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// A request made of seeded random parts: odd path segments and percent-escapes, every method,
/// malformed, deeply nested, huge and binary bodies, garbage headers.
private struct GeneratedRequest: CustomStringConvertible {
    var method: HTTPRequest.Method
    var uri: String
    var headers: HTTPFields
    var body: [UInt8]

    var description: String {
        "\(method) \(uri.prefix(120)) headers \(headers.map { "\($0.name)=\($0.value.prefix(40))" }) body \(body.count) bytes: "
            + String(decoding: body.prefix(60), as: UTF8.self)
    }

    static let segments = [
        "approval", "w", "", "%00", "%FF%FE", "%C3%28", "..", ".", "a%2Fb", String(repeating: "x", count: 600), "caf%C3%A9",
        "cafe%CC%81", "%", "%zz", "%E2%80%AE", "approve", "events", "%0D%0AX-Injected:%201", "%20", "%F0%9F%98%80",
    ]
    static let bodies: [[UInt8]] = [
        Array(#"{"amount": 5}"#.utf8), Array(#"{"by": "fuzz"}"#.utf8), Array(String(repeating: "[", count: 5_000).utf8),
        Array(String(repeating: #"{"a":"#, count: 2_000).utf8), [], Array("null".utf8), Array(#"{"amount": 1e999999}"#.utf8),
        Array(#"{"amount": 5, "amount": 6}"#.utf8), [0x22, 0xFF, 0xFE, 0x22], Array(#"{"reason": "\u0000"}"#.utf8),
        Array(repeating: UInt8(ascii: "a"), count: 70 * 1024), Array("{\"by\": \"".utf8) + Array(repeating: 0x41, count: 60_000) + [0x22, 0x7D],
    ]

    static func make(_ random: inout SeededGenerator) -> GeneratedRequest {
        func segment() -> String {
            if Int.random(in: 0..<4, using: &random) == 0 {
                return String((0..<Int.random(in: 1...12, using: &random)).map { _ in
                    Character(Unicode.Scalar(UInt8.random(in: 0x21...0x7E, using: &random)))
                }).addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "x"
            }
            return segments.randomElement(using: &random)!
        }
        let paths = [
            "/v1/workflows/\(segment())", "/v1/workflows/\(segment())/events/\(segment())", "/v1/workflows/\(segment())/history",
            "/v1/workflows/\(segment())/cancel", "/v1/workflows?status=\(segment())&limit=\(Int.random(in: -5...5000, using: &random))&after=\(segment())",
            "/\(segment())", "/ui/workflows/\(segment())", "/v1/workflows/approval?id=\(segment())",
        ]
        var headers: HTTPFields = [:]
        if Bool.random(using: &random) { headers[.authorization] = "Bearer t" }
        if Int.random(in: 0..<5, using: &random) == 0 { headers[.authorization] = "Bearer \(segment())" }
        if Bool.random(using: &random) {
            headers[HTTPField.Name("Idempotency-Key")!] = String(repeating: "k", count: Int.random(in: 0...300, using: &random))
        }
        if Int.random(in: 0..<4, using: &random) == 0 {
            headers[HTTPField.Name("webhook-id")!] = segment()
            headers[HTTPField.Name("webhook-timestamp")!] = ["0", "-1", "99999999999999999999", "\(Int(Date().timeIntervalSince1970))", "x"]
                .randomElement(using: &random)!
            headers[HTTPField.Name("webhook-signature")!] = ["v1,", "v1,AAAA", "v2,abc", "", "v1,!!!!"].randomElement(using: &random)!
        }
        if Int.random(in: 0..<6, using: &random) == 0 { headers[.origin] = ["null", "http://evil.example", "::", "http://"].randomElement(using: &random)! }
        let methods: [HTTPRequest.Method] = [.get, .post, .post, .post, .put, .delete, .patch, .head]
        return GeneratedRequest(
            method: methods.randomElement(using: &random)!, uri: paths.randomElement(using: &random)!, headers: headers,
            body: bodies.randomElement(using: &random)!)
    }
}

@Suite("Generated HTTP input")
struct GeneratedInputTests {
    @Test("seeded random requests: never a 5xx, the server keeps serving, a refused request appends nothing", arguments: [1, 2, 3] as [UInt64])
    func randomRequests(seed: UInt64) async throws {
        let secret = "whsec_" + Data("fuzz secret".utf8).base64EncodedString()
        try await withAPI(.init(tokens: ["t"], webhookSecrets: [secret], maxBodySize: 64 * 1024)) { client, runtime in
            let auth: HTTPFields = [.authorization: "Bearer t"]
            _ = try await client.execute(uri: "/v1/workflows/approval?id=w", method: .post, headers: auth, body: json(#"{"amount": 5}"#))
            try await runtime.waitForHistory(of: "w") { $0.count == 2 }
            var random = SeededGenerator(seed: seed)
            for index in 0..<250 {
                let request = GeneratedRequest.make(&random)
                let before = try await runtime.history(of: "w").count
                let workflows = try await runtime.list(limit: 10_000).count
                let response = try await client.execute(
                    uri: request.uri, method: request.method, headers: request.headers, body: ByteBuffer(bytes: request.body))
                #expect(response.status.code < 500, "seed \(seed) #\(index): \(request) → \(response.status)")
                if response.status.code < 300 {
                    // An accepted "approve" or cancel makes `w` append more after the response:
                    // let it end before the next request is judged by what `w` appended.
                    try await eventually {
                        let history = try await runtime.history(of: "w")
                        let ending = history.contains {
                            switch $0.kind {
                            case .cancelRequested: true
                            case .eventReceived(let name, _, _): name == "approve"
                            default: false
                            }
                        }
                        let status = try await runtime.status(of: "w")?.status
                        return !ending || status != .running
                    }
                }
                if response.status.code >= 400 {
                    #expect(try await runtime.history(of: "w").count == before, "seed \(seed) #\(index) was refused but appended: \(request)")
                    #expect(try await runtime.list(limit: 10_000).count == workflows, "seed \(seed) #\(index) was refused but created: \(request)")
                }
                if response.status.code >= 400, request.method != .head {
                    // A refusal says what went wrong, in JSON, or is the dashboard's page.
                    #expect(response.errorCode != nil || response.headers[.contentType]?.hasPrefix("text/html") == true || response.status == .notFound,
                        "seed \(seed) #\(index): \(response.status) without an error code for \(request)")
                }
            }
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .ok)
        }
    }

    @Test("a header larger than the server accepts is refused without harm; the server keeps serving")
    func hugeHeader() async throws {
        try await withAPI { client, runtime in
            let huge: HTTPFields = [HTTPField.Name("Idempotency-Key")!: String(repeating: "h", count: 200 * 1024)]
            let outcome = await errorOf {
                let response = try await client.execute(uri: "/v1/workflows/approval?id=h", method: .post, headers: huge, body: json(#"{"amount": 1}"#))
                #expect(response.status.code >= 400 && response.status.code < 500, "\(response.status)")
            }
            _ = outcome  // the server may also close the connection: either way it created nothing
            #expect(try await runtime.status(of: "h") == nil)
            // On a new connection: the refused one may have been closed.
            let port = try #require(client.port)
            let status = try await TestClient.withClient(host: "127.0.0.1", port: port) { fresh in
                try await fresh.get("/healthz").status
            }
            #expect(status == .ok)
        }
    }
}
