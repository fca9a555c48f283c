import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

/// The FlakyBank example: a step calls a local bank that fails its first three requests, with a
/// retry policy of 5 attempts waiting 1 s, 2 s, 4 s; the fourth attempt pays. This test runs it
/// and checks the attempts and their spacing, and that other workflows ran during the waits.
@Suite("FlakyBank example")
struct FlakyBankExampleTests {
    @Test("three 503s, then 200 on the fourth attempt, 1 s, 2 s and 4 s apart; 200 other workflows complete meanwhile")
    func story() async throws {
        let executable = try #require(builtExecutable(named: "FlakyBank"), "build the FlakyBank example first (swift build)")
        try await withTemporaryDirectory(prefix: "continuum-flaky-bank") { directory in
            let child = try ChildProcess(executable: executable, arguments: ["--state", directory + "/state"])
            let exit = try await child.exit(within: .seconds(90))
            let output = child.output
            #expect(exit == .exited(0), "FlakyBank ended with \(exit?.description ?? "no exit within 90 s"):\n\(output)")
            // "attempt N at T s: STATUS"
            let attempts: [(number: Int, at: Double, status: Int)] = output.split(separator: "\n").compactMap { line in
                let words = line.split(separator: " ")
                guard words.count == 6, words[0] == "attempt", let number = Int(words[1]), let at = Double(words[3]),
                    let status = Int(words[5])
                else { return nil }
                return (number, at, status)
            }
            #expect(attempts.map(\.number) == [1, 2, 3, 4] && attempts.map(\.status) == [503, 503, 503, 200], "\(output)")
            guard attempts.count == 4 else { return }
            // The waits: 1 s, 2 s, 4 s (no jitter) from one attempt's end to the next's start, so
            // starts are at least that far apart; a loaded machine may add to them.
            for (index, wait) in [1.0, 2.0, 4.0].enumerated() {
                let gap = attempts[index + 1].at - attempts[index].at
                #expect(gap >= wait - 0.01 && gap < wait + 5, "wait \(index + 1) lasted \(gap) s, not about \(wait) s:\n\(output)")
            }
            // Other workflows completed while the payment waited for its later attempts.
            let others = try #require(output.split(separator: "\n").first { $0.hasPrefix("while the payment waited: 200 other workflows completed by ") })
            let by = Double(others.split(separator: " ")[9]) ?? .infinity
            #expect(by < attempts[3].at, "\(output)")
            #expect(output.contains("paid: tx-1004 at "), "\(output)")
        }
    }
}
