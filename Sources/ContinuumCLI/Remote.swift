import ArgumentParser
import ContinuumHTTP
import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Options for commands that talk to a running `continuum serve`.
struct ServerOptions: ParsableArguments {
    @Option(help: "The server's base URL.")
    var url = "http://127.0.0.1:8080"

    @Option(help: "A bearer token (default: the first of CONTINUUM_TOKENS).")
    var token: String?

    /// Sends one request; prints the JSON answer, or throws with the server's error message.
    func call(_ method: String, _ path: String, body: Data? = nil, headers: [String: String] = [:]) async throws -> Data {
        guard let base = URL(string: url), let target = URL(string: path, relativeTo: base) else {
            throw ValidationError("'\(url)' is not a URL.")
        }
        var request = URLRequest(url: target)
        request.httpMethod = method
        request.httpBody = body
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        let token = self.token ?? ProcessInfo.processInfo.environment["CONTINUUM_TOKENS"]?.split(separator: ",").first.map(String.init)
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else {
            throw RemoteError(status: status, body: String(decoding: data, as: UTF8.self))
        }
        return data
    }

    /// A path segment, percent-encoded.
    static func segment(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?#"))) ?? text
    }
}

/// The server refused a request.
struct RemoteError: Error, CustomStringConvertible {
    var status: Int
    var body: String

    /// The API's error code and message when the body is an API error, else the body.
    var description: String {
        guard let error = try? JSONDecoder().decode(APIError.Body.self, from: Data(body.utf8)).error else {
            return "the server answered \(status): \(body)"
        }
        return "the server answered \(status) \(error.code): \(error.message)"
    }
}

/// `continuum send <id> <event> --data JSON`: delivers an event through the HTTP API.
struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send an event to a workflow through a running server.")

    @Argument(help: "The workflow's id.") var id: String
    @Argument(help: "The event's name.") var event: String
    @Option(help: "The payload, as JSON.") var data = "null"
    @Option(help: "A dedup key: sending again with the same key delivers once.") var idempotencyKey: String?
    @OptionGroup var server: ServerOptions

    func run() async throws {
        guard (try? JSONSerialization.jsonObject(with: Data(data.utf8), options: [.fragmentsAllowed])) != nil else {
            throw ValidationError("--data is not valid JSON: \(data)")
        }
        let answer = try await server.call(
            "POST", "/v1/workflows/\(ServerOptions.segment(id))/events/\(ServerOptions.segment(event))", body: Data(data.utf8),
            headers: idempotencyKey.map { ["Idempotency-Key": $0] } ?? [:])
        print(String(decoding: answer, as: UTF8.self))
    }
}

/// `continuum cancel <id>`: asks a workflow to stop, through the HTTP API.
struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel a workflow through a running server.")

    @Argument(help: "The workflow's id.") var id: String
    @Option(help: "Why, recorded in history.") var reason = "cancelled from the command line"
    @OptionGroup var server: ServerOptions

    func run() async throws {
        let body = try JSONSerialization.data(withJSONObject: ["reason": reason])
        let answer = try await server.call("POST", "/v1/workflows/\(ServerOptions.segment(id))/cancel", body: body)
        print(String(decoding: answer, as: UTF8.self))
    }
}

/// `continuum export <id>`: a workflow's history as JSON, for replay tests and bug reports: the
/// file `WorkflowHistory(contentsOf:)` reads and `WorkflowReplayer` replays.
struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a workflow's history as JSON (a replayable history file), from a running server.")

    @Argument(help: "The workflow's id.") var id: String
    @OptionGroup var server: ServerOptions

    func run() async throws {
        let answer = try await server.call("GET", "/v1/workflows/\(ServerOptions.segment(id))/history")
        print(String(decoding: answer, as: UTF8.self), terminator: "")
    }
}
