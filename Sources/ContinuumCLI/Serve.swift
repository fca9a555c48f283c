import ArgumentParser
import Continuum
import ContinuumExamples
import ContinuumServer

/// `continuum serve`: the HTTP API over an LMDB store or a PostgreSQL database, with the example
/// workflows registered — a ``ContinuumServer`` like the one a user's executable runs with its own.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the HTTP API (and run workflows) on an LMDB store or a PostgreSQL database.",
        discussion: """
            Registers the example workflows (purchase-approval, reminder, research-agent). To serve your own, \
            build an executable that calls ContinuumServer(workflows: […]).run(): it takes these same flags. \
            Binds 127.0.0.1 unless --host says otherwise; a non-loopback address needs --token or --webhook-secret. \
            Tokens and secrets can also come from CONTINUUM_TOKENS and CONTINUUM_WEBHOOK_SECRETS (comma-separated), \
            which keeps them out of the process list. Several servers can serve one PostgreSQL database (--postgres, \
            or CONTINUUM_POSTGRES_URL); an LMDB directory has one.
            """)

    @OptionGroup var options: ServeOptions

    func run() async throws {
        var configuration = WorkflowRuntime.Configuration()
        configuration.queues = exampleQueues
        let server = ContinuumServer(workflows: exampleWorkflows, configuration: configuration) { base, auth in
            """

            Start a purchase that waits for approval:
              curl -s\(auth) -X POST '\(base)/v1/workflows/purchase-approval?id=po-1' -d '{"item": "laptop", "amount": 1200}'
            Approve it (the workflow completes):
              curl -s\(auth) -X POST '\(base)/v1/workflows/po-1/events/approve' -H 'Idempotency-Key: approval-1' -d '{"approved": true, "by": "ops"}'
            Then see it:
              curl -s\(auth) '\(base)/v1/workflows/po-1'

            """
        }
        try await server.run(options)
    }
}
