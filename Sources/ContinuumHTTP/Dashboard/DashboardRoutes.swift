import Continuum
import Foundation
import HTTPTypes
public import Hummingbird
public import HummingbirdAuth
import Logging

extension ContinuumAPI {
    /// The dashboard: small server-rendered pages over the same runtime as the API, as a
    /// collection to mount with `addRoutes(_:atPath:)`; its links follow wherever it is mounted.
    ///
    /// `GET /` lists workflows with counts by status (a suspended one with its suspension's
    /// code), filtered by `status`, `type` and `id` (a prefix), a page of `limit` (default 100)
    /// at a time; `GET /ui/workflows/{id}` shows one workflow's timeline: a waterfall of its
    /// steps, attempts, retry backoffs, sleeps, waits, updates and children on a time axis,
    /// then every event with its time, step, attempt, result or error, and what it waits for
    /// until when (events a reset superseded dimmed, with the reset), why it is suspended when it
    /// is, and its forms: send an event and cancel (unfinished), resume (suspended), reset to a
    /// step or to an event and fork (any workflow with steps). Each form posts, is recorded with
    /// who and why (`dashboard` unless the form says), and redirects back to the timeline (a fork
    /// to the new one's); a refused one answers with an error page that links back. A parent's
    /// timeline links its children and a child's its parent. `GET /ui/schedules` lists the
    /// schedules with their next fire times; `GET /ui/queues` the configured queues with how many
    /// run and wait on each in this process. Every page but the forms takes `?refresh=5` to
    /// reload itself every so many seconds. With tokens
    /// configured the pages need a token too: an `Authorization: Bearer` header, or the cookie
    /// the login form (`POST /login`) sets (`HttpOnly`, `SameSite=Strict`). Forms pass the same
    /// size and cross-site checks as the API; errors are pages with the API error's status.
    public func dashboardRoutes<Context: AuthRequestContext<ContinuumCaller>>(context: Context.Type = Context.self) -> RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        /// Adds a page at `path`; `needsCaller: false` for the login form itself.
        func page(
            _ path: RouterPath, _ method: HTTPRequest.Method, needsCaller: Bool = true,
            _ handle: @escaping @Sendable (Request, Context, DashboardLinks) async throws -> Response
        ) {
            let depth = path.count
            let group = routes.group()
                .add(middleware: DashboardPageMiddleware(routeDepth: depth))
                .add(middleware: BodyLimitMiddleware(limit: configuration.maxBodySize))
            if needsCaller {
                group
                    .add(middleware: BearerAuthenticator(tokens: configuration.tokens))
                    .add(middleware: TokenCookieAuthenticator(tokens: configuration.tokens))
                    .add(middleware: RequireCaller(required: configuration.requiresAuthentication, refusal: LoginRequired()))
            }
            group.add(middleware: CrossSiteMiddleware())
            group.on(path, method: method) { request, context in
                try await handle(request, context, DashboardLinks(request: request.uri.path, routeDepth: depth))
            }
        }
        page("", .get) { request, _, links in try await self.overview(request, links) }
        page("ui/workflows/:id", .get) { request, context, links in
            try await self.timeline(context.pathParameter("id"), refresh: Self.refresh(request.uri.queryParameters.get("refresh")), links)
        }
        page("ui/schedules", .get) { _, _, links in
            Dashboard.html(.ok, DashboardTemplates.render(SchedulesPage(try await self.runtime.schedules(), links: links), "schedules"))
        }
        page("ui/queues", .get) { request, _, links in
            let refresh = try Self.refresh(request.uri.queryParameters.get("refresh"))
            return Dashboard.html(.ok, DashboardTemplates.render(QueuesPage(try await self.runtime.queueSnapshot(), refresh: refresh, links: links), "queues"))
        }
        page("ui/workflows/:id/events", .post) { request, context, links in
            let id = context.pathParameter("id")
            try self.validate(id: id)
            let form = try await Self.form(EventForm.self, request, limit: self.configuration.maxBodySize)
            let name = form.name ?? ""
            let payload = Array((form.payload ?? "").isEmpty ? "null".utf8 : form.payload!.utf8)
            try self.validate(name: name, what: "event name")
            guard JSONText.isValid(payload) else { throw APIError.notJSON("The payload") }
            try await self.runtime.send(name, to: id, json: payload, dedupKey: nil)
            return Response(status: .seeOther, headers: [.location: links.workflow(id)])
        }
        page("ui/workflows/:id/cancel", .post) { _, context, links in
            let id = context.pathParameter("id")
            try self.validate(id: id)
            try await self.runtime.cancel(id, by: "dashboard", reason: "cancelled from the dashboard")
            return Response(status: .seeOther, headers: [.location: links.workflow(id)])
        }
        page("ui/workflows/:id/resume", .post) { request, context, links in
            let id = context.pathParameter("id")
            try self.validate(id: id)
            let form = try await Self.form(ActionForm.self, request, limit: self.configuration.maxBodySize)
            let (by, reason) = try self.action(form, context.identity, default: "resumed from the dashboard")
            try await self.runtime.resume(id, by: by, reason: reason)
            return Response(status: .seeOther, headers: [.location: links.workflow(id)])
        }
        page("ui/workflows/:id/reset", .post) { request, context, links in
            let id = context.pathParameter("id")
            try self.validate(id: id)
            let form = try await Self.form(ActionForm.self, request, limit: self.configuration.maxBodySize)
            // The reset-to-a-step form posts `step`, the reset-to-an-event form `event`.
            if let event = form.event {
                guard form.step.nonEmpty == nil, let sequence = UInt32(event) else {
                    throw APIError.invalidArgument("Choose one event of the workflow's history by its number (or a step, not both); got '\(event)'.")
                }
                let (by, reason) = try self.action(form, context.identity, default: "reset from the dashboard")
                try await self.runtime.reset(id, toEvent: sequence, by: by, reason: reason)
            } else {
                let step = try self.step(form)
                let (by, reason) = try self.action(form, context.identity, default: "reset from the dashboard")
                try await self.runtime.reset(id, toStep: step.name, occurrence: step.occurrence, by: by, reason: reason)
            }
            return Response(status: .seeOther, headers: [.location: links.workflow(id)])
        }
        page("ui/workflows/:id/fork", .post) { request, context, links in
            let id = context.pathParameter("id")
            try self.validate(id: id)
            let form = try await Self.form(ActionForm.self, request, limit: self.configuration.maxBodySize)
            let step = try self.step(form)
            let newID = form.as ?? ""
            try self.validate(id: newID)
            let (by, reason) = try self.action(form, context.identity, default: "forked from the dashboard")
            try await self.runtime.fork(id, toStep: step.name, occurrence: step.occurrence, as: newID, by: by, reason: reason)
            // To the new workflow's timeline: the fork is what the operator wants to watch next.
            return Response(status: .seeOther, headers: [.location: links.workflow(newID)])
        }
        page("login", .post, needsCaller: false) { request, _, links in try await self.login(request, links) }
        return routes
    }

    // MARK: Pages

    func overview(_ request: Request, _ links: DashboardLinks) async throws -> Response {
        // Read as the form encodes it (a space is `+`); empty fields count as not given, since
        // the filter form sends every field.
        let query: ListQuery
        do {
            query = try URLEncodedFormDecoder().decode(ListQuery.self, from: request.uri.query ?? "")
        } catch {
            throw APIError.invalidArgument("The query is not a form's query (status, type, id, limit, after, refresh): \(error).")
        }
        var filter = ListFilter()
        filter.status = try query.status.nonEmpty.map(WorkflowStatus.init(query:))
        filter.type = query.type.nonEmpty
        filter.idPrefix = query.id.nonEmpty
        filter.after = query.after.nonEmpty
        filter.refresh = try Self.refresh(query.refresh)
        if let text = query.limit.nonEmpty {
            guard let limit = Int(text), (1...1000).contains(limit) else { throw APIError.invalidArgument("limit must be 1 to 1000; got '\(text)'.") }
            filter.limit = limit
        }
        let counts = try await runtime.counts()
        let (workflows, next, searched): ([WorkflowSummary], String?, Int?)
        if filter.scans {
            (workflows, next, searched) = try await filteredPage(filter)
        } else {
            let page = try await runtime.list(status: filter.status, after: filter.after, limit: filter.limit)
            (workflows, next, searched) = (page.workflows, page.next, nil)
        }
        // Why each suspended one is, at a glance.
        var suspensions: [String: String] = [:]
        for workflow in workflows where workflow.status == .suspended {
            suspensions[workflow.id] = try await runtime.suspension(of: workflow.id)?.code
        }
        let model = OverviewPage(
            counts: counts, filter: filter, workflows: workflows, next: next, searched: searched, types: runtime.workflowTypes,
            suspensions: suspensions, links: links)
        return Dashboard.html(.ok, DashboardTemplates.render(model, "overview"))
    }

    /// How many workflows one overview request reads at most while it looks for type and id
    /// matches; past that it shows what it found with a link to search on.
    static let scanLimit = 10_000

    /// One page of the list narrowed by type and id prefix, which the store does not index: reads
    /// the runtime's pages (by status, oldest first) and keeps the matches. The page's cursor is
    /// that of its last row, so the next page starts right after it; when `scanLimit` workflows
    /// were read without filling the page, it ends there, with how many were read.
    func filteredPage(
        _ filter: ListFilter, scanLimit: Int = ContinuumAPI.scanLimit
    ) async throws -> (workflows: [WorkflowSummary], next: String?, searched: Int?) {
        func matches(_ workflow: WorkflowSummary) -> Bool {
            (filter.type.map { workflow.type == $0 } ?? true) && (filter.idPrefix.map { workflow.id.hasPrefix($0) } ?? true)
        }
        var cursor = filter.after
        var found: [WorkflowSummary] = []
        var read = 0
        while read < scanLimit {
            let batch = try await runtime.list(status: filter.status, after: cursor, limit: min(max(filter.limit, 500), scanLimit - read))
            read += batch.workflows.count
            let needed = filter.limit - found.count
            let hits = batch.workflows.indices.filter { matches(batch.workflows[$0]) }
            if hits.count >= needed {
                let through = hits[needed - 1] + 1
                if through == batch.workflows.count { return (found + hits.map { batch.workflows[$0] }, batch.next, nil) }
                // The page fills inside this batch: read again up to its last row, whose cursor the runtime hands out.
                let cut = try await runtime.list(status: filter.status, after: cursor, limit: through)
                return (found + cut.workflows.filter(matches).prefix(needed), cut.next, nil)
            }
            found += hits.map { batch.workflows[$0] }
            guard let next = batch.next else { return (found, nil, nil) }
            cursor = next
        }
        return (found, cursor, read)
    }

    /// `?refresh=N`: reload the page every `N` seconds (1 to 3600); empty or absent, never.
    static func refresh(_ text: String?) throws(APIError) -> Int? {
        guard let text = text.nonEmpty else { return nil }
        guard let seconds = Int(text), (1...3600).contains(seconds) else {
            throw APIError.invalidArgument("refresh must be 1 to 3600 seconds; got '\(text)'.")
        }
        return seconds
    }

    func timeline(_ id: String, refresh: Int?, _ links: DashboardLinks) async throws -> Response {
        try validate(id: id)
        guard let summary = try await runtime.status(of: id) else { throw APIError.unknownWorkflow(id) }
        let page = TimelinePage(
            summary: summary, suspension: try await runtime.suspension(of: id), events: try await runtime.history(of: id), refresh: refresh,
            links: links)
        return Dashboard.html(.ok, DashboardTemplates.render(page, "timeline"))
    }

    func login(_ request: Request, _ links: DashboardLinks) async throws -> Response {
        let token = try await Self.form(LoginForm.self, request, limit: configuration.maxBodySize).token ?? ""
        guard configuration.tokens.accepts(token) else {
            return Dashboard.html(.unauthorized, DashboardTemplates.render(LoginPage(links: links, message: "That token is not accepted."), "login"))
        }
        // Behind a TLS-terminating proxy the browser speaks HTTPS: keep the cookie off plain HTTP.
        let forwarded = request.headers[Dashboard.forwardedProto]?.split(separator: ",").first?.trimmingCharacters(in: .whitespaces)
        let secure = configuration.secureCookies || forwarded?.lowercased() == "https"
        var response = Response(status: .seeOther, headers: [.location: links.home])
        response.setCookie(
            Cookie(
                name: Dashboard.cookieName, value: DashboardLinks.percentEncoded(token), path: links.cookiePath, secure: secure,
                httpOnly: true, sameSite: .strict))
        return response
    }

    /// Who asks and why, from a way-out form: an empty field counts as not given, and who is
    /// `dashboard` unless the form or the caller says.
    private func action(_ form: ActionForm, _ caller: ContinuumCaller?, default reason: String) throws(APIError) -> (by: String, reason: String) {
        try action(by: form.by.nonEmpty, reason: form.reason.nonEmpty, caller: caller, anonymous: "dashboard", default: reason)
    }

    /// The step a reset or fork form chose, posted as `occurrence:name`.
    private func step(_ form: ActionForm) throws(APIError) -> StepChoice {
        guard let step = form.step.flatMap(StepChoice.init) else {
            throw APIError.invalidArgument("Choose a step of the workflow's history to go to.")
        }
        try validate(name: step.name, what: "step name")
        return step
    }

    /// The body as an `application/x-www-form-urlencoded` form, or `400 invalidArgument`.
    static func form<Form: Decodable>(_ type: Form.Type, _ request: Request, limit: Int) async throws -> Form {
        let body = String(buffer: try await request.body.collect(upTo: limit))
        do {
            return try URLEncodedFormDecoder().decode(Form.self, from: body)
        } catch {
            throw APIError.invalidArgument("The form is not application/x-www-form-urlencoded as a browser sends it: \(error).")
        }
    }
}

