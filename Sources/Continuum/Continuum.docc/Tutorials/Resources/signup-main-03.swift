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

let command = CommandLine.arguments.dropFirst().first ?? "start"
let store = try LMDBStore(path: "./state")
let runtime = WorkflowRuntime(store: store, workflows: [SignUp(accounts: ConsoleAccounts(), mailer: ConsoleMailer())])

let outcome = try await runtime.withRunning { runtime in
    if command == "confirm" {
        // What a web handler does when the user clicks the link; the dedup key makes a
        // repeated click (or a retried request) deliver one event.
        try await runtime.send("email-confirmed", to: "sign-up-ada", payload: Confirmation(clickedFrom: "mail"), dedupKey: "click-1")
    } else {
        try await runtime.start(SignUp.self, id: "sign-up-ada", input: .init(email: "ada@example.com"))
    }
    return try await runtime.handle(SignUp.self, id: "sign-up-ada").result()
}
print("sign-up finished: \(outcome)")
await store.close()
