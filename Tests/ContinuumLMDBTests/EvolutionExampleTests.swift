import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

/// `make evolution`: the example program tells its story in one run and checks each stage itself;
/// this test runs the built binary and checks its exit status and the facts it prints.
@Suite("Evolution example")
struct EvolutionExampleTests {
    @Test("the evolution story: the gate names b, development reruns it, production suspends, and each way out ends as told")
    func story() async throws {
        let executable = try #require(builtExecutable(named: "Evolution"), "build the Evolution example first (swift build)")
        try await withTemporaryDirectory(prefix: "continuum-evolution-example") { directory in
            let child = try ChildProcess(executable: executable, arguments: ["story", "--state", directory + "/state"])
            let exit = try await child.exit(within: .seconds(120))
            let output = child.output
            #expect(exit == .exited(0), "the story ended with \(exit?.description ?? "no exit within 120 s"):\n\(output)")
            let lines = output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            for expected in [
                // The version 1 process dies while the workflows sleep after b.
                "⚡ the version 1 process is gone (SIGKILL); asleep in the store: dev-1",
                // The gate's verdict names b.
                "gate verdict: 1 of 1 workflow(s) would break, at step 'b' (codeChanged)",
                // Development reruns from b with version 2.
                "rerun: dev-1 completed with \"a:dev-1 b2 c2\"",
                // Production suspends, naming b, and the suspension survives a restart.
                "suspended: reset-me — codeChanged at step 'b' (build v2); nothing ran, nothing else was appended",
                "still suspended after the restart: cancel-me, fork-me, reset-me, resume-me",
                // Each way out.
                "reset: reset-me completed with \"a:reset-me b2 c2\"",
                "resume: resume-me completed with \"a:resume-me b1 c\" (b's recorded result, the sleep it had begun)",
                "cancel: cancel-me ended cancelled",
                "✓ every stage behaved as told",
            ] {
                #expect(lines.contains(expected), "missing line: \(expected)\n\(output)")
            }
            #expect(lines.contains { $0.hasPrefix("fork: fork-me-v2 completed with \"a:fork-me b2 c2\"; fork-me is still suspended") }, "\(output)")
            // The history shows the superseded events, kept.
            #expect(lines.contains { $0.hasPrefix("~ #") && $0.contains("stepCompleted b → \"b1\"") && $0.hasSuffix("(superseded)") }, "\(output)")
            #expect(lines.contains { $0.hasPrefix("history: ") && $0.contains("superseded by the reset and kept") }, "\(output)")
            // Development: a's body did not run again; b's did, under a new idempotency key.
            #expect(lines.contains("[v2] step b ran → b2 (idempotency key dev-1/b/0/reset-1)"), "\(output)")
            #expect(!lines.contains { $0.hasPrefix("[v2] step a ran") }, "a ran again under version 2:\n\(output)")
        }
    }
}
