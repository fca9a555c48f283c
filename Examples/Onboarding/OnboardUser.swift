import Continuum
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Onboards a new user in three steps: create a payment customer, save it, send a welcome email.
///
/// Each step is a `ctx.step`: once it has completed, its result is in the event log, and a
/// later run of the workflow (after a crash) gets that result back instead of calling the
/// service again. That is what keeps the user from getting two payment customers.
struct OnboardUser: Workflow {
    /// Who to onboard.
    struct Input: Codable, Sendable {
        /// The application's user id, such as `user-42`.
        var userID: String
        /// Where the welcome email goes.
        var email: String
    }

    /// What onboarding produced.
    struct Output: Codable, Sendable {
        /// The user that was onboarded.
        var userID: String
        /// The payment customer created for the user.
        var customerID: String
    }

    let payments: Payments
    let database: CustomerDatabase
    let mailer: Mailer
    /// For the demo only: kill the process with `SIGKILL` right after this step (1-based)
    /// has returned, that is once its result is committed to the event log.
    var crashAfterStep: Int?

    func run(_ ctx: WorkflowContext, input: Input) async throws -> Output {
        let customerID = try await step(1, "create-customer", ctx) { step in
            try await payments.createCustomer(userID: input.userID, email: input.email, idempotencyKey: step.idempotencyKey)
        }
        try await step(2, "save-customer", ctx) { step in
            try await database.saveCustomer(userID: input.userID, customerID: customerID, idempotencyKey: step.idempotencyKey)
        }
        try await step(3, "send-welcome", ctx) { step in
            try await mailer.sendWelcome(to: input.email, idempotencyKey: step.idempotencyKey)
        }
        return Output(userID: input.userID, customerID: customerID)
    }

    // MARK: Narration and the simulated crash

    /// `ctx.step(name, body)`, plus a line saying whether `body` ran in this process or the
    /// step's result came back from the event log, plus the crash the demo asked for.
    private func step<T: Codable & Sendable>(
        _ number: Int, _ name: String, _ ctx: WorkflowContext, _ body: (StepContext) async throws -> T
    ) async throws -> T {
        var ran = false
        let result = try await ctx.step(name) { step in
            ran = true
            return try await body(step)
        }
        let shown = (result as? String).map { " → \($0)" } ?? ""  // the customer id; nothing for `Done`
        Worker.say(ran ? "step \(number) \(name): ran\(shown)" : "step \(number) \(name): already done, result read from the event log\(shown)")
        if crashAfterStep == number {
            // ctx.step returned, so the step's result is committed. A plain retry of the
            // whole job from here would create a second payment customer.
            kill(getpid(), SIGKILL)
        }
        return result
    }

    /// The same, for a step that returns nothing.
    private func step(_ number: Int, _ name: String, _ ctx: WorkflowContext, _ body: (StepContext) async throws -> Void) async throws {
        _ = try await step(number, name, ctx) { step -> Done in
            try await body(step)
            return Done()
        }
    }

    /// What a step that returns nothing records.
    private struct Done: Codable, Sendable {}
}
