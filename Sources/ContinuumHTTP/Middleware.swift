import Continuum
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdAuth

// The checks every request to the API and the dashboard passes, in this order: the body size,
// who is asking (the authenticators, then `RequireCaller`), whether a browser sent a write from
// another site, and only then the handler.

/// Refuses a body over `limit` bytes with `413 bodyTooLarge`, before anything else looks at the
/// request, and hands the rest of the chain the body collected (so a signature can be checked
/// over its bytes and the handler read it again).
struct BodyLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    let limit: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var request = request
        try await Self.collectBody(of: &request, limit: limit)
        return try await next(request, context)
    }

    /// Collects `request`'s body into it, or throws `413 bodyTooLarge`.
    static func collectBody(of request: inout Request, limit: Int) async throws {
        // Decided from the header before anything is read, when the client says.
        if let length = request.headers.value(.contentLength).flatMap(Int.init), length > limit {
            throw APIError.tooLarge(limit: limit)
        }
        do {
            _ = try await request.collectBody(upTo: limit)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw APIError.tooLarge(limit: limit)
        }
    }
}

/// The checks of ``BodyLimitMiddleware``, ``BearerAuthenticator``, ``WebhookAuthenticator``
/// (when `webhook` is set), ``RequireCaller`` and ``CrossSiteMiddleware``, in that order, in one
/// middleware, around the handler: what every route of the JSON API passes. A runtime error
/// thrown below it (a `ContinuumError`) is answered as the ``APIError`` its code calls for.
///
/// One layer instead of six: each layer of Hummingbird's chain is an existential call, an async
/// frame and a copy of the request and of the context, about 3 % of an event delivery's CPU
/// for the six. The answers, and the order in which the checks refuse, are the same.
struct APIChecks<Context: AuthRequestContext<ContinuumCaller>>: RouterMiddleware {
    /// The body limit in bytes.
    let limit: Int
    let tokens: BearerTokens
    /// For event deliveries: a signature may stand in for a token.
    let webhook: WebhookAuthenticator<Context>?
    /// Whether a request nobody authenticated is refused, with `refusal`.
    let required: Bool
    let refusal: APIError

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            var request = request
            try await BodyLimitMiddleware<Context>.collectBody(of: &request, limit: limit)
            var context = context
            if let caller = BearerAuthenticator<Context>.caller(request, tokens: tokens) {
                context.identity = caller
            }
            if let webhook, let caller = try await webhook.authenticate(request: request, context: context) {
                context.identity = caller
            }
            guard !required || context.identity != nil else { throw refusal }
            try CrossSite.check(request)
            return try await next(request, context)
        } catch let error as ContinuumError {
            throw APIError(error)
        }
    }
}

/// Accepts a request whose `Authorization: Bearer …` header holds an accepted token.
struct BearerAuthenticator<Context: AuthRequestContext<ContinuumCaller>>: AuthenticatorMiddleware {
    let tokens: BearerTokens

    func authenticate(request: Request, context: Context) async throws -> ContinuumCaller? {
        Self.caller(request, tokens: tokens)
    }

    /// `.tokenHolder` when `request` carries one of `tokens`.
    static func caller(_ request: Request, tokens: BearerTokens) -> ContinuumCaller? {
        // Without tokens nothing is accepted; the header is not even looked up.
        guard !tokens.isEmpty, let token = request.headers.bearerToken, tokens.accepts(token) else { return nil }
        return .tokenHolder
    }
}

extension HTTPFields {
    /// The token of an `Authorization: Bearer` header; the scheme's name is case-insensitive
    /// (RFC 9110), which hummingbird-auth's `bearer` does not allow for.
    var bearerToken: String? {
        guard let authorization = value(.authorization), authorization.prefix(7).lowercased() == "bearer " else { return nil }
        return authorization.dropFirst(7).trimmingCharacters(in: .whitespaces)
    }

    /// The value of the fields named `name`, as `self[name]` gives it: several fields of the
    /// name are joined (with `, `, or `; ` for cookies). Most requests have one field of a name
    /// or none, and that one is found here in one pass without the subscript's generic join,
    /// which with its type-metadata lookups cost about 1 % of an event delivery's CPU.
    func value(_ name: HTTPField.Name) -> String? {
        var found: String?
        for field in self where field.name == name {
            if found != nil { return self[name] }
            found = field.value
        }
        return found
    }
}

/// Accepts an event delivery (the route's `id` and `name` parameters) signed in the Standard
/// Webhooks format, when no token was accepted before it and secrets are configured. A
/// signature that is present but refused is `401 badSignature`, whatever comes after.
///
/// The signed `webhook-id` is remembered with its target in the replay guard: Standard Webhooks
/// signs the id, the timestamp and the body but not the path, so the same delivery sent to
/// another workflow or event is `409 webhookReplayed`; when the guard is full of ids still
/// inside their window it is `503 webhookLimit`.
struct WebhookAuthenticator<Context: AuthRequestContext<ContinuumCaller>>: AuthenticatorMiddleware {
    let verifier: WebhookVerifier
    let replayGuard: WebhookReplayGuard
    /// The store's limits: a target the handler will refuse is not remembered.
    let limits: StoreLimits
    let maxBodySize: Int

