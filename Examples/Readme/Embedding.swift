import Continuum
import ContinuumExamples
import ContinuumHTTP
import ContinuumLMDB
import ContinuumPostgres
import Hummingbird
import Logging
import ServiceLifecycle
import Tracing

func embedding(logger: Logger) async throws {
let runtime = WorkflowRuntime(store: try LMDBStore(path: "./state"), workflows: [PurchaseApproval()])
let router = Router()
ContinuumAPI(runtime: runtime, configuration: .init(tokens: ["s3cret"], webhookSecrets: ["whsec_…"])).register(on: router)
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 8080)))
// Shut down in reverse order: the server stops taking requests, then the runtime.
try await ServiceGroup(services: [runtime, app], gracefulShutdownSignals: [.sigterm], logger: logger).run()
}

func dashboardElsewhere(api: ContinuumAPI, router: Router<BasicRequestContext>) {
router.group("/ops", context: ContinuumRequestContext<BasicRequestContext>.self).addRoutes(api.dashboardRoutes())
}

func observability(store: any EventStore, logger: Logger, tracer: any Tracer) {
var configuration = WorkflowRuntime.Configuration(logger: logger)
configuration.tracer = tracer            // or InstrumentationSystem.bootstrap(tracer)
configuration.maxPayloadSize = 1 << 20   // inputs, results, events, outputs (default 2 MiB)
let runtime = WorkflowRuntime(store: store, workflows: [PurchaseApproval()], configuration: configuration)
_ = runtime
}

func postgres(logger: Logger) async throws {
let store = try await PostgresStore.connect(configuration: .init(url: "postgres://app:secret@db:5432/app"), logger: logger)
let runtime = WorkflowRuntime(store: store, workflows: [PurchaseApproval()])
_ = runtime
}
