import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

/// `make demo`: the onboarding example kills its worker with SIGKILL after step 1, restarts it,
/// and checks from the ledger that the customer was created once. This test runs the built
/// binary as `make demo` does and checks its verdict and the ledger it prints.
@Suite("Onboarding example")
struct OnboardingExampleTests {
    @Test("the crash story: killed after step 1, the restarted process continues at step 2 and the customer is created once")
    func demo() async throws {
        let executable = try #require(builtExecutable(named: "Onboarding"), "build the Onboarding example first (swift build)")
        try await withTemporaryDirectory(prefix: "continuum-onboarding-example") { directory in
            let child = try ChildProcess(executable: executable, arguments: ["demo", "--state", directory + "/state"])
            let exit = try await child.exit(within: .seconds(120))
            let output = child.output
            #expect(exit == .exited(0), "the demo ended with \(exit?.description ?? "no exit within 120 s"):\n\(output)")
            let lines = output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            #expect(lines.contains { $0.hasPrefix("⚡ the process was killed with SIGKILL after step 1") }, "\(output)")
            #expect(lines.contains { $0.hasPrefix("✓ payments.createCustomer ran exactly once, and the workflow returned that customer") }, "\(output)")
            // The ledger, as printed: one customer created, the later steps after it.
            let created = lines.filter { $0.hasPrefix("payments.createCustomer ") }
            #expect(created.count == 1, "createCustomer in the ledger \(created.count) times:\n\(output)")
            #expect(!lines.contains { $0.hasPrefix("✗") }, "\(output)")
        }
    }
}
