public import Continuum
public import Foundation
public import HTTPTypes
public import Hummingbird
import Logging
public import Prometheus

/// Continuum's HTTP API as Hummingbird routes, to mount in your own application; `continuum
/// serve` serves the same routes.
///
/// ```swift
/// let router = Router()
/// ContinuumAPI(runtime: runtime, configuration: .init(tokens: ["s3cret"])).register(on: router)
/// let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 8080)))
/// let group = ServiceGroup(services: [runtime, app], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
///
/// | Route | Does |
/// |---|---|
/// | `POST /v1/workflows/{type}?id=…` | starts a workflow; the body is its input (JSON); the same id and input again give the same run |
/// | `POST /v1/workflows/{id}/events/{name}` | delivers an event; the body is its payload; `Idempotency-Key` (or `webhook-id`) deduplicates |
/// | `GET /v1/workflows/{id}` | status, and the result once finished |
/// | `GET /v1/workflows/{id}/history` | every event of the workflow |
/// | `GET /v1/workflows?status=…&after=…&limit=…` | a page of workflows |
/// | `POST /v1/workflows/{id}/cancel` | asks the workflow to stop |
/// | `GET /healthz` | `200` once the runtime is ready, `503` before (no token needed) |
/// | `GET /metrics` | Prometheus metrics, when a registry is configured (no token needed) |
/// | `GET /`, `GET /ui/workflows/{id}` | the dashboard (see `registerDashboard`) |
///
/// Errors are JSON, `{"error": {"code": "unknownWorkflow", "message": "…"}}`, with a stable
/// `code`; a refused request appends nothing.
public struct ContinuumAPI: Sendable {
    /// How the API checks requests.
    public struct Configuration: Sendable {
        /// The largest request body accepted; larger ones get `413` before anything else is
        /// looked up. Default 256 KiB.
        public var maxBodySize: Int
        /// Bearer tokens, one of which every route but `/healthz` (and `/metrics`) requires
        /// when any is set. Kept hashed.
        public var tokens: BearerTokens
        /// Secrets for Standard Webhooks signatures: with any set, an event delivery with a
        /// valid signature is accepted without a bearer token.
        public var webhooks: WebhookVerifier
        /// When set, `GET /metrics` serves this registry in the Prometheus text format (no
        /// token needed, like `/healthz`). Report into it with `PrometheusMetricsFactory(registry:)`.
        public var metrics: PrometheusCollectorRegistry?
        /// How many signed `webhook-id`s are remembered with their target while their timestamp
        /// is inside the window, so a delivery cannot be replayed to another workflow or event.
        /// When that many arrived within the window, further signed deliveries get
        /// `503 webhookLimit` until older ids expire: refusing is safer than forgetting.
        public var webhookReplayCapacity: Int = 200_000
        /// Marks the dashboard's login cookie `Secure`. Set it when browsers reach the server
        /// over HTTPS (TLS in the server, or in a proxy in front); a request with
        /// `X-Forwarded-Proto: https` gets it either way.
        public var secureCookies: Bool = false

        /// - Parameters:
        ///   - tokens: Accepted bearer tokens; none means no authentication (bind to loopback).
        ///   - webhookSecrets: Standard Webhooks secrets (`whsec_…`); several at once for rotation.
        ///   - maxBodySize: The body limit in bytes.
        public init(
            tokens: [String] = [], webhookSecrets: [String] = [], maxBodySize: Int = 256 * 1024, metrics: PrometheusCollectorRegistry? = nil
        ) {
            self.metrics = metrics
            self.tokens = BearerTokens(tokens)
            self.webhooks = WebhookVerifier(secrets: webhookSecrets)
            self.maxBodySize = maxBodySize
        }

        /// Whether requests must authenticate.
        public var requiresAuthentication: Bool { !tokens.isEmpty || !webhooks.isEmpty }
    }

    let runtime: WorkflowRuntime
    let configuration: Configuration
    /// Where each signed webhook-id went, so it cannot be replayed elsewhere.
    let replayGuard: WebhookReplayGuard