/// The overview's query, as its filter form sends it.
private struct ListQuery: Decodable {
    var status: String?
    var type: String?
    /// A prefix of the ids to list.
    var id: String?
    var limit: String?
    var after: String?
    var refresh: String?
}

/// The dashboard's event form.
private struct EventForm: Decodable {
    var name: String?
    var payload: String?
}

/// The dashboard's resume, reset and fork forms (each posts the fields it has).
private struct ActionForm: Decodable {
    /// A reset's or fork's step, `occurrence:name`.
    var step: String?
    /// A reset's event, by its sequence number (the reset-to-an-event form).
    var event: String?
    /// A fork's new id.
    var `as`: String?
    var by: String?
    var reason: String?
}

extension String? {
    /// `nil` for an empty form field, as a browser posts one left blank.
    fileprivate var nonEmpty: String? { self?.isEmpty == false ? self : nil }
}

/// The dashboard's login form.
private struct LoginForm: Decodable {
    var token: String?
}

enum Dashboard {
    static let cookieName = "continuum_token"
    static let forwardedProto = HTTPField.Name("X-Forwarded-Proto")!

    static func html(_ status: HTTPResponse.Status, _ page: String) -> Response {
        Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: page)))
    }
}

/// Accepts a request whose login cookie holds an accepted token.
struct TokenCookieAuthenticator<Context: AuthRequestContext<ContinuumCaller>>: AuthenticatorMiddleware {
    let tokens: BearerTokens

