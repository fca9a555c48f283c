import Continuum
import ContinuumLMDB

/// Prints instead of writing to a database.
struct ConsoleAccounts: Accounts {
    func create(email: String, idempotencyKey: String) async throws -> String {
        print("creating the account of \(email) (idempotency key \(idempotencyKey))")
        return "acct-\(email.prefix { $0 != "@" })"
    }
}

/// Prints instead of sending mail.
struct ConsoleMailer: Mailer {
    func send(_ message: String, to email: String, idempotencyKey: String) async throws {
        print("mail to \(email): \(message) (idempotency key \(idempotencyKey))")
    }
}

let store = try LMDBStore(path: "./state")
let runtime = WorkflowRuntime(store: store, workflows: [SignUp(accounts: ConsoleAccounts(), mailer: ConsoleMailer())])

let outcome = try await runtime.withRunning { runtime in
    // Starting the same id again finds the run already in the store.
    let handle = try await runtime.start(SignUp.self, id: "sign-up-ada", input: .init(email: "ada@example.com"))
    return try await handle.result()
}
print("sign-up finished: \(outcome)")
await store.close()
