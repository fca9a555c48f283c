@_spi(Testing) import Continuum
import ContinuumHTTP
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Prometheus
import Testing

/// The OpenAPI description (`ContinuumAPI.openAPIDescription`) parsed.
private func openAPIDocument() throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(ContinuumAPI.openAPIDescription.utf8)) as? [String: Any])
}

/// One operation of the description: `GET /v1/workflows/{id}`, as Hummingbird's
/// `Router.routes` writes a route, with the statuses it is described to answer with.
private struct DescribedOperation: CustomStringConvertible {
    var method: String
    var path: String
    var statuses: Set<Int>
    var description: String { "\(method) \(path)" }
}

private func describedOperations() throws -> [DescribedOperation] {
    let paths = try #require(try openAPIDocument()["paths"] as? [String: [String: Any]])
    let methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]
    return paths.flatMap { path, item in
        item.compactMap { method, operation -> DescribedOperation? in
            guard methods.contains(method), let responses = (operation as? [String: Any])?["responses"] as? [String: Any] else { return nil }
            return DescribedOperation(method: method.uppercased(), path: path, statuses: Set(responses.keys.compactMap(Int.init)))
        }
    }.sorted { $0.description < $1.description }
}

/// Every `$ref` in `value`, wherever it is nested.
private func references(in value: Any) -> [String] {
    if let object = value as? [String: Any] {
        let own = (object["$ref"] as? String).map { [$0] } ?? []
        return own + object.values.flatMap(references(in:))
    }
    if let array = value as? [Any] { return array.flatMap(references(in:)) }
    return []
}

@Suite("OpenAPI description")
struct OpenAPITests {
    @Test("the description has exactly the routes the API registers, the dashboard's pages aside")
    func describesEveryRoute() async throws {
        let described = Set(try describedOperations().map(\.description))
        try await withTemporaryDirectory { path in
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Approval()]) { runtime throws in
                // Every route there is: with tokens, webhook secrets and a metrics registry.
                let api = ContinuumAPI(
                    runtime: runtime,
                    configuration: .init(tokens: ["t"], webhookSecrets: ["whsec_c2VjcmV0"], metrics: PrometheusCollectorRegistry()))
                let router = Router()
                api.register(on: router)
                let registered = Set(router.routes.map(\.description))
                // The dashboard's HTML pages, as a router holding only them lists them.
                let dashboardRouter = Router()
                dashboardRouter.group(context: ContinuumRequestContext<BasicRequestContext>.self).addRoutes(api.dashboardRoutes())
                let dashboard = Set(dashboardRouter.routes.map(\.description))
                #expect(!dashboard.isEmpty && dashboard.isSubset(of: registered))

                let undescribed = registered.subtracting(dashboard).subtracting(described)
                #expect(undescribed.isEmpty, "routes the API registers that openAPIDescription does not describe: \(undescribed.sorted())")
                let unregistered = described.subtracting(registered)
                #expect(unregistered.isEmpty, "operations openAPIDescription describes that the API does not register: \(unregistered.sorted())")
                #expect(described.isDisjoint(with: dashboard))
            }
        }
    }

    @Test("every described operation answers on a live server with a status it is described with, never the router's 404")
    func everyOperationAnswers() async throws {
        let operations = try describedOperations()
        let configuration = ContinuumAPI.Configuration(tokens: ["op-token"], metrics: PrometheusCollectorRegistry())
        try await withAPI(configuration) { client, runtime in
            try await eventually { runtime.isReady }
            for operation in operations {
                // Path parameters filled with a name nothing has: the handler answers, not the router.
                let uri = operation.path.replacing(/\{[^}]+\}/, with: "nothing-here")
                let response = try await client.execute(
                    uri: uri, method: .init(rawValue: operation.method)!, headers: [.authorization: "Bearer op-token"],
                    body: operation.method == "POST" ? json("{}") : nil)
                let status = Int(response.status.code)
                #expect(operation.statuses.contains(status), "\(operation) answered \(status), which it is not described with: \(operation.statuses.sorted())")
                if response.status == .notFound {
                    #expect(response.errorCode != nil, "\(operation) answered the router's 404 (no such route), not the API's")
                }
                if status >= 400 {
                    #expect(response.headers[.contentType]?.hasPrefix("application/json") == true && response.errorCode != nil, "\(operation): \(status)")
                }
            }
        }
    }

    @Test("GET /openapi.json serves the description, byte for byte, without a token")
    func servesTheDescription() async throws {
        try await withAPI(.init(tokens: ["secret"])) { client, _ in
            let response = try await client.execute(uri: "/openapi.json", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/json; charset=utf-8")
            #expect(String(buffer: response.body) == ContinuumAPI.openAPIDescription)
            let document = try #require(try JSONSerialization.jsonObject(with: Data(Array(buffer: response.body))) as? [String: Any])
            #expect(document["openapi"] as? String == "3.1.0")
        }
    }

    @Test("the description is consistent: every $ref resolves, operation ids are unique, links name operations that exist")
    func consistent() throws {
        let document = try openAPIDocument()
        for reference in Set(references(in: document)) {
            var node: Any? = document
            #expect(reference.hasPrefix("#/"), "\(reference) is not local")
            for key in reference.dropFirst(2).split(separator: "/") { node = (node as? [String: Any])?[String(key)] }
            #expect(node != nil, "\(reference) does not resolve")
        }
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        let operations = paths.values.flatMap { $0.values.compactMap { $0 as? [String: Any] } }
        let ids = operations.compactMap { $0["operationId"] as? String }
        #expect(ids.count == operations.count && Set(ids).count == ids.count, "\(ids)")
        let links = operations.flatMap { operation in
            ((operation["responses"] as? [String: Any]) ?? [:]).values.flatMap { response in
                (((response as? [String: Any])?["links"] as? [String: Any]) ?? [:]).values.compactMap { ($0 as? [String: Any])?["operationId"] as? String }
            }
        }
        #expect(!links.isEmpty && Set(links).isSubset(of: Set(ids)), "\(links)")
    }
}

