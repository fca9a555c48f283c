import Continuum
import Foundation
import HTTPTypes
public import Hummingbird
public import HummingbirdAuth

extension ContinuumAPI {
    /// The schedules API, `v1/schedules…`, as a collection to mount with `addRoutes(_:atPath:)`
    /// (``register(on:atPath:)`` mounts it with the others). Same checks as ``workflowRoutes(context:)``.
    ///
    /// | Route | Does |
    /// |---|---|
    /// | `GET /v1/schedules` | every schedule with its next fire times (``ScheduleList``) |
    /// | `GET /v1/schedules/{name}` | one schedule (``ScheduleAnswer``) |
    /// | `PUT /v1/schedules/{name}` | creates or replaces it (``ScheduleRequest``) |
    /// | `DELETE /v1/schedules/{name}` | deletes it; workflows it started go on |
    public func scheduleRoutes<Context: AuthRequestContext<ContinuumCaller>>(context: Context.Type = Context.self) -> RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        let schedules = routes.group("v1/schedules")
            .add(
                middleware: APIChecks(
                    limit: configuration.maxBodySize, tokens: configuration.tokens, webhook: nil,
                    required: configuration.requiresAuthentication, refusal: unauthorizedForSchedules))
        schedules.get { _, _ in ScheduleList(schedules: try await self.runtime.schedules().map(ScheduleAnswer.init)) }
        schedules.get(":name") { _, context in try await self.schedule(named: context.pathParameter("name")) }
        schedules.put(":name") { request, context in try await self.putSchedule(request, named: context.pathParameter("name")) }
        schedules.delete(":name") { _, context in try await self.deleteSchedule(named: context.pathParameter("name")) }
        return routes
    }

    private var unauthorizedForSchedules: APIError {
        APIError(status: .unauthorized, code: .unauthorized, message: "This server requires a bearer token: send `Authorization: Bearer <token>`.")
    }

    func schedule(named name: String) async throws -> ScheduleAnswer {
        try validate(name: name, what: "schedule name")
        guard let info = try await runtime.schedule(named: name) else { throw APIError.unknownSchedule(name) }
        return ScheduleAnswer(info)
    }

    func putSchedule(_ request: Request, named name: String) async throws -> ScheduleAnswer {
        try validate(name: name, what: "schedule name")
        let body = try await jsonBody(request, what: "The body (the schedule)")
        let spec: ScheduleRequest
        do {
            spec = try JSONDecoder().decode(ScheduleRequest.self, from: Data(body))
        } catch {
            throw APIError.invalidArgument("The body must be a schedule: {\"cron\": …, \"workflow\": …, \"input\": …}; \(error).")
        }
        let schedule = try spec.schedule(named: name)
        try await runtime.schedule(schedule)
        guard let info = try await runtime.schedule(named: name) else { throw APIError.unknownSchedule(name) }
        return ScheduleAnswer(info)
    }

    func deleteSchedule(named name: String) async throws -> Response {
        try validate(name: name, what: "schedule name")
        guard try await runtime.schedule(named: name) != nil else { throw APIError.unknownSchedule(name) }
        try await runtime.unschedule(name)
        return Response(status: .noContent)
    }
}

extension APIError {
    static func unknownSchedule(_ name: String) -> APIError {
        APIError(status: .notFound, code: .unknownSchedule, message: "No schedule is named '\(name)'.")
    }
}

/// The body of `PUT /v1/schedules/{name}`.
///
/// ```json
/// {"cron": "0 6 * * *", "timeZone": "Europe/Paris", "workflow": "report", "input": {"to": "ops"},
///  "catchUp": "all", "catchUpMax": 3, "overlap": "skip"}
/// ```
public struct ScheduleRequest: Decodable, Sendable {
    /// The cron expression (5 fields, or 6 with seconds first).
    public var cron: String
    /// An IANA time zone; default `UTC`.
    public var timeZone: String?
    /// The workflow type each slot starts.
    public var workflow: String
    /// Its input (any JSON); default `null`.
    public var input: JSONValue?
    /// `skip`, `latest` (default) or `all`.
    public var catchUp: String?
    /// With `catchUp: all`, the most missed slots that run (default 10).
    public var catchUpMax: Int?
    /// `skip` (default) or `allow`.
    public var overlap: String?

