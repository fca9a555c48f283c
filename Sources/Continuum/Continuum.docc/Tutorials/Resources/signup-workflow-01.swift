import Continuum

/// Creates accounts in the service's own database.
protocol Accounts: Sendable {
    func create(email: String, idempotencyKey: String) async throws -> String
}

/// Sends mail through a provider.
protocol Mailer: Sendable {
    func send(_ message: String, to email: String, idempotencyKey: String) async throws
}
