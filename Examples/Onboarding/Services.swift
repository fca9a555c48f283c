import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An append-only text file standing in for "the outside world": every fake service call
/// that has an effect writes one line to it, so the demo can count them afterwards.
///
/// Each line is written with `O_APPEND` and made durable with `fsync` before the call
/// returns, so a line is on disk even when the process is killed right after.
struct Ledger: Sendable {
    /// The ledger file, `<state>/ledger.txt`.
    let path: String

    /// Appends `entry`, followed by the calling process's id and the idempotency key the
    /// caller passed, as one line.
    func record(_ entry: String, idempotencyKey: String) throws {
        let line = Array("\(entry) (pid \(getpid()), key \(idempotencyKey))\n".utf8)
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LedgerError(path: path, operation: "open", code: errno) }
        defer { close(fd) }
        var written = 0
        while written < line.count {
            let count = line[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw LedgerError(path: path, operation: "write", code: errno)
            }
            written += count
        }
        guard fsync(fd) == 0 else { throw LedgerError(path: path, operation: "fsync", code: errno) }
    }

    /// Every line of the ledger, or none when nothing was recorded yet.
    func lines() throws -> [String] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        return try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
    }
}

/// A failed system call on the ledger file.
struct LedgerError: Error, CustomStringConvertible {
    /// The ledger file.
    var path: String
    /// The system call that failed.
    var operation: String
    /// Its `errno`.
    var code: Int32

    var description: String { "cannot \(operation) \(path): \(String(cString: strerror(code)))" }
}

/// A fake payment provider. Creating a customer is the effect we must never repeat: a second
/// call would create a second customer (with a different id) for the same user.
struct Payments: Sendable {
    /// Where calls are recorded.
    let ledger: Ledger

    /// Creates a customer and returns its new, random id (`cus_` and 8 hex digits).
    ///
    /// A real provider would deduplicate on `idempotencyKey`; this fake one only records it,
    /// so that a repeated call would be plain to see in the ledger.
    func createCustomer(userID: String, email: String, idempotencyKey: String) async throws -> String {
        let customerID = "cus_" + String(UInt32.random(in: .min ... .max), radix: 16).leftPadded(to: 8)
        try ledger.record("payments.createCustomer \(userID) -> \(customerID)", idempotencyKey: idempotencyKey)
        return customerID
    }
}

/// A fake application database.
struct CustomerDatabase: Sendable {
    /// Where calls are recorded.
    let ledger: Ledger

    /// Stores the user's payment customer id.
    func saveCustomer(userID: String, customerID: String, idempotencyKey: String) async throws {
        try ledger.record("db.saveCustomer \(userID) = \(customerID)", idempotencyKey: idempotencyKey)
    }
}

/// A fake email service.
struct Mailer: Sendable {
    /// Where calls are recorded.
    let ledger: Ledger

    /// Sends the welcome email.
    func sendWelcome(to email: String, idempotencyKey: String) async throws {
        try ledger.record("email.sendWelcome \(email)", idempotencyKey: idempotencyKey)
    }
}

extension String {
    /// The string with leading zeros up to `width` characters.
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