    /// Creates the API over `runtime`.
    public init(runtime: WorkflowRuntime, configuration: Configuration = .init()) {
        self.runtime = runtime
        self.configuration = configuration
        self.replayGuard = WebhookReplayGuard(capacity: configuration.webhookReplayCapacity)
    }

    /// Adds the routes to `router`.
    public func register<Context: RequestContext>(on router: Router<Context>) {
        router.get("/healthz") { _, _ in
            try await self.healthz()
        }
        if let registry = configuration.metrics {
            router.get("/metrics") { _, _ in
                Response(
                    status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
            }
        }
        registerDashboard(on: router)
        let api = router.group("/v1/workflows")
        // The router needs one parameter name per position: here `:id` holds the type's name.
        api.post("/:id") { request, context in
            try await self.guarded(request, context, event: false) { body in
                try await self.start(type: Self.parameter(context, "id"), id: request.uri.queryParameters.get("id"), body: body)
            }
        }
        api.post("/:id/events/:name") { request, context in
            try await self.guarded(request, context, event: true) { body in
                // A signed delivery is deduplicated by its signed webhook-id, never by an
                // unsigned header a replayer could change.
                let signed = self.configuration.webhooks.isEmpty == false && request.headers[Self.webhookSignature] != nil
                    && !self.hasAcceptedToken(request)
                let key = signed ? request.headers[Self.webhookID] : request.headers[Self.idempotencyKey] ?? request.headers[Self.webhookID]
                return try await self.send(to: Self.parameter(context, "id"), name: Self.parameter(context, "name"), dedupKey: key, body: body)
            }
        }
        api.get("/:id") { request, context in
            try await self.guarded(request, context, event: false) { _ in try await self.workflow(Self.parameter(context, "id")) }
        }
        api.get("/:id/history") { request, context in
            try await self.guarded(request, context, event: false) { _ in try await self.history(Self.parameter(context, "id")) }
        }
        api.get("") { request, context in
            try await self.guarded(request, context, event: false) { _ in
                let query = request.uri.queryParameters
                return try await self.list(status: query.get("status"), after: query.get("after"), limit: query.get("limit"))
            }
        }
        api.post("/:id/cancel") { request, context in
            try await self.guarded(request, context, event: false) { body in
                try await self.cancel(Self.parameter(context, "id"), body: body)
            }
        }
    }

    /// A path parameter, percent-decoded (the router hands them over raw).
    static func parameter(_ context: some RequestContext, _ name: String) -> String {
        let raw = context.parameters.get(name) ?? ""
        return raw.removingPercentEncoding ?? raw
    }

    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    static let webhookID = HTTPField.Name("webhook-id")!
    static let webhookTimestamp = HTTPField.Name("webhook-timestamp")!
    static let webhookSignature = HTTPField.Name("webhook-signature")!

    // MARK: The checks every request passes, in order

    /// Size, then authentication, then the handler; every failure becomes a JSON error.
    func guarded(
        _ request: Request, _ context: some RequestContext, event: Bool, _ handler: ([UInt8]) async throws -> Response
    ) async throws -> Response {
        do {
            // 1. Size, decided from the header before anything is read or looked up.
            if let length = request.headers[.contentLength].flatMap(Int.init), length > configuration.maxBodySize {
                throw APIError.tooLarge(limit: configuration.maxBodySize)
            }
            let body: [UInt8]
            do {
                body = Array(buffer: try await request.body.collect(upTo: configuration.maxBodySize))
            } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
                throw APIError.tooLarge(limit: configuration.maxBodySize)
            }
            // 2. Who is asking: a bearer token, or for an event a webhook signature, checked
            //    over the raw bytes before anything parses them.
            let target = event ? WebhookReplayGuard.Target(workflowID: Self.parameter(context, "id"), event: Self.parameter(context, "name")) : nil
            try authenticate(request, event: target, body: body)
            try Self.refuseCrossSite(request)
            return try await handler(body)
        } catch let error as APIError {
            return Self.refuse(error, request, context)
        } catch let error as ContinuumError {
            return Self.refuse(APIError(error), request, context)
        }
    }

