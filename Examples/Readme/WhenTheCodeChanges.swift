import Continuum
import ContinuumMacros   // #step fingerprints a step's body, so an edit is noticed

struct ShipOrder: Workflow {
    let payments: Payments
    let sms: SMS

    func run(_ ctx: WorkflowContext, input order: String) async throws -> Int {
let charge = try await #step(ctx, "charge") { step in try await payments.charge(order, idempotencyKey: step.idempotencyKey) }
if try await ctx.patched("sms-2026-11") { try await ctx.step("send-sms") { try await sms.send(order) } }   // a planned change, old runs keep the old branch
        return charge
    }
}

/// Sends a text message.
struct SMS: Sendable {
    func send(_ text: String) async throws {}
}

func waysOut(runtime: WorkflowRuntime) async throws {
try await runtime.resume("order-7", by: "ops", reason: "v41 restores the old step")   // run with the code now deployed
try await runtime.reset("order-8", toStep: "charge", by: "ops", reason: "rerun with the fix") // supersede from a step (kept, not deleted)
try await runtime.fork("order-9", toStep: "charge", as: "order-9-debug")              // try new code on a copy
}
