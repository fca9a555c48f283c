import Continuum
import Foundation
import HTTPTypes
public import Hummingbird
public import HummingbirdAuth

extension ContinuumAPI {
    /// The JSON API, `v1/workflows…`, as a collection to mount with `addRoutes(_:atPath:)`.
    ///
    /// Its context must carry a ``ContinuumCaller``: use ``ContinuumRequestContext``, or a
    /// context of your own that conforms to `AuthRequestContext<ContinuumCaller>`.
    ///
    /// Each route checks, in order: the body size (`413`), the caller (`401`; for an event a
    /// webhook signature does instead of a token), for a write the site a browser sent it from
    /// (`403`), then ids, names and JSON (`400`); only then does it reach the runtime.
    public func workflowRoutes<Context: AuthRequestContext<ContinuumCaller>>(context: Context.Type = Context.self) -> RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        // Each route's checks are one middleware (APIChecks): the size, the caller, the site.
        routes.group("v1/workflows")
            .add(middleware: checks(webhook: true))
            .post(":id/events/:name") { request, context in try await self.send(request, context) }

        let workflows = routes.group("v1/workflows").add(middleware: checks(webhook: false))
        // The router needs one parameter name per position: here `:id` holds the type's name.
        workflows.post(":id") { request, context in try await self.start(request, context) }
        workflows.get(":id") { _, context in try await self.workflow(context.pathParameter("id")) }
        workflows.get(":id/history") { request, context in try await self.history(request, context) }
        workflows.post(":id/updates/:name") { request, context in try await self.update(request, context) }
        workflows.get(":id/queries/:name") { _, context in try await self.query(context.pathParameter("id"), context.pathParameter("name")) }
        workflows.get { request, _ in try await self.list(request) }
        workflows.post(":id/cancel") { request, context in try await self.cancel(request, context) }
        workflows.post(":id/resume") { request, context in try await self.resume(request, context) }
        workflows.post(":id/reset") { request, context in try await self.reset(request, context) }
        workflows.post(":id/fork") { request, context in try await self.fork(request, context) }
        return routes
    }

    /// The checks of a workflow route; for an event delivery (`webhook`) a Standard Webhooks
    /// signature may stand in for a token.
    private func checks<Context: AuthRequestContext<ContinuumCaller>>(webhook: Bool) -> APIChecks<Context> {
        APIChecks(
            limit: configuration.maxBodySize, tokens: configuration.tokens,
            webhook: webhook
                ? WebhookAuthenticator(
                    verifier: configuration.webhooks, replayGuard: replayGuard, limits: runtime.limits, maxBodySize: configuration.maxBodySize)
                : nil,
            required: configuration.requiresAuthentication, refusal: unauthorized(event: webhook))
    }

    private func unauthorized(event: Bool) -> APIError {
        APIError(
            status: .unauthorized, code: .unauthorized,
            message: "This server requires a bearer token: send `Authorization: Bearer <token>`"
                + (event && !configuration.webhooks.isEmpty ? ", or sign the delivery with a webhook secret." : "."))
    }

    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!

    // MARK: Handlers

    func start(_ request: Request, _ context: some RequestContext) async throws -> EditedResponse<JSONAnswer<StartReceipt>> {
        let type = context.pathParameter("id")
        let id = request.uri.queryParameters.get("id") ?? UUID().uuidString.lowercased()
        try validate(name: type, what: "workflow type")
        try validate(id: id)
        guard runtime.workflowTypes.contains(type) else {
            throw APIError(
                status: .notFound, code: .unknownWorkflowType,
                message: "No workflow type '\(type)' is registered here; the types are: \(runtime.workflowTypes.joined(separator: ", ")).")
        }
        let timeout = try request.uri.queryParameters.get("timeout").map { text throws(APIError) -> Duration in
            guard let seconds = Double(text), seconds > 0, seconds < 1e9 else {
                throw APIError.invalidArgument("timeout must be a positive number of seconds; got '\(text)'.")
            }
            return .nanoseconds(Int64(seconds * 1e9))
        }
        let parameters = request.uri.queryParameters
        let queue = try Self.queueEntry({ parameters.get($0) }, limit: runtime.limits.maxNameBytes)
        let input = try await jsonBody(request, what: "The body (the workflow's input)")
        let receipt = try await runtime.start(type: type, id: id, json: input, timeout: timeout, queue: queue)
        return EditedResponse(status: receipt.created ? .created : .ok, response: JSONAnswer(receipt))
    }

    func send(_ request: Request, _ context: some AuthRequestContext<ContinuumCaller>) async throws -> EventReceiptAnswer {
        let id = context.pathParameter("id")
        let name = context.pathParameter("name")
        // A signed delivery is deduplicated by its signed webhook-id, never by an unsigned
        // header a replayer could change. A refused key is named by the header it came from.
        let key: (value: String, header: String)?
        if case .webhook(let signedID)? = context.identity {
            key = (signedID, "webhook-id")
        } else if let value = request.headers.value(Self.idempotencyKey) {
            key = (value, "Idempotency-Key")
        } else {
            key = request.headers.value(WebhookHeader.id).map { ($0, "webhook-id") }
        }
        try validate(id: id)
        try validate(name: name, what: "event name")
        if let key { try validate(name: key.value, what: key.header) }
        let payload = try await jsonBody(request, what: "The body (the event's payload)")
        let receipt = try await runtime.send(name, to: id, json: payload, dedupKey: key?.value)
        return EventReceiptAnswer(receipt: receipt)
    }

    func workflow(_ id: String) async throws -> WorkflowInfo {
        try validate(id: id)
        guard let summary = try await runtime.status(of: id) else { throw APIError.unknownWorkflow(id) }
        let last = summary.status.isFinished ? try await runtime.history(of: id).last : nil
        return WorkflowInfo(summary, last: last, suspension: try await runtime.suspension(of: id))
    }

    /// The queue a start names with `queue`, `partition` and `priority`, if it names one.
    static func queueEntry(_ query: (String) -> String?, limit: Int) throws(APIError) -> QueueEntry? {
        guard let name = query("queue") else {
            if query("partition") != nil || query("priority") != nil {
                throw APIError.invalidArgument("partition and priority go with a queue: add queue=<name>.")
            }
            return nil
        }
        try validate(name: name, what: "queue name", limit: limit)
        let partition = query("partition")
        if let partition { try validate(name: partition, what: "partition key", limit: limit) }
        let priority = try query("priority").map { text throws(APIError) -> Int in
            guard let value = Int(text), abs(value) <= 1_000_000 else {
                throw APIError.invalidArgument("priority must be a whole number from -1000000 to 1000000; got '\(text)'.")
            }
            return value
        }
        return QueueEntry(name, partition: partition, priority: priority ?? 0)
    }

    func update(_ request: Request, _ context: some RequestContext) async throws -> RawJSONAnswer {
        let id = context.pathParameter("id")
        let name = context.pathParameter("name")
        try validate(id: id)
        try validate(name: name, what: "update name")
        let key = request.headers.value(Self.idempotencyKey)
        if let key { try validate(name: key, what: "Idempotency-Key") }
        let timeout = try request.uri.queryParameters.get("timeout").map { text throws(APIError) -> Duration in
            guard let seconds = Double(text), seconds > 0, seconds <= 300 else {
                throw APIError.invalidArgument("timeout must be a number of seconds above 0 and at most 300; got '\(text)'.")
            }
            return .nanoseconds(Int64(seconds * 1e9))
        }
        let payload = try await jsonBody(request, what: "The body (the update's payload)")
        return RawJSONAnswer(bytes: try await runtime.update(id, name, json: payload, dedupKey: key, timeout: timeout ?? .seconds(30)))
    }

    func query(_ id: String, _ name: String) async throws -> RawJSONAnswer {
        try validate(id: id)
        try validate(name: name, what: "query name")
        return RawJSONAnswer(bytes: try await runtime.query(id, name))
    }

    func history(_ request: Request, _ context: some RequestContext) async throws -> HistoryAnswer {
        let id = context.pathParameter("id")
        try validate(id: id)
        let includingSuperseded = try request.uri.queryParameters.get("includeSuperseded").map { text throws(APIError) in
            switch text {
            case "true": return true
            case "false": return false
            default: throw APIError.invalidArgument("includeSuperseded must be true or false; got '\(text)'.")
            }
        }
        guard let summary = try await runtime.status(of: id) else { throw APIError.unknownWorkflow(id) }
        let events = try await runtime.history(of: id, includingSuperseded: includingSuperseded ?? true)
        return HistoryAnswer(history: WorkflowHistory(id: id, type: summary.type, status: summary.status, events: events))
    }

    func list(_ request: Request) async throws -> WorkflowList {
        let query = request.uri.queryParameters
        let status = try query.get("status").map(WorkflowStatus.init(query:))
        let limit = try query.get("limit").map { text throws(APIError) in
            guard let value = Int(text), (1...1000).contains(value) else {
                throw APIError.invalidArgument("limit must be 1 to 1000; got '\(text)'.")
            }
            return value
        }
        let page = try await runtime.list(status: status, after: query.get("after"), limit: limit ?? 100)
        return WorkflowList(workflows: page.workflows.map(WorkflowInfo.init), next: page.next)
    }

    func cancel(_ request: Request, _ context: some RequestContext) async throws -> EditedResponse<CancelReceipt> {
        let id = context.pathParameter("id")
        try validate(id: id)
        var reason = "cancelled over HTTP"
        var by = "http"
        let body = Array(buffer: try await request.body.collect(upTo: configuration.maxBodySize))
        if !body.isEmpty {
            guard JSONText.isValid(body) else { throw APIError.notJSON("The body (`{\"reason\": \"…\", \"by\": \"…\"}`)") }
            guard let decoded = try? JSONDecoder().decode(CancelRequest.self, from: Data(body)) else {
                throw APIError.invalidArgument("The body must be a JSON object, `{\"reason\": \"…\", \"by\": \"…\"}`.")
            }
            reason = decoded.reason ?? reason
            by = decoded.by ?? by
        }
        try await runtime.cancel(id, by: by, reason: reason)
        return EditedResponse(status: .accepted, response: CancelReceipt(id: id, cancelRequested: true))
    }

    // MARK: Ways out

    func resume(_ request: Request, _ context: some AuthRequestContext<ContinuumCaller>) async throws -> EditedResponse<ActionReceipt> {
        let id = context.pathParameter("id")
        try validate(id: id)
        let body = try await actionBody(ResumeRequest.self, request, shape: #"`{"by": "…", "reason": "…"}`, both optional"#)
        let (by, reason) = try action(by: body?.by, reason: body?.reason, caller: context.identity, default: "resumed over HTTP")
        try await runtime.resume(id, by: by, reason: reason)
        return EditedResponse(status: .accepted, response: ActionReceipt(id: id, action: "resume", by: by, reason: reason))
    }

    func reset(_ request: Request, _ context: some AuthRequestContext<ContinuumCaller>) async throws -> EditedResponse<ActionReceipt> {
        let id = context.pathParameter("id")
        try validate(id: id)
        let shape = #"`{"toStep": "name", "occurrence": 0}` or `{"toEvent": 12}`, with "by" and "reason" optional"#
        let body = try await actionBody(ResetRequest.self, request, shape: shape) ?? ResetRequest()
        let (by, reason) = try action(by: body.by, reason: body.reason, caller: context.identity, default: "reset over HTTP")
        switch (body.toStep, body.toEvent) {
        case (let step?, nil):
            try validate(name: step, what: "step name")
            try await runtime.reset(id, toStep: step, occurrence: body.occurrence ?? 0, by: by, reason: reason)
        case (nil, let sequence?):
            guard body.occurrence == nil else { throw APIError.invalidArgument("occurrence goes with toStep, not with toEvent.") }
            try await runtime.reset(id, toEvent: sequence, by: by, reason: reason)
        default:
            throw APIError.invalidArgument("Give exactly one of toStep and toEvent: \(shape).")
        }
        return EditedResponse(status: .accepted, response: ActionReceipt(id: id, action: "reset", by: by, reason: reason))
    }

    func fork(_ request: Request, _ context: some AuthRequestContext<ContinuumCaller>) async throws -> EditedResponse<JSONAnswer<StartReceipt>> {
        let id = context.pathParameter("id")
        try validate(id: id)
        let shape = #"`{"toStep": "name", "occurrence": 0, "as": "new-id"}`, with "occurrence", "by" and "reason" optional"#
        let body = try await actionBody(ForkRequest.self, request, shape: shape) ?? ForkRequest()
        guard let step = body.toStep, let newID = body.as else { throw APIError.invalidArgument("A fork needs toStep and as: \(shape).") }
        try validate(name: step, what: "step name")
        try validate(id: newID)
        let (by, reason) = try action(by: body.by, reason: body.reason, caller: context.identity, default: "forked over HTTP")
        let receipt = try await runtime.fork(id, toStep: step, occurrence: body.occurrence ?? 0, as: newID, by: by, reason: reason)
        return EditedResponse(status: .created, response: JSONAnswer(receipt))
    }

    /// The body of a way out decoded as `Body`, `nil` when empty; `400 invalidJSON` when it is
    /// not JSON, `400 invalidArgument` when it is JSON of another shape.
    func actionBody<Body: Decodable>(_ type: Body.Type, _ request: Request, shape: String) async throws -> Body? {
        let body = Array(buffer: try await request.body.collect(upTo: configuration.maxBodySize))
        if body.isEmpty { return nil }
        guard JSONText.isValid(body) else { throw APIError.notJSON("The body (\(shape))") }
        do {
            return try JSONDecoder().decode(Body.self, from: Data(body))
        } catch {
            throw APIError.invalidArgument("The body must be a JSON object, \(shape): \(Self.describe(error)).")
        }
    }

    /// Who asks and why, as history records them: `by` as given (else who the caller is, else
    /// `anonymous`), `reason` as given (else `fallback`).
    func action(
        by: String?, reason: String?, caller: ContinuumCaller?, anonymous: String = "http", default fallback: String
    ) throws(APIError) -> (by: String, reason: String) {
        let by = by ?? caller?.actionName ?? anonymous
        try validate(name: by, what: "\"by\"")
        let reason = reason ?? fallback
        guard reason.utf8.count <= Self.maxReasonBytes else {
            throw APIError.invalidArgument("A reason must be at most \(Self.maxReasonBytes) bytes; got \(reason.utf8.count).")
        }
        return (by, reason)
    }

    /// The longest reason a way out records.
    static let maxReasonBytes = 4096

    /// A decoding error in a sentence: which field, and what was wrong with it.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map(\.stringValue).joined(separator: ".")
        }
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            let field = path(context)
            return field.isEmpty ? context.debugDescription : "\(field): \(context.debugDescription)"
        case .keyNotFound(let key, _):
            return "\(key.stringValue) is missing"
        @unknown default:
            return "\(error)"
        }
    }

    // MARK: Checks

    /// The body as JSON bytes (`null` when empty), or `400 invalidJSON`.
    func jsonBody(_ request: Request, what: String) async throws -> [UInt8] {
        let body = Array(buffer: try await request.body.collect(upTo: configuration.maxBodySize))
        if body.isEmpty { return Array("null".utf8) }
        guard JSONText.isValid(body) else { throw APIError.notJSON(what) }
        return body
    }

    /// A workflow id: 1 to the store's limit of bytes, without control characters.
    func validate(id: String) throws(APIError) {
        try Self.validate(name: id, what: "workflow id", limit: runtime.limits.maxWorkflowIDBytes)
    }

    /// A type or event name, or a dedup key: 1 to the store's limit of bytes, without control characters.
    func validate(name: String, what: String) throws(APIError) {
        try Self.validate(name: name, what: what, limit: runtime.limits.maxNameBytes)
    }

    static func validate(name: String, what: String, limit: Int) throws(APIError) {
        guard !name.isEmpty, name.utf8.count <= limit, !name.unicodeScalars.contains(where: isControl) else {
            throw APIError.invalidArgument(
                "A \(what) must be 1 to \(limit) bytes of UTF-8 without control characters; got \(name.utf8.count) bytes.")
        }
    }
}