    /// Refuses a state-changing request a browser sent from another site: without it, any web
    /// page open in a browser on the same machine could start or cancel workflows on a server
    /// that runs without tokens on 127.0.0.1 (a form can post a JSON-looking body as text).
    /// Clients that are not browsers send neither header and are not affected.
    static func refuseCrossSite(_ request: Request) throws(APIError) {
        guard request.method != .get, request.method != .head else { return }
        if let site = request.headers[secFetchSite], site == "cross-site" || site == "same-site" {
            throw APIError.crossSite
        }
        if let origin = request.headers[.origin], origin != "null" {
            let host = request.head.authority ?? ""
            guard let url = URL(string: origin), let originHost = url.host else { throw APIError.crossSite }
            let originAuthority = url.port.map { "\(originHost):\($0)" } ?? originHost
            guard originAuthority.lowercased() == host.lowercased() else {
                var error = APIError.crossSite
                error.message += " (Origin \(origin), this server \(host.isEmpty ? "unnamed" : host))"
                throw error
            }
        } else if request.headers[.origin] == "null" {
            throw APIError.crossSite
        }
    }

    static let secFetchSite = HTTPField.Name("Sec-Fetch-Site")!

    /// The error's response, logged with dotted metadata: a client's mistake at `debug`, the
    /// server's own failure at `error`.
    private static func refuse(_ error: APIError, _ request: Request, _ context: some RequestContext) -> Response {
        context.logger.log(
            level: error.status.code >= 500 ? .error : .debug, "Request refused: \(error.message)",
            metadata: [
                "continuum.error.code": "\(error.code)", "continuum.http.status": "\(error.status.code)",
                "continuum.http.path": "\(request.uri.path)",
            ])
        return error.response()
    }

    /// Whether the request carries an accepted bearer token.
    func hasAcceptedToken(_ request: Request) -> Bool {
        guard let authorization = request.headers[.authorization], authorization.lowercased().hasPrefix("bearer ") else { return false }
        return configuration.tokens.accepts(authorization.dropFirst(7).trimmingCharacters(in: .whitespaces))
    }

    /// Accepts a bearer token, or for an event (`event` names its target) a webhook signature.
    private func authenticate(_ request: Request, event: WebhookReplayGuard.Target?, body: [UInt8]) throws(APIError) {
        guard configuration.requiresAuthentication else { return }
        if hasAcceptedToken(request) { return }
        if let event, !configuration.webhooks.isEmpty, request.headers[Self.webhookSignature] != nil {
            let now = Date()
            let signedAt: Int64
            do {
                signedAt = try configuration.webhooks.verify(
                    id: request.headers[Self.webhookID], timestamp: request.headers[Self.webhookTimestamp],
                    signatures: request.headers[Self.webhookSignature], body: body, now: now)
            } catch {
                throw APIError(status: .unauthorized, code: "badSignature", message: "The webhook signature was refused: \(error).")
            }
            let id = request.headers[Self.webhookID] ?? ""
            guard id.utf8.count <= 256 else {
                throw APIError(status: .badRequest, code: "invalidArgument", message: "A webhook-id must be at most 256 bytes.")
            }
            // A target the handler will refuse as invalid is not remembered.
            guard event.workflowID.utf8.count <= 511, event.event.utf8.count <= 256 else { return }
            let expires = signedAt + configuration.webhooks.tolerance.components.seconds
            switch replayGuard.admit(id: id, target: event, expires: expires, now: Int64(now.timeIntervalSince1970)) {
            case .admitted:
                return
            case .replayed:
                throw APIError(
                    status: .conflict, code: "webhookReplayed",
                    message: "webhook-id '\(id)' was already delivered to another workflow or event; "
                        + "a sender must give every message its own webhook-id.")
            case .full:
                throw APIError(
                    status: .serviceUnavailable, code: "webhookLimit",
                    message: "More signed deliveries arrived within the signature window than this server remembers "
                        + "(webhookReplayCapacity \(replayGuard.capacity)); retry in a few minutes, or raise the capacity.")
            }
        }
        throw APIError(
            status: .unauthorized, code: "unauthorized",
            message: "This server requires a bearer token: send `Authorization: Bearer <token>`"
                + (event != nil && !configuration.webhooks.isEmpty ? ", or sign the delivery with a webhook secret." : "."))
    }