/// schemathesis, as `make schemathesis` (tools/schemathesis.sh) installs it into `.build/venv`,
/// or as `SCHEMATHESIS` names it.
private func schemathesisExecutable() -> String? {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let path = ProcessInfo.processInfo.environment["SCHEMATHESIS"] ?? root.appendingPathComponent(".build/venv/bin/schemathesis").path
    return FileManager.default.isExecutableFile(atPath: path) ? path : nil
}

extension OpenAPITests {
    /// schemathesis reads the description the server serves, generates requests for every
    /// operation (the description's examples, then boundary values, then random ones, then
    /// sequences that follow its links) and checks every answer: no 5xx, and only statuses,
    /// content types, headers and bodies the description allows.
    @Test("schemathesis against a live `continuum serve`: no server error, no answer outside the description")
    func schemathesis() async throws {
        let continuum = try #require(builtExecutable(named: "continuum"), "build the continuum executable first (swift build)")
        let schemathesis = try #require(schemathesisExecutable(), "schemathesis is missing: run `make schemathesis` (tools/schemathesis.sh)")
        try await withTemporaryDirectory { path in
            let port = randomServerPort()
            let base = "http://127.0.0.1:\(port)"
            // With a webhook secret too, so that requests without the token meet the signature check.
            let server = try ChildProcess(
                executable: continuum,
                arguments: ["serve", "--path", path, "--port", "\(port)", "--token", "fuzz-token", "--webhook-secret", "whsec_c2NoZW1hdGhlc2lz"])
            defer { if !server.hasExited { server.kill() } }
            try await server.waitForLine("Continuum is serving \(path) at \(base)")
            let auth = ["Authorization": "Bearer fuzz-token"]
            // The workflow the description's examples name, so they reach a workflow that exists.
            let (started, body) = try await request(
                "POST", "\(base)/v1/workflows/purchase-approval?id=po-1", headers: auth, body: #"{"item": "laptop", "amount": 1200}"#)
            #expect(started == 201, "\(body)")

            // The description as this server serves it, from a file: loaded from its URL,
            // schemathesis would leave out the operation at that URL.
            let (served, description) = try await request("GET", "\(base)/openapi.json")
            #expect(served == 200 && description == ContinuumAPI.openAPIDescription)
            let file = "\(path)/openapi.json"
            try Data(description.utf8).write(to: URL(fileURLWithPath: file))

            // An update waits for the workflow's reply up to its timeout (default 30 s), and the
            // example workflows handle none: schemathesis sends updates with a short one, and
            // takes `504 timedOut` (no reply in time, the update recorded) as the answer it is.
            let configuration = "\(path)/schemathesis.toml"
            try Data(
                """
                [[operations]]
                include-operation-id = "sendUpdate"
                parameters = { "query.timeout" = 0.2 }
                checks.not_a_server_error.expected-statuses = ["2XX", "3XX", "4XX", "504"]

                """.utf8
            ).write(to: URL(fileURLWithPath: configuration))

            let seed = ProcessInfo.processInfo.environment["CONTINUUM_SCHEMATHESIS_SEED"] ?? "20261130"
            let arguments = [
                "--config-file", configuration, "run", file, "--url", base, "--header", "Authorization: Bearer fuzz-token",
                // No 5xx; only described statuses, content types, headers and bodies; a route that
                // needs a token refuses a request without one; a workflow started is there to get.
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,"
                    + "ignored_auth,ensure_resource_availability",
                "--max-examples", "50", "--seed", seed, "--generation-database", "none", "--request-timeout", "10", "--no-color",
            ]
            // In the temporary directory, so nothing it writes lands in the work tree; errors with the report.
            let run = try ChildProcess(
                executable: "/bin/sh", arguments: ["-c", #"cd "$0" && program="$1" && shift && exec "$program" "$@" 2>&1"#, path, schemathesis] + arguments)
            let exit = try await run.exit(within: .seconds(300))
            #expect(exit == .exited(0), "schemathesis \(exit.map(\.description) ?? "ran over 300 s and was killed"):\n\(run.output)")
            // Every operation was tested, none left out.
            let operations = try describedOperations().count
            #expect(run.output.contains("Tested: \(operations)\n"), "schemathesis did not test all \(operations) operations:\n\(run.output)")
            server.terminate()
            #expect(await server.exit() == .exited(0))
        }
    }
}