    func authenticate(request: Request, context: Context) async throws -> ContinuumCaller? {
        guard context.identity == nil, let cookie = request.cookies[Dashboard.cookieName] else { return nil }
        return tokens.accepts(cookie.value.removingPercentEncoding ?? cookie.value) ? .tokenHolder : nil
    }
}

/// Thrown for a dashboard request nobody authenticated: answered with the login form.
struct LoginRequired: Error {}

/// Answers the errors of a dashboard page as pages: the login form (`401`) for
/// ``LoginRequired``, and an error page with its status for an API or runtime error.
struct DashboardPageMiddleware<Context: RequestContext>: RouterMiddleware {
    /// How many path segments the page's route has, to find the dashboard's own links.
    let routeDepth: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let failure: APIError
        do {
            return try await next(request, context)
        } catch is LoginRequired {
            let links = DashboardLinks(request: request.uri.path, routeDepth: routeDepth)
            return Dashboard.html(.unauthorized, DashboardTemplates.render(LoginPage(links: links), "login"))
        } catch let error as APIError {
            failure = error
        } catch let error as ContinuumError {
            failure = APIError(error)
        }
        context.logger.log(
            level: failure.status.code >= 500 ? .error : .debug, "Dashboard request refused: \(failure.message)",
            metadata: [LogKey.errorCode: "\(failure.code)", LogKey.status: "\(failure.status.code)", LogKey.path: "\(request.uri.path)"])
        let links = DashboardLinks(request: request.uri.path, routeDepth: routeDepth)
        // A refused form on a workflow's timeline links back to it (its id as the path has it).
        let segments = Array(request.uri.path.split(separator: "/").suffix(routeDepth))
        var back: String?
        if request.method == .post, segments.count == 4, segments[0] == "ui", segments[1] == "workflows" {
            back = links.base + "/ui/workflows/" + segments[2]
        }
        return Dashboard.html(failure.status, DashboardTemplates.render(ErrorPage(failure, back: back, links: links), "error"))
    }
}