    // MARK: Handlers

    func healthz() async throws -> Response {
        runtime.isReady
            ? Self.json(.ok, .object(["status": .string("ready")]))
            : Self.json(.serviceUnavailable, .object(["status": .string("starting")]))
    }

    func start(type: String, id: String?, body: [UInt8]) async throws -> Response {
        let id = id ?? UUID().uuidString.lowercased()
        try Self.validate(name: type, what: "workflow type")
        try Self.validate(name: id, what: "workflow id", limit: 511)
        guard runtime.workflowTypes.contains(type) else {
            throw APIError(
                status: .notFound, code: ContinuumError.Code.unknownWorkflowType.name,
                message: "No workflow type '\(type)' is registered here; the types are: \(runtime.workflowTypes.joined(separator: ", ")).")
        }
        let input = body.isEmpty ? Array("null".utf8) : body
        guard JSONValue(parsing: input) != nil else { throw APIError.notJSON("The body (the workflow's input)") }
        let receipt = try await runtime.start(type: type, id: id, json: input)
        return Self.json(receipt.created ? .created : .ok, .object([
            "id": .string(receipt.id), "type": .string(receipt.type), "created": .bool(receipt.created),
        ]))
    }

    func send(to id: String, name: String, dedupKey: String?, body: [UInt8]) async throws -> Response {
        try Self.validate(name: id, what: "workflow id", limit: 511)
        try Self.validate(name: name, what: "event name")
        if let dedupKey { try Self.validate(name: dedupKey, what: "Idempotency-Key") }
        let payload = body.isEmpty ? Array("null".utf8) : body
        guard JSONValue(parsing: payload) != nil else { throw APIError.notJSON("The body (the event's payload)") }
        let receipt = try await runtime.send(name, to: id, json: payload, dedupKey: dedupKey)
        return Self.json(receipt.duplicate ? .ok : .accepted, .object([
            "workflowID": .string(receipt.workflowID), "sequence": .integer(Int64(receipt.sequence)), "duplicate": .bool(receipt.duplicate),
        ]))
    }

    func workflow(_ id: String) async throws -> Response {
        try Self.validate(name: id, what: "workflow id", limit: 511)
        guard let summary = try await runtime.status(of: id) else { throw APIError.unknownWorkflow(id) }
        var object = Self.summary(summary)
        switch try await runtime.history(of: id).last?.kind {
        case .workflowCompleted(let output)?: object["result"] = .payload(output)
        case .workflowFailed(let failure)?:
            object["error"] = .object(["type": .string(failure.type), "message": .string(failure.message)])
        case .workflowCancelled(let reason)?: object["reason"] = .string(reason)
        default: break
        }
        if let suspension = try await runtime.suspension(of: id) {
            object["error"] = .object(["code": .string(suspension.code), "message": .string(suspension.message)])
        }
        return Self.json(.ok, .object(object))
    }

    func history(_ id: String) async throws -> Response {
        try Self.validate(name: id, what: "workflow id", limit: 511)
        let events = try await runtime.history(of: id)
        return Self.json(.ok, .object(["id": .string(id), "events": .array(events.map(\.json))]))
    }