/// Whether `scalar` is a control character (general category Cc): U+0000–U+001F and
/// U+007F–U+009F, a set Unicode never changes. Compared directly rather than looked up in the
/// property tables, which cost about 1 % of an event delivery's CPU for its three names.
func isControl(_ scalar: Unicode.Scalar) -> Bool {
    scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
}

/// The body of `POST /v1/workflows/{id}/cancel`, when there is one.
private struct CancelRequest: Decodable {
    var reason: String?
    var by: String?
}

extension WorkflowStatus {
    /// The status a query parameter names, or `400 invalidArgument`.
    init(query text: String) throws(APIError) {
        guard let status = WorkflowStatus(named: text) else {
            throw APIError.invalidArgument("status must be one of \(WorkflowStatus.names); got '\(text)'.")
        }
        self = status
    }
}

/// The JSON-syntax check of request bodies; the runtime decodes them itself where it must.
enum JSONText {
    /// Whether `bytes` are one JSON value (any, not only an object or array) in UTF-8, nested at
    /// most 512 deep.
    static func isValid(_ bytes: [UInt8]) -> Bool {
        if isPlainlyValid(bytes) { return true }
        // JSON between systems is UTF-8 (RFC 8259), where a NUL byte never stands unescaped;
        // JSONSerialization would also take UTF-16 and UTF-32, which it recognises by NULs.
        guard !bytes.contains(0), String(validating: bytes, as: UTF8.self) != nil else { return false }
        return (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil
    }

    /// Whether `bytes` are surely valid by the check below, found without Foundation: one JSON
    /// value of plain ASCII, nested at most 64 deep, whose strings have no `\u` escape and whose
    /// numbers have at most 15 digits and no exponent. `false` means only "not plainly": the
    /// full check then decides. Every event delivery's body passes here, and JSONSerialization
    /// (which builds the whole object graph) cost about 2 % of the delivery's CPU.
    static func isPlainlyValid(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { buffer in
            var scanner = PlainJSONScanner(bytes: buffer)
            return scanner.value(depth: 0) && scanner.atEnd
        }
    }
}

/// The scanner of ``JSONText/isPlainlyValid(_:)``: each method consumes what it recognises and
/// returns `false` at anything it does not.
private struct PlainJSONScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    static let maxDepth = 64
    static let maxDigits = 15

