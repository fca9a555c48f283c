public import Continuum
import Foundation

/// A purchase that waits for a person to approve it: the workflow `continuum serve` starts
/// with `POST /v1/workflows/purchase-approval`, and that an event (`approve`) completes.
///
/// It waits up to a week without a running process: the wait is durable, and the workflow
/// leaves memory while it waits.
public struct PurchaseApproval: Workflow {
    public static let name = "purchase-approval"

    /// What to buy.
    public struct Input: Codable, Sendable {
        public var item: String
        public var amount: Int
    }

    /// The approver's answer, sent as the `approve` event.
    public struct Decision: Codable, Sendable {
        public var approved: Bool
        public var by: String
    }

    public init() {}

    public func run(_ ctx: WorkflowContext, input: Input) async throws -> String {
        let requestID = try await ctx.step("file-request") { step in
            // A real system would open a ticket here, passing `step.idempotencyKey` along.
            "REQ-\(step.idempotencyKey.utf8.reduce(7) { ($0 &* 31 &+ Int($1)) % 100_000 })"
        }
        // Read with `continuum query <id> stage` or GET /v1/workflows/<id>/queries/stage; appends nothing.
        try await ctx.publish("stage", "\(requestID) waits for approval")
        guard let decision = try await ctx.waitForEvent("approve", as: Decision.self, timeout: .seconds(7 * 86_400)) else {
            return "\(requestID): \(input.item) expired unapproved after a week"
        }
        guard decision.approved else { return "\(requestID): \(input.item) rejected by \(decision.by)" }
        let order = try await ctx.step("place-order") { "ORD-\(input.amount)-\(input.item.count)" }
        return "\(requestID): \(input.item) (\(input.amount)) approved by \(decision.by), order \(order)"
    }
}

/// Sends a reminder after a delay: a durable sleep.
public struct Reminder: Workflow {
    public static let name = "reminder"

    /// Who to remind, about what, and after how many seconds.
    public struct Input: Codable, Sendable {
        public var to: String
        public var about: String
        public var afterSeconds: Int
    }

    public init() {}

    public func run(_ ctx: WorkflowContext, input: Input) async throws -> String {
        try await ctx.sleep(for: .seconds(input.afterSeconds))
        return try await ctx.step("send-reminder") { "reminded \(input.to) about \(input.about)" }
    }
}

/// Every example workflow, to register with a runtime.
public let exampleWorkflows: [any Workflow] = [PurchaseApproval(), Reminder(), ResearchAgent(), ResearchSource()]

/// The queues the examples use: the research agent's model allows 4 requests at once and 60 a minute.
public let exampleQueues: [String: QueueLimits] = [ResearchAgent.modelQueue: QueueLimits(concurrency: 4, rate: .init(60, per: .seconds(60)))]
