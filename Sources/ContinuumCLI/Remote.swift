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
    @Option(help: "Who asks, recorded in history (default: $USER (continuum)).") var by: String?
    @OptionGroup var server: ServerOptions

    func run() async throws {
        let body = try JSONSerialization.data(withJSONObject: ["reason": reason, "by": by ?? commandLineActor()])
        let answer = try await server.call("POST", "/v1/workflows/\(ServerOptions.segment(id))/cancel", body: body)
        print(String(decoding: answer, as: UTF8.self))
    }
}

/// `continuum update <id> <name> --data JSON`: sends an update and prints the workflow's reply.
struct Update: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send an update to a workflow through a running server and print its reply.")

    @Argument(help: "The workflow's id.") var id: String
    @Argument(help: "The update's name.") var name: String
    @Option(help: "The payload, as JSON.") var data = "null"
    @Option(help: "The update's id: sending again with the same key records once and gets the same reply.") var idempotencyKey: String?
    @OptionGroup var server: ServerOptions

    func run() async throws {
        guard (try? JSONSerialization.jsonObject(with: Data(data.utf8), options: [.fragmentsAllowed])) != nil else {
            throw ValidationError("--data is not valid JSON: \(data)")
        }
        let answer = try await server.call(
            "POST", "/v1/workflows/\(ServerOptions.segment(id))/updates/\(ServerOptions.segment(name))", body: Data(data.utf8),
            headers: idempotencyKey.map { ["Idempotency-Key": $0] } ?? [:])
        print(String(decoding: answer, as: UTF8.self))
    }
}

/// `continuum schedule <name> --cron … --workflow … --data JSON`: creates or replaces a schedule.
struct ScheduleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule", abstract: "Create or replace a durable schedule through a running server, and print it with its next fire times.")

    @Argument(help: "The schedule's name.") var name: String
    @Option(help: "The cron expression (5 fields, or 6 with seconds first).") var cron: String
    @Option(help: "The workflow type each slot starts.") var workflow: String
    @Option(help: "The workflow's input, as JSON.") var data = "null"
    @Option(help: "The time zone of the cron's wall-clock times.") var timeZone = "UTC"
    @Option(help: "Missed slots after downtime: skip, latest or all.") var catchUp = "latest"
    @Option(help: "With --catch-up all: the most missed slots that run.") var catchUpMax: Int?
    @Option(help: "While the previous slot's workflow runs: skip or allow.") var overlap = "skip"
    @OptionGroup var server: ServerOptions

    func run() async throws {
        guard let input = try? JSONSerialization.jsonObject(with: Data(data.utf8), options: [.fragmentsAllowed]) else {
            throw ValidationError("--data is not valid JSON: \(data)")
        }
        var body: [String: Any] = ["cron": cron, "workflow": workflow, "input": input, "timeZone": timeZone, "catchUp": catchUp, "overlap": overlap]
        if let catchUpMax { body["catchUpMax"] = catchUpMax }
        let answer = try await server.call(
            "PUT", "/v1/schedules/\(ServerOptions.segment(name))", body: try JSONSerialization.data(withJSONObject: body, options: [.fragmentsAllowed]))
        print(String(decoding: answer, as: UTF8.self))
    }
}

/// `continuum unschedule <name>`: deletes a schedule.
struct Unschedule: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete a schedule through a running server; the workflows it started go on.")

    @Argument(help: "The schedule's name.") var name: String
    @OptionGroup var server: ServerOptions

    func run() async throws {
        _ = try await server.call("DELETE", "/v1/schedules/\(ServerOptions.segment(name))")
        print("deleted \(name)")
    }
}

/// `continuum schedules`: every schedule with its next fire times.
struct Schedules: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the schedules of a running server with their next fire times.")

    @OptionGroup var server: ServerOptions

    func run() async throws {
        print(String(decoding: try await server.call("GET", "/v1/schedules"), as: UTF8.self))
    }
}

