import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

/// The FollowUp example: a welcome, then up to three days' wait for feedback — a thank-you
/// when it comes, a reminder when it does not — on the manual clock (three days at once) and on
/// the system clock with a short "day".
@Suite("FollowUp example")
struct FollowUpExampleTests {
    @Test("ada, who answers on day 1, is thanked then; bob, who never answers, is reminded on day 3; each mail once", arguments: [false, true])
    func story(real: Bool) async throws {
        let executable = try #require(builtExecutable(named: "FollowUp"), "build the FollowUp example first (swift build)")
        try await withTemporaryDirectory(prefix: "continuum-follow-up") { directory in
            // A "day" of a second on the system clock: rounding to whole days leaves half a day of slack.
            let child = try ChildProcess(
                executable: executable, arguments: ["--state", directory + "/state"] + (real ? ["--real", "--day-ms", "1000"] : []))
            let exit = try await child.exit(within: .seconds(60))
            let output = child.output
            #expect(exit == .exited(0), "FollowUp ended with \(exit?.description ?? "no exit within 60 s"):\n\(output)")
            let mails = output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { $0.hasPrefix("✉︎ ") }
            #expect(
                mails == [
                    "✉︎ day 0: welcome → ada@example.com", "✉︎ day 0: welcome → bob@example.com",
                    "✉︎ day 1: thank-you (5★ \"smooth\") → ada@example.com", "✉︎ day 3: reminder → bob@example.com",
                ], "\(output)")
            #expect(output.contains("✓ ada was thanked on day 1, bob reminded on day 3; each mail went out once"), "\(output)")
        }
    }
}
