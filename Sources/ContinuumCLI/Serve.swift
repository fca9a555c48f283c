import ArgumentParser
import Continuum
import ContinuumExamples
import ContinuumHTTP
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

/// `continuum serve`: the HTTP API over an LMDB store or a PostgreSQL database, with the example
/// workflows registered.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the HTTP API (and run workflows) on an LMDB store or a PostgreSQL database.",
        discussion: """
            Registers the example workflows (purchase-approval, reminder). Binds 127.0.0.1 unless
            --host says otherwise; a non-loopback address needs --token or --webhook-secret.
            Tokens and secrets can also come from CONTINUUM_TOKENS and CONTINUUM_WEBHOOK_SECRETS
            (comma-separated), which keeps them out of the process list. Several servers can serve
            one PostgreSQL database (--postgres, or CONTINUUM_POSTGRES_URL); an LMDB directory
            has one.
            """)

    @OptionGroup var storage: StoreOptions<StateDirectory>

    @Option(help: "The address to bind.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on.")
    var port = 8080

    @Option(name: .customLong("token"), help: "A bearer token to require (repeatable).")
    var tokens: [String] = []

    @Option(name: .customLong("webhook-secret"), help: "A Standard Webhooks secret (whsec_…) for signed event deliveries (repeatable).")
    var webhookSecrets: [String] = []

    @Option(help: "The largest request body accepted, in bytes.")
    var maxBodySize = 256 * 1024

    @Flag(help: "Development mode: a step whose code changed (its #step fingerprint or version) reruns from there instead of suspending.")
    var dev = false

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let tokens = self.tokens + Self.list(environment["CONTINUUM_TOKENS"])
        let secrets = webhookSecrets + Self.list(environment["CONTINUUM_WEBHOOK_SECRETS"])
        for secret in secrets where secret.hasPrefix("whsec_") && Data(base64Encoded: String(secret.dropFirst(6))) == nil {
            throw ValidationError("A webhook secret starting with whsec_ must continue in base64; check the secret you copied.")
        }
        let loopback = ["127.0.0.1", "::1", "localhost"].contains(host)
        guard loopback || !tokens.isEmpty || !secrets.isEmpty else {
            throw ValidationError(
                "Refusing to serve on \(host) without authentication: pass --token (or CONTINUUM_TOKENS), or bind 127.0.0.1.")
        }
        let location = try storage.location()
        var logger = Logger(label: "continuum")
        logger.logLevel = .info
        // One registry for the process: the runtime, the store and Hummingbird report into it.
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        // The runtime closes the store when it shuts down gracefully; withStore closes it (again,
        // which is harmless) when serving ends otherwise.
        try await storage.withStore(logger: logger) { store in
            try await serve(store, location: location, tokens: tokens, secrets: secrets, registry: registry, logger: logger)
        }
    }

    private func serve(
        _ store: any EventStore, location: StoreLocation, tokens: [String], secrets: [String], registry: PrometheusCollectorRegistry, logger: Logger
    ) async throws {
        var configuration = dev ? WorkflowRuntime.Configuration.development : WorkflowRuntime.Configuration()
        configuration.logger = logger
        configuration.queues = exampleQueues
        let runtime = WorkflowRuntime(store: store, workflows: exampleWorkflows, configuration: configuration)
        let router = Router()
        router.add(middleware: MetricsMiddleware())
        router.add(middleware: LogRequestsMiddleware(.debug))
        ContinuumAPI(
            runtime: runtime, configuration: .init(tokens: tokens, webhookSecrets: secrets, maxBodySize: maxBodySize, metrics: registry)
        ).register(on: router)
        let base = "http://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        // The token itself is never printed: it stays out of logs and scrollback.
        let auth = tokens.isEmpty ? "" : #" -H "Authorization: Bearer $TOKEN""#
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "continuum"),
            onServerRunning: { _ in
                // Written straight to the descriptor: print() is block-buffered into a pipe, and a
                // supervisor (or a test) waiting for this banner would never see it.
                FileHandle.standardOutput.write(Data(
                    """

                    Continuum is serving \(location) at \(base)
                      dashboard: \(base)/
                      health:  \(base)/healthz
                      metrics: \(base)/metrics
                      list:    curl -s\(auth) '\(base)/v1/workflows'

                    Start a purchase that waits for approval:
                      curl -s\(auth) -X POST '\(base)/v1/workflows/purchase-approval?id=po-1' -d '{"item": "laptop", "amount": 1200}'
                    Approve it (the workflow completes):
                      curl -s\(auth) -X POST '\(base)/v1/workflows/po-1/events/approve' -H 'Idempotency-Key: approval-1' -d '{"approved": true, "by": "ops"}'
                    Then see it:
                      curl -s\(auth) '\(base)/v1/workflows/po-1'

                    Ctrl-C stops gracefully; the workflows continue at the next start.

                    """.utf8))
            },
            logger: logger)
        // Shut down in reverse order: the server stops taking requests, then the runtime
        // stops its workflows, lets queued appends commit and closes the store.
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: runtime), .init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    private static func list(_ value: String?) -> [String] {
        (value ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}