    func list(status: String?, after: String?, limit: String?) async throws -> Response {
        var filter: WorkflowStatus?
        if let status {
            guard let parsed = WorkflowStatus.allCases.first(where: { "\($0)" == status }) else {
                throw APIError(
                    status: .badRequest, code: ContinuumError.Code.invalidArgument.name,
                    message: "status must be one of \(WorkflowStatus.allCases.map { "\($0)" }.joined(separator: ", ")); got '\(status)'.")
            }
            filter = parsed
        }
        let count = try limit.map { text throws(APIError) in
            guard let value = Int(text), (1...1000).contains(value) else {
                throw APIError(status: .badRequest, code: ContinuumError.Code.invalidArgument.name, message: "limit must be 1 to 1000; got '\(text)'.")
            }
            return value
        } ?? 100
        let page = try await runtime.list(status: filter, after: after, limit: count)
        var object: [String: JSONValue] = ["workflows": .array(page.workflows.map { JSONValue.object(Self.summary($0)) })]
        if let next = page.next { object["next"] = .string(next) }
        return Self.json(.ok, .object(object))
    }

    func cancel(_ id: String, body: [UInt8]) async throws -> Response {
        try Self.validate(name: id, what: "workflow id", limit: 511)
        var reason = "cancelled over HTTP"
        if !body.isEmpty {
            guard case .object(let object)? = JSONValue(parsing: body) else { throw APIError.notJSON("The body (`{\"reason\": \"…\"}`)") }
            if case .string(let given)? = object["reason"] { reason = given }
        }
        try await runtime.cancel(id, reason: reason)
        return Self.json(.accepted, .object(["id": .string(id), "cancelRequested": .bool(true)]))
    }

    // MARK: Helpers

    static func summary(_ summary: WorkflowSummary) -> [String: JSONValue] {
        [
            "id": .string(summary.id), "type": .string(summary.type), "status": .string("\(summary.status)"),
            "createdAt": .string(Timestamp.string(nanoseconds: summary.createdAt)),
            "updatedAt": .string(Timestamp.string(nanoseconds: summary.updatedAt)),
        ]
    }

    /// Names and ids: 1 to `limit` bytes of UTF-8 without control characters.
    static func validate(name: String, what: String, limit: Int = 256) throws(APIError) {
        guard !name.isEmpty, name.utf8.count <= limit, !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw APIError(
                status: .badRequest, code: ContinuumError.Code.invalidArgument.name,
                message: "A \(what) must be 1 to \(limit) bytes of UTF-8 without control characters; got \(name.utf8.count) bytes.")
        }
    }

    static func json(_ status: HTTPResponse.Status, _ value: JSONValue) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// An API error: an HTTP status, a stable code and a message that says what to do.
struct APIError: Error, Sendable {
    var status: HTTPResponse.Status
    var code: String
    var message: String

    init(status: HTTPResponse.Status, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    /// A runtime error, with the status its code calls for.
    init(_ error: ContinuumError) {
        let status: HTTPResponse.Status
        switch error.code {
        case .invalidArgument, .payloadCoding: status = .badRequest
        case .unknownWorkflowType, .unknownWorkflow: status = .notFound
        case .workflowFinished, .workflowIDConflict, .dedupKeyConflict, .nondeterminism, .ambiguousStep,
            .corruptedData:
            status = .conflict
        case .notRunning, .storeClosed, .storeLocked: status = .serviceUnavailable
        case .storageFull: status = HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")
        case .payloadTooLarge: status = .contentTooLarge
        default: status = .internalServerError
        }
        self.init(status: status, code: error.code.name, message: error.message)
    }

    static func tooLarge(limit: Int) -> APIError {
        APIError(
            status: .contentTooLarge, code: "bodyTooLarge",
            message: "The request body is larger than this server's limit of \(limit) bytes; send a smaller payload (store large data elsewhere and send a reference).")
    }

    static let crossSite = APIError(
        status: .forbidden, code: "crossSiteRequest",
        message: "A page from another site may not change workflows here; send the request from this server's own pages or from a non-browser client.")

    static func notJSON(_ what: String) -> APIError {
        APIError(status: .badRequest, code: "invalidJSON", message: "\(what) is not valid JSON.")
    }

    static func unknownWorkflow(_ id: String) -> APIError {
        APIError(status: .notFound, code: ContinuumError.Code.unknownWorkflow.name, message: "No workflow has id '\(id)'.")
    }

    func response() -> Response {
        ContinuumAPI.json(status, .object(["error": .object(["code": .string(code), "message": .string(message)])]))
    }
}
