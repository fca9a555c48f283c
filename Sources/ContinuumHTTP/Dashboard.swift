public import Continuum
public import Foundation
public import HTTPTypes
public import Hummingbird

/// The dashboard: small server-rendered pages over the same runtime as the API.
///
/// `GET /` lists workflows with counts by status; `GET /ui/workflows/{id}` shows one workflow's
/// timeline (every event with its time, step, attempt, result or error, and what it waits for
/// until when), a form that sends it an event, and a cancel button. With tokens configured the
/// pages need a token too: an `Authorization: Bearer` header, or the cookie the login form
/// sets (`HttpOnly`, `SameSite=Strict`, so other sites cannot post the forms).
extension ContinuumAPI {
    static let cookieName = "continuum_token"
    static let forwardedProto = HTTPField.Name("X-Forwarded-Proto")!

    func registerDashboard<Context: RequestContext>(on router: Router<Context>) {
        router.get("/") { request, _ in
            try await self.page(request) { try await self.overview(status: request.uri.queryParameters.get("status")) }
        }
        router.get("/ui/workflows/:id") { request, context in
            try await self.page(request) { try await self.timeline(Self.parameter(context, "id")) }
        }
        router.post("/ui/workflows/:id/events") { request, context in
            let id = Self.parameter(context, "id")
            return try await self.form(request) { fields in
                let name = fields["name"] ?? ""
                let payload = (fields["payload"] ?? "").isEmpty ? "null" : fields["payload"]!
                try Self.validate(name: name, what: "event name")
                guard JSONValue(parsing: Array(payload.utf8)) != nil else { throw APIError.notJSON("The payload") }
                try await self.runtime.send(name, to: id, json: Array(payload.utf8), dedupKey: nil)
                return "/ui/workflows/\(Self.pathSegment(id))"
            }
        }
        router.post("/ui/workflows/:id/cancel") { request, context in
            let id = Self.parameter(context, "id")
            return try await self.form(request) { _ in
                try await self.runtime.cancel(id, reason: "cancelled from the dashboard")
                return "/ui/workflows/\(Self.pathSegment(id))"
            }
        }
        router.post("/login") { request, _ in
            let body = Array(buffer: try await request.body.collect(upTo: 4096))
            let token = Self.formFields(body)["token"] ?? ""
            guard self.configuration.tokens.accepts(token) else {
                return Self.html(.unauthorized, Self.loginPage(message: "That token is not accepted."))
            }
            // Behind a TLS-terminating proxy the browser speaks HTTPS: keep the cookie off plain HTTP.
            let forwarded = request.headers[Self.forwardedProto]?.split(separator: ",").first?.trimmingCharacters(in: .whitespaces)
            let secure = self.configuration.secureCookies || forwarded?.lowercased() == "https"
            return Response(
                status: .seeOther,
                headers: [
                    .location: "/",
                    .setCookie: "\(Self.cookieName)=\(Self.escapeCookie(token)); Path=/; HttpOnly; SameSite=Strict\(secure ? "; Secure" : "")",
                ])
        }
    }

    // MARK: Access

