public import ArgumentParser
public import Continuum
import ContinuumHTTP
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

/// One binary for your own workflows: the HTTP API, the dashboard and metrics of
/// `continuum serve`, over an LMDB directory or a PostgreSQL database, running the workflows
/// you register.
///
/// ```swift
/// import Continuum
/// import ContinuumServer
///
/// @main
/// struct Billing {
///     static func main() async throws {
///         var configuration = WorkflowRuntime.Configuration()
///         configuration.queues["payments"] = QueueLimits(concurrency: 8)
///         try await ContinuumServer(workflows: [Invoice(), Dunning()], configuration: configuration).run()
///     }
/// }
/// ```
///
/// `run()` reads the command line with the flags of `continuum serve` (`--path`, `--postgres`,
/// `--host`, `--port`, `--token`, `--webhook-secret`, `--max-body-size`, `--dev`; `--help` lists
/// them) and serves until SIGTERM or SIGINT, then shuts down gracefully: the server stops taking
/// requests, the runtime stops its workflows where they are and lets queued appends commit, the
/// store closes. The workflows continue at the next start, in this process or another.
public struct ContinuumServer: Sendable {
    /// The workflows the server runs.
    public var workflows: [any Workflow]
    /// The runtime's configuration; `--dev` switches ``WorkflowRuntime/Configuration/codeChange``
    /// to rerun, and the server sets the logger.
    public var configuration: WorkflowRuntime.Configuration
    /// Lines printed under the banner once the server listens, given its base URL and the
    /// `curl` flags authentication needs (empty without tokens): how to try it.
    public var banner: @Sendable (_ base: String, _ auth: String) -> String
    /// Whether the server bootstraps swift-metrics with a Prometheus registry, which it serves
    /// at `/metrics` (once per process: a second server in the process reuses it). Set it to
    /// `false` when the process bootstraps its own metrics backend; `/metrics` then answers 404.
    public var bootstrapsMetrics = true

    /// A server for `workflows`.
    public init(
        workflows: [any Workflow], configuration: WorkflowRuntime.Configuration = .init(),
        banner: @escaping @Sendable (_ base: String, _ auth: String) -> String = { _, _ in "" }
    ) {
        self.workflows = workflows
        self.configuration = configuration
        self.banner = banner
    }

    /// Reads `arguments` (by default the process's) as the flags of `continuum serve` and
    /// serves until SIGTERM or SIGINT. `--help`, a flag it does not know and options that do not
    /// make sense together print and exit (status 64 for a usage error), as a command-line tool
    /// does.
    public func run(arguments: [String] = Array(CommandLine.arguments.dropFirst())) async throws {
        let options: ServeOptions
        do {
            options = try ServeOptions.parse(arguments)
        } catch {
            ServeOptions.exit(withError: error)
        }
        do {
            try await run(options)
        } catch {
            // Printed and exited as a command-line tool does (64 for a usage error, 1 otherwise),
            // rather than raised to the top level of the caller's `main`, which would trap.
            ServeOptions.exit(withError: error)
        }
    }

    /// Serves with `options` until SIGTERM or SIGINT.
    ///
    /// - Throws: `ValidationError` for options that do not make sense together (a public
    ///   address without authentication, a malformed webhook secret, a bad PostgreSQL URL); the
    ///   errors of opening the store and of binding the address.
    public func run(_ options: ServeOptions) async throws {
        let environment = ProcessInfo.processInfo.environment
        let tokens = options.tokens + Self.list(environment["CONTINUUM_TOKENS"])
        let secrets = options.webhookSecrets + Self.list(environment["CONTINUUM_WEBHOOK_SECRETS"])
        for secret in secrets where secret.hasPrefix("whsec_") && Data(base64Encoded: String(secret.dropFirst(6))) == nil {
            throw ValidationError("A webhook secret starting with whsec_ must continue in base64; check the secret you copied.")
        }
        let host = options.host
        let loopback = ["127.0.0.1", "::1", "localhost"].contains(host)
        guard loopback || !tokens.isEmpty || !secrets.isEmpty else {
            throw ValidationError(
                "Refusing to serve on \(host) without authentication: pass --token (or CONTINUUM_TOKENS), or bind 127.0.0.1.")
        }
        let location = try options.storage.location()
        let logger = configuration.logger ?? {
            // The handler LoggingSystem gives (a stream unless the host bootstrapped another),
            // with the metadata of each request's logger rendered only when a line is logged.
            let handler = Logger(label: "continuum").handler
            var logger = Logger(label: "continuum") { _ in DeferredMetadataLogHandler(handler) }
            logger.logLevel = .info
            return logger
        }()
        // One registry for the process: the runtime, the store and Hummingbird report into it.
        let registry = bootstrapsMetrics ? Self.registry : nil
        // The runtime closes the store when it shuts down gracefully; withStore closes it (again,
        // which is harmless) when serving ends otherwise.
        try await options.storage.withStore(logger: logger) { store in
            try await serve(store, options: options, location: location, tokens: tokens, secrets: secrets, registry: registry, logger: logger)
        }
    }