/// `continuum query <id> <name>`: the latest value a workflow published under a name.
struct Query: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the value a workflow published (ctx.publish) under a name, through a running server; appends nothing.")

    @Argument(help: "The workflow's id.") var id: String
    @Argument(help: "The published value's name.") var name: String
    @OptionGroup var server: ServerOptions

    func run() async throws {
        let answer = try await server.call("GET", "/v1/workflows/\(ServerOptions.segment(id))/queries/\(ServerOptions.segment(name))")
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

/// Who the ways out record as asking, unless `--by` says: the user running `continuum`.
private func commandLineActor() -> String {
    ProcessInfo.processInfo.environment["USER"].flatMap { $0.isEmpty ? nil : "\($0) (continuum)" } ?? "continuum"
}

/// Encodes a request body for the API.
private func encoded(_ body: some Encodable) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return try encoder.encode(body)
}

/// `continuum resume <id>`: lets a suspended workflow run again with the code deployed now.
struct Resume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Resume a suspended workflow with the code the server runs now, through a running server.",
        discussion: "If the code still does not match the workflow's history, it is suspended again with the new difference.")

    @Argument(help: "The workflow's id.") var id: String
    @Option(help: "Who asks, recorded in history (default: $USER (continuum)).") var by: String?
    @Option(help: "Why, recorded in history.") var reason = "resumed from the command line"
    @OptionGroup var server: ServerOptions

    func run() async throws {
        let body = try encoded(ResumeRequest(by: by ?? commandLineActor(), reason: reason))
        let answer = try await server.call("POST", "/v1/workflows/\(ServerOptions.segment(id))/resume", body: body)
        print(String(decoding: answer, as: UTF8.self))
    }
}

/// `continuum reset <id> --to <step>`: reruns a workflow from a step with the code deployed now.
struct Reset: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rerun a workflow from a step (or an event) with the code the server runs now, through a running server.",
        discussion: """
            The events from the step on are superseded (kept, shown by `continuum show` and the dashboard as superseded); \
            external events received after it are delivered again. Steps that run again get new idempotency keys.
            """)

    @Argument(help: "The workflow's id.") var id: String
    @Option(name: .customLong("to"), help: ArgumentHelp("The step (or wait) to run again, by name.", valueName: "step")) var step: String?
    @Option(help: "Which of several steps of that name (0 for the first).") var occurrence: UInt32?
    @Option(help: "The event (its sequence number, as `continuum show` prints it) to reset to instead of a step.") var toEvent: UInt32?
    @Option(help: "Who asks, recorded in history (default: $USER (continuum)).") var by: String?
    @Option(help: "Why, recorded in history.") var reason = "reset from the command line"
    @OptionGroup var server: ServerOptions

    func validate() throws {
        guard (step == nil) != (toEvent == nil) else { throw ValidationError("Give either --to <step> or --to-event <n>.") }
        if occurrence != nil, step == nil { throw ValidationError("--occurrence goes with --to <step>.") }
    }

    func run() async throws {
        let body = try encoded(ResetRequest(toStep: step, occurrence: occurrence, toEvent: toEvent, by: by ?? commandLineActor(), reason: reason))
        let answer = try await server.call("POST", "/v1/workflows/\(ServerOptions.segment(id))/reset", body: body)
        print(String(decoding: answer, as: UTF8.self))
    }
}

/// `continuum fork <id> --to <step> --as <new-id>`: a new workflow from a copy of the history up to a step.
struct Fork: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a new workflow from a copy of a workflow's history up to a step, through a running server.",
        discussion: "The new workflow runs from the step with the code the server runs now; the original is not touched.")

    @Argument(help: "The workflow's id.") var id: String
    @Option(name: .customLong("to"), help: ArgumentHelp("The step (or wait) the copy runs again from, by name.", valueName: "step"))
    var step: String
    @Option(help: "Which of several steps of that name (0 for the first).") var occurrence: UInt32?
    @Option(name: .customLong("as"), help: ArgumentHelp("The new workflow's id.", valueName: "new-id")) var newID: String
    @Option(help: "Who asks, recorded in history (default: $USER (continuum)).") var by: String?
    @Option(help: "Why, recorded in history.") var reason = "forked from the command line"
    @OptionGroup var server: ServerOptions

    func run() async throws {
        let body = try encoded(ForkRequest(toStep: step, occurrence: occurrence, as: newID, by: by ?? commandLineActor(), reason: reason))
        let answer = try await server.call("POST", "/v1/workflows/\(ServerOptions.segment(id))/fork", body: body)
        print(String(decoding: answer, as: UTF8.self))
    }
}
