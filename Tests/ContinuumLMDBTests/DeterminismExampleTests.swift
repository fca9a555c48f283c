import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

/// The Determinism example: a worker records `ctx.now()`, `ctx.uuid()` and `ctx.random()`, runs a
/// step with them and is SIGKILLed; a second worker replays the history and finishes. This test
/// runs it and checks from what both workers printed that they saw the same recorded values,
/// that `Date()` (not recorded) differed, and that the step ran once.
@Suite("Determinism example")
struct DeterminismExampleTests {
    @Test("recorded time, UUID and random number are the same after a SIGKILL and a replay; the step runs once")
    func story() async throws {
        let executable = try #require(builtExecutable(named: "Determinism"), "build the Determinism example first (swift build)")
        try await withTemporaryDirectory(prefix: "continuum-determinism") { directory in
            let child = try ChildProcess(executable: executable, arguments: ["--state", directory + "/state"])
            let exit = try await child.exit(within: .seconds(60))
            let output = child.output
            #expect(exit == .exited(0), "Determinism ended with \(exit?.description ?? "no exit within 60 s"):\n\(output)")
            let lines = output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            let values = lines.filter { $0.contains("] values: ctx.now=") }.map { $0.split(separator: "] ", maxSplits: 1).last.map(String.init) ?? "" }
            #expect(values.count == 2 && values[0] == values[1], "\(output)")
            let unrecorded = lines.filter { $0.contains("] unrecorded: Date()=") }.map { $0.split(separator: "] ", maxSplits: 1).last.map(String.init) ?? "" }
            #expect(unrecorded.count == 2 && unrecorded[0] != unrecorded[1], "\(output)")
            #expect(lines.filter { $0.contains("] step ran: ") }.count == 1, "\(output)")
            #expect(lines.contains("[worker 1] ⚡ SIGKILL after the step was committed"), "\(output)")
            #expect(lines.contains { $0.hasPrefix("✓ both runs saw ctx.now=") }, "\(output)")
        }
    }
}
