public import Continuum
public import Hummingbird
public import Prometheus

/// Continuum's HTTP surface as Hummingbird route collections, to mount in your own application;
/// `continuum serve` serves the same routes.
///
/// ```swift
/// let router = Router()
/// ContinuumAPI(runtime: runtime, configuration: .init(tokens: ["s3cret"])).register(on: router)
/// let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 8080)))
/// let group = ServiceGroup(services: [runtime, app], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
///
/// `register(on:atPath:)` mounts four collections, each of which can also be mounted on its
/// own with `addRoutes(_:atPath:)`: ``workflowRoutes(context:)`` (the JSON API),
/// ``scheduleRoutes(context:)`` (schedules), ``healthRoutes(context:)`` (probes, metrics and the
/// OpenAPI description) and ``dashboardRoutes(context:)`` (HTML).
///
/// | Route | Does |
/// |---|---|
/// | `POST /v1/workflows/{type}?id=…&timeout=…&queue=…&partition=…&priority=…` | starts a workflow; the body is its input (JSON); the same id and input again give the same run; `timeout` (seconds) sets its deadline; `queue` runs it on a named queue |
/// | `POST /v1/workflows/{id}/events/{name}` | delivers an event; the body is its payload; `Idempotency-Key` (or `webhook-id`) deduplicates |
/// | `GET /v1/workflows/{id}` | status, and the result once finished, the suspension while suspended (``WorkflowInfo``) |
/// | `GET /v1/workflows/{id}/history?includeSuperseded=…` | every event of the workflow, as `continuum export` writes it (`WorkflowHistory`); `false` leaves out what a reset superseded |
/// | `POST /v1/workflows/{id}/updates/{name}?timeout=…` | sends an update and answers the workflow's reply (JSON); `Idempotency-Key` is the update's id; `422 updateRejected` when refused, `504 timedOut` when no reply came in time (the update stays recorded) |
/// | `GET /v1/workflows/{id}/queries/{name}` | the latest value the workflow published under `name` (`ctx.publish`), as JSON; appends nothing |
/// | `GET /v1/workflows?status=…&after=…&limit=…` | a page of workflows (``WorkflowList``) |
/// | `POST /v1/workflows/{id}/cancel` | asks the workflow to stop (a suspended one ends at once) |
/// | `POST /v1/workflows/{id}/resume` | a suspended workflow runs again with the code deployed now (``ResumeRequest``, ``ActionReceipt``) |
/// | `POST /v1/workflows/{id}/reset` | reruns it from a step or event; the tail is superseded (``ResetRequest``, ``ActionReceipt``) |
/// | `POST /v1/workflows/{id}/fork` | a new workflow from a copy of the history up to a step (``ForkRequest``, `StartReceipt`) |
/// | `GET /v1/schedules`, `GET/PUT/DELETE /v1/schedules/{name}` | durable schedules: list them with their next fire times, create or replace one, delete one (``scheduleRoutes(context:)``) |
/// | `GET /healthz` | `200` once the runtime is ready, `503` before (no token needed) |
/// | `GET /metrics` | Prometheus metrics, when a registry is configured (no token needed) |
/// | `GET /openapi.json` | this API described in OpenAPI 3.1 (``openAPIDescription``; no token needed) |
/// | `GET /`, `GET /ui/workflows/{id}`, `GET /ui/queues`, `GET /ui/schedules` | the dashboard |
///
/// Every request to the API passes the same checks in the same order, in one middleware: the
/// body size (`413`), then who is asking (a bearer token, or for an event a webhook signature;
/// `401`), then, for a write, whether a browser sent it from another site (`403`), and only then
/// the handler. Errors are ``APIError``s, JSON `{"error": {"code": "unknownWorkflow", "message": "…"}}`
/// with a stable ``APIError/Code``; a refused request appends nothing.
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
        ///   - metrics: The registry `GET /metrics` serves, if any.
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
    /// Where each signed webhook-id went, so it cannot be replayed elsewhere. Shared by every
    /// collection this value makes.
    let replayGuard: WebhookReplayGuard

    /// Creates the API over `runtime`.
    public init(runtime: WorkflowRuntime, configuration: Configuration = .init()) {
        self.runtime = runtime
        self.configuration = configuration
        self.replayGuard = WebhookReplayGuard(capacity: configuration.webhookReplayCapacity)
    }

    /// Adds the API, the health routes and the dashboard to `router`, under `path`.
    ///
    /// The routes run with a ``ContinuumRequestContext`` made from the router's own context, so
    /// any router can take them.
    ///
    /// - Parameters:
    ///   - router: The router (or a group of it).
    ///   - path: Where to mount them: `"/"` (the default) serves `/v1/workflows`, `/healthz` and
    ///     the dashboard at `/`; `"/continuum"` serves `/continuum/v1/workflows`, ….
    public func register<Context: RequestContext>(on router: some RouterMethods<Context>, atPath path: RouterPath = "") {
        router.addRoutes(healthRoutes(context: Context.self), atPath: path)
        router.group(context: ContinuumRequestContext<Context>.self)
            .addRoutes(workflowRoutes(), atPath: path)
            .addRoutes(scheduleRoutes(), atPath: path)
            .addRoutes(dashboardRoutes(), atPath: path)
    }
}