    /// Whether only whitespace is left.
    var atEnd: Bool {
        mutating get {
            skipSpace()
            return index == bytes.count
        }
    }

    mutating func value(depth: Int) -> Bool {
        skipSpace()
        guard index < bytes.count else { return false }
        switch bytes[index] {
        case UInt8(ascii: "{"): return object(depth: depth + 1)
        case UInt8(ascii: "["): return array(depth: depth + 1)
        case UInt8(ascii: "\""): return string()
        case UInt8(ascii: "t"): return literal("true")
        case UInt8(ascii: "f"): return literal("false")
        case UInt8(ascii: "n"): return literal("null")
        default: return number()
        }
    }

    private mutating func object(depth: Int) -> Bool {
        guard depth <= Self.maxDepth else { return false }
        index += 1  // {
        skipSpace()
        if take(UInt8(ascii: "}")) { return true }
        while true {
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\""), string() else { return false }
            skipSpace()
            guard take(UInt8(ascii: ":")), value(depth: depth) else { return false }
            skipSpace()
            if take(UInt8(ascii: "}")) { return true }
            guard take(UInt8(ascii: ",")) else { return false }
        }
    }

    private mutating func array(depth: Int) -> Bool {
        guard depth <= Self.maxDepth else { return false }
        index += 1  // [
        skipSpace()
        if take(UInt8(ascii: "]")) { return true }
        while true {
            guard value(depth: depth) else { return false }
            skipSpace()
            if take(UInt8(ascii: "]")) { return true }
            guard take(UInt8(ascii: ",")) else { return false }
        }
    }

    private mutating func string() -> Bool {
        index += 1  // opening quote
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return true
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { return false }
                switch bytes[index] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"),
                    UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 1
                default:
                    return false  // \u…, or not an escape
                }
            case 0x20...0x7E:
                continue
            default:
                return false  // a control character, or beyond ASCII
            }
        }
        return false
    }

    private mutating func number() -> Bool {
        _ = take(UInt8(ascii: "-"))
        var digits = 0
        if take(UInt8(ascii: "0")) {
            digits = 1
        } else {
            guard index < bytes.count, (UInt8(ascii: "1")...UInt8(ascii: "9")).contains(bytes[index]) else { return false }
            digits = skipDigits()
        }
        if take(UInt8(ascii: ".")) {
            let fraction = skipDigits()
            guard fraction > 0 else { return false }
            digits += fraction
        }
        // An exponent may name a number no Double holds: left to the full check.
        guard digits <= Self.maxDigits else { return false }
        return index == bytes.count || (bytes[index] != UInt8(ascii: "e") && bytes[index] != UInt8(ascii: "E"))
    }

    private mutating func skipDigits() -> Int {
        let start = index
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        return index - start
    }

    private mutating func literal(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard bytes.count - index >= count else { return false }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { return false }
        index += count
        return true
    }

    private mutating func take(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    private mutating func skipSpace() {
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): index += 1
            default: return
            }
        }
    }
}
