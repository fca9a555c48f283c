@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing


/// The same code as the `reminder` example: it replays.
private struct SameReminder: Workflow {
    static let name = "reminder"
    struct Input: Codable, Sendable { var to: String; var about: String; var afterSeconds: Int }

    func run(_ ctx: WorkflowContext, input: Input) async throws -> String {
        try await ctx.sleep(for: .seconds(input.afterSeconds))
        return try await ctx.step("send-reminder") { "reminded \(input.to) about \(input.about)" }
    }
}

@Suite("continuum check")
struct CheckCommandTests {
    @Test("exits 1 naming a workflow the build would break, in text and JSON; works beside a running server")
    func gate() async throws {
        let executable = try #require(builtExecutable(named: "continuum"), "build the continuum executable first (swift build)")
        try await withTemporaryDirectory { path in
            try await WorkflowRuntime.withLMDB(path: path, workflows: [OldPurchaseApproval(), SameReminder()]) { runtime throws in
                try await runtime.start(OldPurchaseApproval.self, id: "po-old", input: .init(item: "desk", amount: 300))
                try await runtime.start(SameReminder.self, id: "r-1", input: .init(to: "ada", about: "tea", afterSeconds: 3600))
                try await runtime.waitForHistory(of: "po-old") { $0.contains { $0.kindName == "waitStarted" } }
                try await runtime.waitForHistory(of: "r-1") { $0.contains { $0.kindName == "waitStarted" } }
            }
            let text = try ChildProcess(executable: executable, arguments: ["check", "--path", path])
            #expect(await text.exit() == .exited(1))
            #expect(text.output.contains("po-old") && text.output.contains("'file-ticket'") && text.output.contains("'file-request'"), "\(text.output)")
            #expect(text.output.contains("Checked 2 workflow(s)") && text.output.contains("1 would break"), "\(text.output)")
            #expect(!text.output.contains("r-1"), "a compatible workflow is listed without --all: \(text.output)")

            let json = try ChildProcess(executable: executable, arguments: ["check", "--path", path, "--json"])
            #expect(await json.exit() == .exited(1))
            let report = try JSONDecoder().decode(CheckReport.self, from: Data(json.output.utf8))
            #expect(report.checked == 2 && report.breaking == 1)
            #expect(report.entries.first { $0.id == "po-old" }?.verdict == .wouldSuspend)
            #expect(report.entries.first { $0.id == "r-1" }?.verdict == .compatible)

            // Beside a server that holds the directory (and suspends po-old meanwhile): the same verdicts.
            let port = randomServerPort()
            let server = try ChildProcess(executable: executable, arguments: ["serve", "--path", path, "--port", "\(port)"])
            defer { if !server.hasExited { server.kill() } }
            try await server.waitForLine("Continuum is serving \(path) at http://127.0.0.1:\(port)")
            let beside = try ChildProcess(executable: executable, arguments: ["check", "--path", path, "--json"])
            #expect(await beside.exit() == .exited(1))
            let live = try JSONDecoder().decode(CheckReport.self, from: Data(beside.output.utf8))
            #expect(live.checked == 2 && live.entries.first { $0.id == "po-old" }?.verdict == .wouldSuspend, "\(beside.output)")
            server.terminate()
            #expect(await server.exit() == .exited(0))
        }
    }
}
