public import Hummingbird
import Prometheus

extension ContinuumAPI {
    /// `GET /healthz` (`200 {"status": "ready"}` once the runtime is ready, `503` before),
    /// `GET /openapi.json` (``openAPIDescription``) and, when a registry is configured,
    /// `GET /metrics` in the Prometheus text format. None needs a token: probes, scrapers and
    /// API tooling call them. Mount with `addRoutes(_:atPath:)`.
    public func healthRoutes<Context: RequestContext>(context: Context.Type = Context.self) -> RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        routes.get("healthz") { _, _ in
            self.runtime.isReady
                ? EditedResponse(status: .ok, response: HealthStatus(status: "ready"))
                : EditedResponse(status: .serviceUnavailable, response: HealthStatus(status: "starting"))
        }
        routes.get("openapi.json") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
                body: ResponseBody(byteBuffer: Self.openAPIBytes))
        }
        if let registry = configuration.metrics {
            routes.get("metrics") { _, _ in
                Response(
                    status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
            }
        }
        return routes
    }

    /// ``openAPIDescription``'s bytes, made once.
    private static let openAPIBytes = ByteBuffer(string: openAPIDescription)
}
