import Continuum

/// Creates accounts in the service's own database.
protocol Accounts: Sendable {
    func create(email: String, idempotencyKey: String) async throws -> String
}

/// Sends mail through a provider.
protocol Mailer: Sendable {
    func send(_ message: String, to email: String, idempotencyKey: String) async throws
}

/// Signs a new user up: creates the account, then welcomes them.
struct SignUp: Workflow {
    static let name = "sign-up"

    struct Input: Codable, Sendable {
        var email: String
    }

    let accounts: any Accounts
    let mailer: any Mailer

    func run(_ ctx: WorkflowContext, input: Input) async throws -> String {
        let accountID = try await ctx.step("create-account") { step in
            try await accounts.create(email: input.email, idempotencyKey: step.idempotencyKey)
        }
        try await ctx.step("send-welcome") { step in
            try await mailer.send("Welcome! Please confirm your email address.", to: input.email, idempotencyKey: step.idempotencyKey)
        }
        return accountID
    }
}