    /// Whether the request carries an accepted token, in the header or the login cookie.
    func isAuthenticated(_ request: Request) -> Bool {
        guard !configuration.tokens.isEmpty else { return !configuration.requiresAuthentication }
        if hasAcceptedToken(request) { return true }
        for cookie in request.headers[values: .cookie].flatMap({ $0.split(separator: ";") }) {
            let parts = cookie.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0] == Self.cookieName,
                configuration.tokens.accepts(parts[1].removingPercentEncoding ?? String(parts[1]))
            {
                return true
            }
        }
        return false
    }

    private func page(_ request: Request, _ render: () async throws -> String) async throws -> Response {
        guard isAuthenticated(request) else { return Self.html(.unauthorized, Self.loginPage(message: nil)) }
        do {
            return Self.html(.ok, try await render())
        } catch {
            return try Self.errorPage(error)
        }
    }

    /// Handles a form post: checks size and access, then redirects to the page `handle` returns.
    private func form(_ request: Request, _ handle: ([String: String]) async throws -> String) async throws -> Response {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > configuration.maxBodySize {
            return APIError.tooLarge(limit: configuration.maxBodySize).response()
        }
        guard isAuthenticated(request) else { return Self.html(.unauthorized, Self.loginPage(message: nil)) }
        do {
            try Self.refuseCrossSite(request)
            let body = Array(buffer: try await request.body.collect(upTo: configuration.maxBodySize))
            return Response(status: .seeOther, headers: [.location: try await handle(Self.formFields(body))])
        } catch {
            return try Self.errorPage(error)
        }
    }

    /// A page for an API or runtime error, with its status; any other error is rethrown.
    private static func errorPage(_ error: any Error) throws -> Response {
        let failure: APIError
        switch error {
        case let error as APIError: failure = error
        case let error as ContinuumError: failure = APIError(error)
        default: throw error
        }
        return html(failure.status, layout(title: "Error", body: "<p class=error>\(escape(failure.message))</p>"))
    }

    // MARK: Pages

    func overview(status: String?) async throws -> String {
        var counts: [(WorkflowStatus, Int, Bool)] = []
        for candidate in WorkflowStatus.allCases {
            // Counted a page at a time, up to 10,000 per status.
            var count = 0
            var after: String?
            repeat {
                let page = try await runtime.list(status: candidate, after: after, limit: 1000)
                count += page.workflows.count
                after = page.next
            } while after != nil && count < 10_000
            counts.append((candidate, count, after != nil))
        }
        let filter = status.flatMap { text in WorkflowStatus.allCases.first { "\($0)" == text } }
        let rows = try await runtime.list(status: filter, after: nil, limit: 100).workflows.reversed()
        var html = "<section class=counts>"
        html += "<a class=\"count\(filter == nil ? " selected" : "")\" href=\"/\"><b>\(counts.reduce(0) { $0 + $1.1 })</b> all</a>"
        for (status, count, more) in counts {
            html += "<a class=\"count \(status)\(filter == status ? " selected" : "")\" href=\"/?status=\(status)\" data-status=\"\(status)\">"
            html += "<b>\(count)\(more ? "+" : "")</b> \(status)</a>"
        }
        html += "</section>"
        html += "<table id=workflows><thead><tr><th>Workflow</th><th>Type</th><th>Status</th><th>Started</th><th>Updated</th></tr></thead><tbody>"
        for workflow in rows {
            html += "<tr data-id=\"\(Self.escape(workflow.id))\"><td><a href=\"/ui/workflows/\(Self.escapePath(workflow.id))\">\(Self.escape(workflow.id))</a></td>"
            html += "<td>\(Self.escape(workflow.type))</td><td class=\"status \(workflow.status)\">\(workflow.status)</td>"
            html += "<td>\(Timestamp.string(nanoseconds: workflow.createdAt))</td><td>\(Timestamp.string(nanoseconds: workflow.updatedAt))</td></tr>"
        }
        if rows.isEmpty { html += "<tr><td colspan=5 class=empty>No workflows yet.</td></tr>" }
        html += "</tbody></table>"
        return Self.layout(title: "Workflows", body: html)
    }

    func timeline(_ id: String) async throws -> String {
        try Self.validate(name: id, what: "workflow id", limit: 511)
        guard let summary = try await runtime.status(of: id) else { throw APIError.unknownWorkflow(id) }
        let events = try await runtime.history(of: id)
        var html = "<p><a href=\"/\">← all workflows</a></p>"
        html += "<h2>\(Self.escape(id)) <small>\(Self.escape(summary.type))</small> <span id=status class=\"status \(summary.status)\">\(summary.status)</span></h2>"
        if let suspension = try await runtime.suspension(of: id) {
            html += "<p class=error>Suspended (\(suspension.code)): \(Self.escape(suspension.message))</p>"
        }
        html += "<table id=timeline><thead><tr><th>#</th><th>Time</th><th>Event</th><th>Step</th><th>Attempt</th><th>Detail</th></tr></thead><tbody>"
        for event in events {
            guard case .object(let fields) = event.json else { continue }
            let kind = fields["kind"].map(Self.text) ?? ""
            var detail: [String] = []
            for key in ["type", "input", "result", "output", "payload", "event", "dedupKey", "waitsFor", "until", "outcome",
                "latenessMilliseconds", "eventSequence", "nextAttemptAt", "reason"]
            {
                if let value = fields[key] { detail.append("<span class=k>\(key)</span> \(Self.escape(Self.text(value)))") }
            }
            if case .object(let error)? = fields["error"] {
                detail.append("<span class=\"k error\">error</span> \(Self.escape(error["type"].map(Self.text) ?? "")): \(Self.escape(error["message"].map(Self.text) ?? ""))")
            }
            html += "<tr class=\"event \(kind)\"><td>\(event.sequence)</td><td>\(fields["time"].map(Self.text) ?? "")</td><td>\(kind)</td>"
            html += "<td>\(Self.escape(fields["step"].map(Self.text) ?? ""))</td><td>\(fields["attempt"].map(Self.text) ?? "")</td><td>\(detail.joined(separator: "<br>"))</td></tr>"
        }
        html += "</tbody></table>"
        if !summary.status.isFinished {
            let path = Self.escapePath(id)
            html += """
                <section class=actions>
                <form id=send method=post action="/ui/workflows/\(path)/events">
                <h3>Send an event</h3>
                <label>Name <input name=name required placeholder=approve></label>
                <label>Payload (JSON) <textarea name=payload rows=3 placeholder='{"approved": true, "by": "ops"}'></textarea></label>
                <button type=submit>Send</button>
                </form>
                <form id=cancel method=post action="/ui/workflows/\(path)/cancel">
                <h3>Cancel</h3>
                <button type=submit class=danger>Cancel workflow</button>
                </form>
                </section>
                """
        }
        return Self.layout(title: id, body: html)
    }

    static func loginPage(message: String?) -> String {
        layout(
            title: "Sign in",
            body: """
                <form id=login method=post action="/login">
                <p>This server requires a token.</p>
                \(message.map { "<p class=error>\(escape($0))</p>" } ?? "")
                <label>Token <input name=token type=password required autofocus></label>
                <button type=submit>Sign in</button>
                </form>
                """)
    }

    static func layout(title: String, body: String) -> String {
        """
        <!doctype html>
        <html lang=en><head><meta charset=utf-8><meta name=viewport content="width=device-width, initial-scale=1">
        <title>\(escape(title)) · Continuum</title>
        <style>
        body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1rem 1.5rem;color:#1d1d1f}
        h1{font-size:1.2rem}h1 a{color:inherit;text-decoration:none}h2 small{color:#666;font-weight:normal}
        table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e5e5e5;vertical-align:top}
        th{font-weight:600;color:#555}.k{color:#777;font-size:.85em;margin-right:.25rem}
        .counts{display:flex;gap:.5rem;flex-wrap:wrap}.count{border:1px solid #ddd;border-radius:6px;padding:.4rem .7rem;text-decoration:none;color:inherit}
        .count.selected{border-color:#0a66c2}.status{font-weight:600}.running{color:#0a66c2}.completed{color:#1a7f37}
        .failed,.error{color:#c62828}.cancelled{color:#8a6d00}.suspended{color:#b85c00}
        .actions{display:flex;gap:2rem;flex-wrap:wrap}form label{display:block;margin:.4rem 0}textarea,input{width:22rem;font:inherit}
        button{font:inherit;padding:.3rem .8rem}.danger{color:#c62828}.empty{color:#777}
        </style></head><body>
        <h1><a href="/">Continuum</a></h1>
        \(body)
        </body></html>
        """
    }

    // MARK: Helpers

    static func html(_ status: HTTPResponse.Status, _ page: String) -> Response {
        Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: page)))
    }

    static func text(_ value: JSONValue) -> String {
        switch value {
        case .string(let string): return string
        case .integer(let number): return String(number)
        case .number(let number): return String(number)
        case .bool(let bool): return String(bool)
        case .null: return "null"
        case .array, .object:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
    }

    /// Escapes for HTML text and attribute values. Works on Unicode scalars, not Characters: a
    /// `"` or `<` followed by a combining mark is one Character that equals neither, and would
    /// slip through a Character-wise check.
    static func escape(_ text: String) -> String {
        var escaped = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": escaped.append(contentsOf: "&amp;".unicodeScalars)
            case "<": escaped.append(contentsOf: "&lt;".unicodeScalars)
            case ">": escaped.append(contentsOf: "&gt;".unicodeScalars)
            case "\"": escaped.append(contentsOf: "&quot;".unicodeScalars)
            case "'": escaped.append(contentsOf: "&#39;".unicodeScalars)
            default: escaped.append(scalar)
            }
        }
        return String(escaped)
    }

    /// A path segment, percent-encoded (for a `Location` header).
    static func pathSegment(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? ""
    }

    /// A path segment for an HTML attribute.
    static func escapePath(_ text: String) -> String { escape(pathSegment(text)) }

    static func escapeCookie(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text
    }

    /// The fields of an `application/x-www-form-urlencoded` body.
    static func formFields(_ body: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in String(decoding: body, as: UTF8.self).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map {
                $0.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
            }
            if let name = parts.first { fields[name] = parts.count > 1 ? parts[1] : "" }
        }
        return fields
    }
}
