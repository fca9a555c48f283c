@testable import ContinuumServer
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import Synchronization
import Testing

/// Keeps each line logged as `level message {metadata, sorted}`, minus Hummingbird's own
/// per-request id.
private final class Records: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

private struct RecordingHandler: LogHandler {
    let records: Records
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }.filter { $0.key != "hb.request.id" }
        let rendered = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        records.append("\(event.level) \(event.message) \(rendered)")
    }
}

@Suite("continuum serve's request middleware")
struct ServerRequestTests {
    /// Serves `/v1/workflows/{id}/events/{name}` (202, or a thrown 409 for the id `late`) behind
    /// `middleware`, logging at debug into `records`, and sends `requests` to it.
    private func serve(
        _ middleware: some RouterMiddleware<BasicRequestContext>, records: Records, requests: [(String, HTTPRequest.Method)]
    ) async throws -> [HTTPResponse.Status] {
        let router = Router()
        router.add(middleware: middleware)
        router.post("v1/workflows/:id/events/:name") { _, context -> Response in
            if context.parameters.get("id") == "late" { throw HTTPError(.conflict) }
            return Response(status: .accepted, body: .init(byteBuffer: ByteBuffer(string: "{}")))
        }
        let logger = Logger(label: "test") { _ in RecordingHandler(records: records) }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: logger)
        return try await app.test(.live) { client in
            var statuses: [HTTPResponse.Status] = []
            for (uri, method) in requests {
                statuses.append(try await client.execute(uri: uri, method: method, body: ByteBuffer(string: "{}")).status)
            }
            return statuses
        }
    }

    private let requests: [(String, HTTPRequest.Method)] = [
        ("/v1/workflows/po-1/events/note?x=1", .post), ("/v1/workflows/po-2/events/note", .post),
        ("/v1/workflows/late/events/note", .post), ("/nowhere", .get),
    ]

    @Test("each request is logged as Hummingbird's LogRequestsMiddleware logs it")
    func logging() async throws {
        let ours = Records()
        let theirs = Records()
        let registry = PrometheusCollectorRegistry()
        let statuses = try await serve(
            ServerRequestMiddleware(logLevel: .debug, factory: PrometheusMetricsFactory(registry: registry)), records: ours, requests: requests)
        let reference = try await serve(LogRequestsMiddleware(.debug), records: theirs, requests: requests)
        #expect(statuses == [.accepted, .accepted, .conflict, .notFound] && reference == statuses)
        let requestLines = ours.all.filter { $0.contains(" Request ") }
        #expect(requestLines.count == 4)
        #expect(requestLines.first == "debug Request hb.request.method=POST hb.request.path=/v1/workflows/po-1/events/note?x=1")
        #expect(requestLines == theirs.all.filter { $0.contains(" Request ") })
        // Not logged at all below the logger's level.
        let quiet = Records()
        _ = try await serve(ServerRequestMiddleware(logLevel: .trace, factory: PrometheusMetricsFactory(registry: registry)), records: quiet, requests: requests)
        #expect(!quiet.all.contains { $0.contains(" Request ") })
    }

    @Test("Hummingbird's request metrics, with its names and dimensions, for answers and for thrown errors")
    func metrics() async throws {
        let registry = PrometheusCollectorRegistry()
        _ = try await serve(
            ServerRequestMiddleware(logLevel: .debug, factory: PrometheusMetricsFactory(registry: registry)), records: Records(), requests: requests)
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        let text = String(decoding: bytes, as: UTF8.self)
        let lines = Set(text.split(separator: "\n").map(String.init))
        let route = #"http_route="/v1/workflows/{id}/events/{name}""#
        for expected in [
            #"hb_requests{\#(route),http_request_method="POST",http_response_status_code="202"} 2"#,
            #"hb_requests{\#(route),http_request_method="POST",http_response_status_code="409"} 1"#,
            #"hb_request_errors{\#(route),http_request_method="POST",error_type="409"} 1"#,
            #"hb_requests{http_route="NotFound",http_request_method="GET",http_response_status_code="404"} 1"#,
            #"hb_request_errors{http_route="NotFound",http_request_method="GET",error_type="404"} 1"#,
            #"http_server_request_duration_count{\#(route),http_request_method="POST",http_response_status_code="202"} 2"#,
            #"http_server_active_requests{http_request_method="POST"} 0.0"#,
            #"http_server_active_requests{http_request_method="GET"} 0.0"#,
        ] {
            #expect(lines.contains(expected), "\(expected)\n\(text)")
        }
        // A thrown answer is counted, not timed; an answer is not counted as an error (each
        // route, method and status has all three series, as with Hummingbird's middleware).
        #expect(lines.contains(#"http_server_request_duration_count{\#(route),http_request_method="POST",http_response_status_code="409"} 0"#))
        #expect(lines.contains(#"hb_request_errors{\#(route),http_request_method="POST",error_type="202"} 0"#))
    }
}
