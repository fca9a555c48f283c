// The README's snippets, compiled: every ```swift block of README.md appears here, line for
// line in order (ReadmeTests checks it), among the declarations it needs.
import Continuum
import ContinuumLMDB

struct OnboardUser: Workflow {
    struct Input: Codable, Sendable { var userID: String; var email: String }
    let payments: Payments
    let database: Database
    let mail: Mailer

    func run(_ ctx: WorkflowContext, input: Input) async throws -> String {
        // Runs once. After a crash, the recorded customer id is returned instead.
        let customerID = try await ctx.step("create-customer") { step in
            try await payments.createCustomer(email: input.email, idempotencyKey: step.idempotencyKey)
        }
        try await ctx.step("save-customer") { try await database.save(input.userID, customerID) }
        try await ctx.sleep(for: .seconds(3 * 86_400))      // durable: no process needs to run meanwhile
        let feedback = try await ctx.waitForEvent("feedback", as: Feedback.self, timeout: .seconds(7 * 86_400))
        try await ctx.step("follow-up", retry: .exponential(maxAttempts: 5, initial: .seconds(1))) {
            try await mail.send(to: input.email, feedback == nil ? .reminder : .thankYou)
        }
        return customerID
    }
}

func aWorkflow(p: Payments, d: Database, m: Mailer) async throws {
let store = try LMDBStore(path: "./state")
let runtime = WorkflowRuntime(store: store, workflows: [OnboardUser(payments: p, database: d, mail: m)])

try await runtime.withRunning { runtime in
    // Starting the same id twice gives the same run.
    let handle = try await runtime.start(OnboardUser.self, id: "user-42", input: .init(userID: "42", email: "a@b.c"))
    // From a webhook handler: delivered to the waiting workflow, or buffered until it waits.
    try await runtime.send("feedback", to: "user-42", payload: Feedback(stars: 5), dedupKey: "msg-981")
    print(try await handle.result())
}
await store.close()
}

// What the snippet takes as given.

/// A payment provider's client.
struct Payments: Sendable {
    func createCustomer(email: String, idempotencyKey: String) async throws -> String { "cus_\(idempotencyKey.hashValue)" }
    func charge(_ order: String, idempotencyKey: String) async throws -> Int { order.count }
}

/// The service's own database.
struct Database: Sendable {
    func save(_ userID: String, _ customerID: String) async throws {}
}

/// What a user answered to the onboarding.
struct Feedback: Codable, Sendable { var stars: Int }

/// Sends the two follow-up mails.
struct Mailer: Sendable {
    enum Message { case reminder, thankYou }
    func send(to address: String, _ message: Message) async throws {}
}
