import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

/// The ResearchAgent example: three sources as children, two scrapes delivered as a webhook
/// would, one timing out; progress read as a query; a report at the end.
@Suite("ResearchAgent example")
struct ResearchAgentExampleTests {
    @Test("two sources summarized through the model queue, one timed out; progress moves as they come in")
    func story() async throws {
        let executable = try #require(builtExecutable(named: "ResearchAgent"), "build the ResearchAgent example first (swift build)")
        try await withTemporaryDirectory(prefix: "continuum-research") { directory in
            let child = try ChildProcess(executable: executable, arguments: ["--state", directory + "/state"])
            let exit = try await child.exit(within: .seconds(60))
            let output = child.output
            #expect(exit == .exited(0), "ResearchAgent ended with \(exit?.description ?? "no exit within 60 s"):\n\(output)")
            #expect(output.contains("progress: scraping, 0 of 3 sources"), "\(output)")
            #expect(output.contains("progress: scraping, 2 of 3 sources") || output.contains("progress: scraping, 1 of 3 sources"), "\(output)")
            #expect(output.contains("progress: done, 3 of 3 sources"), "\(output)")
            #expect(output.contains("missing: https://c.example/never-answers"), "\(output)")
            #expect(output.contains("✓ two sources summarized, one timed out"), "\(output)")
        }
    }
}
