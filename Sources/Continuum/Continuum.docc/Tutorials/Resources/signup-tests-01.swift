import Continuum
import ContinuumTesting
import Synchronization
import Testing

@testable import Signup

/// Stands in for the account database and the mail provider, and remembers what it was asked.
final class FakeServices: Accounts, Mailer {
    let sent = Mutex<[String]>([])

    func create(email: String, idempotencyKey: String) async throws -> String { "acct-1" }

    func send(_ message: String, to email: String, idempotencyKey: String) async throws {
        sent.withLock { $0.append(message) }
    }
}
