import Dispatch
import Hummingbird
import Metrics
import Synchronization

/// Records Hummingbird's request metrics (`hb.requests`, `hb.request.errors`,
/// `http.server.request.duration`, `http.server.active_requests`, with the same dimensions) as
/// its `MetricsMiddleware` does, except that a request is timed until its response is ready
/// rather than until the response is written.
///
/// Hummingbird's middleware times the write by wrapping the response body in a closure, and a
/// wrapped body is written in three flushes (head, body, end) instead of one: two `write` calls
/// per answer on the socket, the second of them the most expensive system call of an event
/// delivery. Left as it is, a one-buffer body goes out in a single write.
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    private let cache = RequestMetricsCache()

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = DispatchTime.now().uptimeNanoseconds
        let active = cache.active(request.method)
        active.increment()
        defer { active.decrement() }
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

    func active(_ method: HTTPRequest.Method) -> Meter {
        meters.withLock { meters in
            if let meter = meters[method] { return meter }
            let meter = Meter(label: "http.server.active_requests", dimensions: [("http.request.method", method.description)])
            meters[method] = meter
            return meter
        }
    }

    func endpoint(_ route: String, _ method: HTTPRequest.Method, _ status: HTTPResponse.Status) -> Endpoint {
        endpoints.withLock { endpoints in
            let key = Key(route: route, method: method, status: status.code)
            if let endpoint = endpoints[key] { return endpoint }
            let dimensions = [("http.route", route), ("http.request.method", method.description)]
            let endpoint = Endpoint(
                requests: Counter(label: "hb.requests", dimensions: dimensions + [("http.response.status_code", status.code.description)]),
                duration: Metrics.Timer(
                    label: "http.server.request.duration", dimensions: dimensions + [("http.response.status_code", status.code.description)],
                    preferredDisplayUnit: .seconds),
                errors: Counter(label: "hb.request.errors", dimensions: dimensions + [("error.type", status.code.description)]))
            endpoints[key] = endpoint
            return endpoint
        }
    }
}
