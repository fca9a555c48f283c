import Dispatch
import Hummingbird
import Logging
import Metrics
import Synchronization

/// What `continuum serve` does around every request, in one middleware: it logs the request as
/// Hummingbird's `LogRequestsMiddleware(logLevel)` does (`Request`, with `hb.request.path` and
/// `hb.request.method`), and records Hummingbird's request metrics (`hb.requests`,
/// `hb.request.errors`, `http.server.request.duration`, `http.server.active_requests`, with the
/// same dimensions) as its `MetricsMiddleware` does, except that a request is timed until its
/// response is ready rather than until the response is written.
///
/// Hummingbird's metrics middleware times the write by wrapping the response body in a closure,
/// and a wrapped body is written in three flushes (head, body, end) instead of one: two `write`
/// calls per answer on the socket, the second of them the most expensive system call of an event
/// delivery. Left as it is, a one-buffer body goes out in a single write. And one layer instead
/// of the two middlewares saves a layer of the router's chain per request (an existential call,
/// an async frame, copies of the request and the context).
struct ServerRequestMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The level requests are logged at.
    let logLevel: Logger.Level
    private let cache: RequestMetricsCache

    /// - Parameters:
    ///   - logLevel: The level requests are logged at.
    ///   - factory: Where the metrics go; `nil` for the process's `MetricsSystem.factory`, as
    ///     Hummingbird's middleware reports (read when a metric is first made).
    init(logLevel: Logger.Level, factory: (any MetricsFactory)? = nil) {
        self.logLevel = logLevel
        self.cache = RequestMetricsCache(factory: factory)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = DispatchTime.now().uptimeNanoseconds
        let active = cache.active(request.method)
        active.increment()
        defer { active.decrement() }
        context.logger.log(
            level: logLevel, "Request",
            metadata: ["hb.request.path": .stringConvertible(request.uri), "hb.request.method": .string(request.method.rawValue)])
        do {
            let response = try await next(request, context)
            let metrics = cache.endpoint(context.endpointPath ?? "Unknown", request.method, response.status)
            metrics.requests.increment()
            metrics.duration.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            let metrics = cache.endpoint(context.endpointPath ?? "NotFound", request.method, status)
            metrics.requests.increment()
            metrics.errors.increment()
            throw error
        }
    }
}

/// The metric handles of each method and of each route, method and status, made once: the
/// metrics factory's own lookup by label and dimensions costs more than this dictionary's.
private final class RequestMetricsCache: Sendable {
    struct Endpoint: Sendable {
        let requests: Counter
        let duration: Metrics.Timer
        let errors: Counter
    }

    private struct Key: Hashable {
        let route: String
        let method: HTTPRequest.Method
        let status: Int
    }

    private let endpoints = Mutex<[Key: Endpoint]>([:])
    private let meters = Mutex<[HTTPRequest.Method: Meter]>([:])
    private let fixedFactory: (any MetricsFactory)?

    init(factory: (any MetricsFactory)?) {
        self.fixedFactory = factory
    }

    private var factory: any MetricsFactory { fixedFactory ?? MetricsSystem.factory }

    func active(_ method: HTTPRequest.Method) -> Meter {
        meters.withLock { meters in
            if let meter = meters[method] { return meter }
            let meter = Meter(label: "http.server.active_requests", dimensions: [("http.request.method", method.description)], factory: factory)
            meters[method] = meter
            return meter
        }
    }

    func endpoint(_ route: String, _ method: HTTPRequest.Method, _ status: HTTPResponse.Status) -> Endpoint {
        endpoints.withLock { endpoints in
            let key = Key(route: route, method: method, status: status.code)
            if let endpoint = endpoints[key] { return endpoint }
            let dimensions = [("http.route", route), ("http.request.method", method.description)]
            let factory = factory
            let endpoint = Endpoint(
                requests: Counter(
                    label: "hb.requests", dimensions: dimensions + [("http.response.status_code", status.code.description)], factory: factory),
                duration: Metrics.Timer(
                    label: "http.server.request.duration", dimensions: dimensions + [("http.response.status_code", status.code.description)],
                    preferredDisplayUnit: .seconds, factory: factory),
                errors: Counter(label: "hb.request.errors", dimensions: dimensions + [("error.type", status.code.description)], factory: factory))
            endpoints[key] = endpoint
            return endpoint
        }
    }
}
