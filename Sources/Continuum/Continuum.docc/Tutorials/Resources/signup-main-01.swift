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
