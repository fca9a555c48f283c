public import Continuum

/// What an earlier build deployed as `purchase-approval` (the example `continuum serve` runs):
/// its first step had another name, so the example's code would suspend its workflows. The
/// deploy-gate tests (`continuum check` on LMDB and PostgreSQL) start one with it.
public struct OldPurchaseApproval: Workflow {
    public static let name = "purchase-approval"
    public struct Input: Codable, Sendable {
        public var item: String
        public var amount: Int
        public init(item: String, amount: Int) {
            self.item = item
            self.amount = amount
        }
    }
    struct Decision: Codable, Sendable { var approved: Bool; var by: String }

    public init() {}

    public func run(_ ctx: WorkflowContext, input: Input) async throws -> String {
        _ = try await ctx.step("file-ticket") { "T-1" }
        _ = try await ctx.waitForEvent("approve", as: Decision.self, timeout: .seconds(7 * 86_400))
        return "done"
    }
}
