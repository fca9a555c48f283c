import ContinuumTestSupport
import ContinuumTesting
import Foundation
import Testing

@Suite("continuum bench")
struct BenchCommandTests {
    @Test("the resident scenario with dormancy and --max-resident below the count: every workflow is admitted, rests dormant in memory, wakes by its own event, and the memory is reported")
    func residentBounded() async throws {
        let executable = try #require(builtExecutable(named: "continuum"), "build the continuum executable first (swift build)")
        try await withTemporaryDirectory { path in
            // Event waiters (`--steps 0`): the scenario then wakes each with its event and checks
            // it got its own, so admission, rest and wake all run under the bound.
            let run = try ChildProcess(
                executable: executable,
                arguments: [
                    "bench", "--scenario", "resident", "--workflows", "300", "--steps", "0", "--dormant-after-ms", "1", "--max-resident", "20",
                    "--path", path + "/store", "--json",
                ])
            let exit = try await run.exit(within: .seconds(120))
            #expect(exit == .exited(0), "\(run.output)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any], "\(run.output)")
            #expect(report["scenario"] as? String == "resident" && report["workflows"] as? Int == 300, "\(run.output)")
            for field in ["resident_bytes_per_workflow", "trimmed_bytes_per_workflow", "wake_cpu_us_per_workflow", "peak_rss_mb"] {
                #expect(report[field] is Double, "\(field) missing: \(run.output)")
            }
        }
    }

    @Test("the steps scenario with --payload record: workflows pass an order and receipts, each checked, and the report names the payload")
    func recordPayload() async throws {
        let executable = try #require(builtExecutable(named: "continuum"), "build the continuum executable first (swift build)")
        try await withTemporaryDirectory { path in
            let run = try ChildProcess(
                executable: executable,
                arguments: ["bench", "--workflows", "60", "--steps", "3", "--payload", "record", "--path", path + "/store", "--json"])
            let exit = try await run.exit(within: .seconds(120))
            #expect(exit == .exited(0), "\(run.output)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any], "\(run.output)")
            #expect(report["payload"] as? String == "record" && report["workflows"] as? Int == 60, "\(run.output)")
            #expect((report["workflows_per_second"] as? Double ?? 0) > 0 && report["cpu_us_per_workflow"] is Double, "\(run.output)")
            // The writer's part of the CPU, read from its named thread: some, and not more than all.
            let writer = try #require(report["writer_cpu_us_per_workflow"] as? Double, "\(run.output)")
            #expect(writer > 0 && writer <= (report["cpu_us_per_workflow"] as? Double ?? 0), "\(run.output)")
        }
    }

    @Test("--beside-raw measures the raw limit in the steps scenario's run and reports the steps' fraction of it; other scenarios refuse it")
    func besideRaw() async throws {
        let executable = try #require(builtExecutable(named: "continuum"), "build the continuum executable first (swift build)")
        try await withTemporaryDirectory { path in
            let run = try ChildProcess(
                executable: executable, arguments: ["bench", "--workflows", "200", "--steps", "3", "--beside-raw", "--path", path + "/store", "--json"])
            let exit = try await run.exit(within: .seconds(120))
            #expect(exit == .exited(0), "\(run.output)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any], "\(run.output)")
            let perSecond = try #require(report["workflows_per_second"] as? Double, "\(run.output)")
            let rawEvents = try #require(report["raw_events_per_second"] as? Double, "\(run.output)")
            let fraction = try #require(report["fraction_of_raw"] as? Double, "\(run.output)")
            // Five events per workflow (a start, three steps, the end) on both sides.
            #expect(abs(fraction - perSecond * 5 / rawEvents) < 1e-9 * max(1, fraction), "\(run.output)")
            #expect(fraction > 0 && report["raw_cpu_us_per_workflow"] is Double && report["cpu_us_per_workflow"] is Double, "\(run.output)")

            // Its error goes to standard error, which the shell hands to the captured output.
            let refused = try ChildProcess(
                executable: "/bin/sh",
                arguments: ["-c", #"exec "$0" "$@" 2>&1"#, executable, "bench", "--scenario", "timers", "--beside-raw", "--path", path + "/other", "--json"])
            let refusal = try await refused.exit(within: .seconds(60))
            #expect(refusal != nil && refusal != .exited(0), "\(refused.output)")
            #expect(refused.output.contains("--beside-raw measures the raw limit beside the steps scenario"), "\(refused.output)")
        }
    }

    @Test("the codec scenario encodes and decodes the record payloads both ways, checks both decoded the same, and reports each side's CPU per round")
    func codecScenario() async throws {
        let executable = try #require(builtExecutable(named: "continuum"), "build the continuum executable first (swift build)")
        try await withTemporaryDirectory { path in
            let run = try ChildProcess(
                executable: executable, arguments: ["bench", "--scenario", "codec", "--workflows", "500", "--path", path + "/store", "--json"])
            let exit = try await run.exit(within: .seconds(120))
            #expect(exit == .exited(0), "\(run.output)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any], "\(run.output)")
            #expect(report["scenario"] as? String == "codec" && report["workflows"] as? Int == 500, "\(run.output)")
            #expect((report["codec_ns_per_round"] as? Double ?? 0) > 0 && (report["foundation_ns_per_round"] as? Double ?? 0) > 0, "\(run.output)")
        }
    }

    @Test("--max-resident 0, or below the count in the resident scenario without dormancy, is refused with a clear message, nothing measured")
    func maxResidentRefused() async throws {
        let executable = try #require(builtExecutable(named: "continuum"), "build the continuum executable first (swift build)")
        let run = try ChildProcess(executable: "/bin/sh", arguments: ["-c", #"exec "$0" "$@" 2>&1"#, executable, "bench", "--max-resident", "0", "--json"])
        let exit = await run.exit()
        #expect(exit != .exited(0))
        #expect(run.output.contains("--max-resident must be positive") || (run.output.contains("--max-resident") && run.output.contains("must be positive")), "\(run.output)")
        // Below the count with no dormancy, the resident scenario would wait forever: refused.
        let waiting = try ChildProcess(
            executable: "/bin/sh", arguments: ["-c", #"exec "$0" "$@" 2>&1"#, executable, "bench", "--scenario", "resident", "--workflows", "10", "--max-resident", "5"])
        let waitingExit = try await waiting.exit(within: .seconds(30))
        #expect(waitingExit != nil && waitingExit != .exited(0), "\(waiting.output)")
        #expect(waiting.output.contains("needs --dormant-after-ms"), "\(waiting.output)")
    }
}