    func authenticate(request: Request, context: Context) async throws -> ContinuumCaller? {
        guard context.identity == nil, !verifier.isEmpty, request.headers.contains(WebhookHeader.signature) else { return nil }
        // Checked over the raw bytes before anything parses them (BodyLimitMiddleware collected them).
        let body = Array(buffer: try await request.body.collect(upTo: maxBodySize))
        let now = Date()
        let signedAt: Int64
        do {
            signedAt = try verifier.verify(
                id: request.headers.value(WebhookHeader.id), timestamp: request.headers.value(WebhookHeader.timestamp),
                signatures: request.headers.value(WebhookHeader.signature), body: body, now: now)
        } catch {
            throw APIError(status: .unauthorized, code: .badSignature, message: "The webhook signature was refused: \(error).")
        }
        let id = request.headers.value(WebhookHeader.id) ?? ""
        guard id.utf8.count <= limits.maxNameBytes else {
            throw APIError.invalidArgument("A webhook-id must be at most \(limits.maxNameBytes) bytes.")
        }
        let target = WebhookReplayGuard.Target(workflowID: context.pathParameter("id"), event: context.pathParameter("name"))
        guard target.workflowID.utf8.count <= limits.maxWorkflowIDBytes, target.event.utf8.count <= limits.maxNameBytes else {
            return .webhook(id: id)
        }
        let expires = signedAt + verifier.tolerance.components.seconds
        switch replayGuard.admit(id: id, target: target, expires: expires, now: Int64(now.timeIntervalSince1970)) {
        case .admitted:
            return .webhook(id: id)
        case .replayed:
            throw APIError(
                status: .conflict, code: .webhookReplayed,
                message: "webhook-id '\(id)' was already delivered to another workflow or event; "
                    + "a sender must give every message its own webhook-id.")
        case .full:
            throw APIError(
                status: .serviceUnavailable, code: .webhookLimit,
                message: "More signed deliveries arrived within the signature window than this server remembers "
                    + "(webhookReplayCapacity \(replayGuard.capacity)); retry in a few minutes, or raise the capacity.")
        }
    }
}

/// The headers of a Standard Webhooks delivery.
enum WebhookHeader {
    static let id = HTTPField.Name("webhook-id")!
    static let timestamp = HTTPField.Name("webhook-timestamp")!
    static let signature = HTTPField.Name("webhook-signature")!
}

/// Refuses a request nobody authenticated with `refusal`, when the configuration requires
/// authentication.
struct RequireCaller<Context: AuthRequestContext<ContinuumCaller>>: RouterMiddleware {
    let required: Bool
    let refusal: any Error & Sendable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard !required || context.identity != nil else { throw refusal }
        return try await next(request, context)
    }
}

/// Refuses a state-changing request a browser sent from another site (`403 crossSiteRequest`):
/// without it, any web page open in a browser on the same machine could start or cancel
/// workflows on a server that runs without tokens on 127.0.0.1 (a form can post a
/// JSON-looking body as text). Clients that are not browsers send neither header and are not
/// affected.
struct CrossSiteMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        try CrossSite.check(request)
        return try await next(request, context)
    }
}

enum CrossSite {
    static let secFetchSite = HTTPField.Name("Sec-Fetch-Site")!

    /// Throws `403 crossSiteRequest` for a write a browser sent from another site.
    static func check(_ request: Request) throws(APIError) {
        guard request.method != .get, request.method != .head else { return }
        if let site = request.headers.value(secFetchSite), site == "cross-site" || site == "same-site" {
            throw APIError.crossSite
        }
        guard let origin = request.headers.value(.origin) else { return }
        guard origin != "null" else { throw APIError.crossSite }
        let host = request.head.authority ?? ""
        guard let url = URL(string: origin), let originHost = url.host else { throw APIError.crossSite }
        let originAuthority = url.port.map { "\(originHost):\($0)" } ?? originHost
        guard originAuthority.lowercased() == host.lowercased() else {
            var error = APIError.crossSite
            error.message += " (Origin \(origin), this server \(host.isEmpty ? "unnamed" : host))"
            throw error
        }
    }
}

extension RequestContext {
    /// A path parameter, percent-decoded (the router hands them over raw).
    func pathParameter(_ name: String) -> String {
        let raw = parameters.get(name) ?? ""
        // Most ids and names have no escape, and Foundation's decoding (through CFString) cost
        // about 2 % of an event delivery's CPU even then.
        guard raw.utf8.contains(UInt8(ascii: "%")) else { return raw }
        return raw.removingPercentEncoding ?? raw
    }
}