    func schedule(named name: String) throws(APIError) -> Schedule {
        let catchUpPolicy: CatchUpPolicy
        switch catchUp ?? "latest" {
        case "skip": catchUpPolicy = .skip
        case "latest": catchUpPolicy = .latest
        case "all": catchUpPolicy = .all(max: catchUpMax ?? 10)
        case let other: throw APIError.invalidArgument("catchUp must be skip, latest or all; got '\(other)'.")
        }
        guard let overlapPolicy = OverlapPolicy(rawValue: overlap ?? "skip") else {
            throw APIError.invalidArgument("overlap must be skip or allow; got '\(overlap ?? "")'.")
        }
        return Schedule(
            name: name, cron: cron, timeZone: timeZone ?? "UTC", workflow: workflow, input: input?.text ?? "null", catchUp: catchUpPolicy,
            overlap: overlapPolicy)
    }
}

/// Any JSON value, kept as its text.
public struct JSONValue: Decodable, Sendable {
    /// The value's JSON text (keys sorted).
    public var text: String

    public init(from decoder: any Decoder) throws {
        let value = try decoder.singleValueContainer().decode(AnyJSON.self)
        let data = try JSONSerialization.data(withJSONObject: value.object, options: [.sortedKeys, .fragmentsAllowed])
        text = String(decoding: data, as: UTF8.self)
    }
}

/// A JSON value decoded into Foundation objects, to be written again.
private struct AnyJSON: Decodable {
    var object: Any

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            object = NSNull()
        } else if let bool = try? container.decode(Bool.self) {
            object = bool
        } else if let int = try? container.decode(Int.self) {
            object = int
        } else if let double = try? container.decode(Double.self) {
            object = double
        } else if let string = try? container.decode(String.self) {
            object = string
        } else if let array = try? container.decode([AnyJSON].self) {
            object = array.map(\.object)
        } else {
            object = try container.decode([String: AnyJSON].self).mapValues(\.object)
        }
    }
}

/// A schedule as the API answers it.
public struct ScheduleAnswer: ResponseCodable, Sendable, Equatable {
    public var name: String
    public var cron: String
    public var timeZone: String
    public var workflow: String
    /// The input, as its JSON text.
    public var input: String
    /// `skip`, `latest` or `all`.
    public var catchUp: String
    /// With `all`: the most missed slots that run.
    public var catchUpMax: Int?
    /// `skip` or `allow`.
    public var overlap: String
    /// The next fire times (up to five), ISO 8601.
    public var next: [String]
    /// The latest slot handled, ISO 8601.
    public var lastSlot: String?
    /// Slots that started a workflow, and slots skipped.
    public var started: Int
    public var skipped: Int
    /// The id of the workflow that runs the schedule (its history shows every slot).
    public var workflowID: String

    init(_ info: ScheduleInfo) {
        let schedule = info.schedule
        name = schedule.name
        cron = schedule.cron
        timeZone = schedule.timeZone
        workflow = schedule.workflow
        input = schedule.input
        switch schedule.catchUp {
        case .skip: (catchUp, catchUpMax) = ("skip", nil)
        case .latest: (catchUp, catchUpMax) = ("latest", nil)
        case .all(let max): (catchUp, catchUpMax) = ("all", max)
        }
        overlap = schedule.overlap.rawValue
        next = info.next.map { $0.formatted(.iso8601) }
        lastSlot = info.lastSlot.map { $0.formatted(.iso8601) }
        started = info.started
        skipped = info.skipped
        workflowID = info.workflowID
    }
}

/// The answer of `GET /v1/schedules`.
public struct ScheduleList: ResponseCodable, Sendable, Equatable {
    public var schedules: [ScheduleAnswer]
}
