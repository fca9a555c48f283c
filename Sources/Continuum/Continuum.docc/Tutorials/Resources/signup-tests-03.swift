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

@Test func remindsAfterThreeDaysWithoutConfirmation() async throws {
    let clock = ManualClock()
    let services = FakeServices()
    let workflow = SignUp(accounts: services, mailer: services)
    try await WorkflowRuntime.withRuntime(store: InMemoryStore(), workflows: [workflow], configuration: .init(clock: clock)) { runtime in
        let handle = try await runtime.start(SignUp.self, id: "s", input: .init(email: "ada@example.com"))
        try await runtime.waitForTimers(1)          // waiting for the confirmation, its timeout committed
        clock.advance(by: .seconds(3 * 86_400))
        #expect(try await handle.result() == "acct-1: reminded")
    }
    #expect(services.sent.withLock { $0 } == ["Welcome! Please confirm your email address.", "Please confirm your email address."])
}

@Test func confirmedInTime() async throws {
    let clock = ManualClock()
    let services = FakeServices()
    let workflow = SignUp(accounts: services, mailer: services)
    try await WorkflowRuntime.withRuntime(store: InMemoryStore(), workflows: [workflow], configuration: .init(clock: clock)) { runtime in
        let handle = try await runtime.start(SignUp.self, id: "s", input: .init(email: "ada@example.com"))
        // Sent before the workflow waits for it: buffered durably, then delivered.
        try await runtime.send("email-confirmed", to: "s", payload: Confirmation(clickedFrom: "mail"))
        #expect(try await handle.result() == "acct-1: confirmed")
        let history = try await runtime.history(of: "s")
        #expect(history.contains { $0.kindName == "eventReceived" })
    }
    #expect(services.sent.withLock { $0 } == ["Welcome! Please confirm your email address."])
}
