// A service of your own on Continuum's one binary: your workflows, behind the same HTTP API,
// dashboard and metrics as `continuum serve`, with the same flags.
//
//   swift run Billing --path ./billing-state --port 8081
//   curl -s -X POST 'http://127.0.0.1:8081/v1/workflows/invoice?id=inv-1' -d '{"customer": "acme", "cents": 4200}'
//   curl -s -X POST 'http://127.0.0.1:8081/v1/workflows/inv-1/events/paid' -H 'Idempotency-Key: pay-1' -d '{"reference": "tx-9"}'
//   curl -s 'http://127.0.0.1:8081/v1/workflows/inv-1'
import Continuum
import ContinuumServer

/// Issues an invoice, waits up to 30 days for its payment, then sends a receipt — or a reminder
/// and the invoice's cancellation when no payment came.
struct Invoice: Workflow {
    static let name = "invoice"

    struct Input: Codable, Sendable {
        var customer: String
        var cents: Int
    }

    struct Payment: Codable, Sendable {
        var reference: String
    }

    func run(_ ctx: WorkflowContext, input: Input) async throws -> String {
        let number = try await ctx.step("issue") { [id = ctx.workflowID] in "INV-\(id)" }
        guard let payment = try await ctx.waitForEvent("paid", as: Payment.self, timeout: .seconds(30 * 86_400)) else {
            try await ctx.step("void") {}
            return "\(number) for \(input.customer) voided: unpaid after 30 days"
        }
        try await ctx.step("receipt", queue: QueueEntry("receipts")) {}
        return "\(number) for \(input.customer): \(input.cents) cents paid (\(payment.reference))"
    }
}

var configuration = WorkflowRuntime.Configuration()
configuration.queues["receipts"] = QueueLimits(concurrency: 4)
try await ContinuumServer(workflows: [Invoice()], configuration: configuration) { base, auth in
    """

    Issue an invoice that waits for its payment:
      curl -s\(auth) -X POST '\(base)/v1/workflows/invoice?id=inv-1' -d '{"customer": "acme", "cents": 4200}'
    Pay it:
      curl -s\(auth) -X POST '\(base)/v1/workflows/inv-1/events/paid' -H 'Idempotency-Key: pay-1' -d '{"reference": "tx-9"}'

    """
}.run()