    private func serve(
        _ store: any EventStore, options: ServeOptions, location: StoreLocation, tokens: [String], secrets: [String],
        registry: PrometheusCollectorRegistry?, logger: Logger
    ) async throws {
        var configuration = self.configuration
        configuration.logger = logger
        if options.dev { configuration.codeChange = .rerun }
        let runtime = WorkflowRuntime(store: store, workflows: workflows, configuration: configuration)
        let router = Router()
        router.add(middleware: ServerRequestMiddleware(logLevel: .debug))
        ContinuumAPI(
            runtime: runtime, configuration: .init(tokens: tokens, webhookSecrets: secrets, maxBodySize: options.maxBodySize, metrics: registry)
        ).register(on: router)
        let (host, port) = (options.host, options.port)
        let base = "http://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        // The token itself is never printed: it stays out of logs and scrollback.
        let auth = tokens.isEmpty ? "" : #" -H "Authorization: Bearer $TOKEN""#
        let types = runtime.workflowTypes.joined(separator: ", ")
        let tryIt = banner(base, auth)
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "continuum"),
            onServerRunning: { _ in
                // Written straight to the descriptor: print() is block-buffered into a pipe, and a
                // supervisor (or a test) waiting for this banner would never see it.
                FileHandle.standardOutput.write(Data(
                    """

                    Continuum is serving \(location) at \(base)
                      workflows: \(types)
                      dashboard: \(base)/
                      health:  \(base)/healthz
                      metrics: \(base)/metrics
                      list:    curl -s\(auth) '\(base)/v1/workflows'
                    \(tryIt)
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

    /// The process's registry, bootstrapped into swift-metrics on first use: swift-metrics
    /// takes one bootstrap per process.
    private static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()

    private static func list(_ value: String?) -> [String] {
        (value ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}

/// The flags of `continuum serve` and of every ``ContinuumServer``.
///
/// The server binds 127.0.0.1 unless `--host` says otherwise; a non-loopback address needs
/// `--token` or `--webhook-secret`. Tokens and secrets can also come from `CONTINUUM_TOKENS` and
/// `CONTINUUM_WEBHOOK_SECRETS` (comma-separated), which keeps them out of the process list.
/// Several servers can serve one PostgreSQL database (`--postgres`, or `CONTINUUM_POSTGRES_URL`);
/// an LMDB directory has one.
public struct ServeOptions: ParsableArguments, Sendable {
    /// The store: `--path DIR` (default `./state`) or `--postgres URL` (or `CONTINUUM_POSTGRES_URL`).
    @OptionGroup package var storage: StoreOptions<StateDirectory>

    /// The address to bind; a non-loopback address needs a token or a webhook secret.
    @Option(help: "The address to bind.")
    public var host = "127.0.0.1"

    /// The port to listen on.
    @Option(help: "The port to listen on.")
    public var port = 8080

    /// Bearer tokens to require (also from `CONTINUUM_TOKENS`, comma-separated).
    @Option(name: .customLong("token"), help: "A bearer token to require (repeatable).")
    public var tokens: [String] = []

    /// Standard Webhooks secrets for signed event deliveries (also from `CONTINUUM_WEBHOOK_SECRETS`).
    @Option(name: .customLong("webhook-secret"), help: "A Standard Webhooks secret (whsec_…) for signed event deliveries (repeatable).")
    public var webhookSecrets: [String] = []

    /// The largest request body accepted, in bytes.
    @Option(help: "The largest request body accepted, in bytes.")
    public var maxBodySize = 256 * 1024

    /// Development mode: a changed step reruns from there instead of suspending.
    @Flag(help: "Development mode: a step whose code changed (its #step fingerprint or version) reruns from there instead of suspending.")
    public var dev = false

    /// The defaults: `./state`, 127.0.0.1:8080, no authentication. To name another store in
    /// code, parse flags: `try ServeOptions.parse(["--path", "./billing-state"])`.
    public init() {}
}
