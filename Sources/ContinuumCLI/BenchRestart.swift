import ArgumentParser
@_spi(Testing) import Continuum
import ContinuumServer
import Foundation
import Logging

extension Bench {
    /// Starts `workflows` sleepers of a day, waits until every one is parked, stops, and has a
    /// new process open the store: the figures are that process's time to ready and memory.
    func restartScenario(_ runtime: WorkflowRuntime, store: any EventStore, location: StoreLocation, prefix: String) async throws -> Report {
        let total = workflows
        let (elapsed, _) = try await runtime.withRunning { runtime in
            let populated = try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    while true {
                        try await Task.sleep(for: .seconds(2))
                        FileHandle.standardError.write(Data("resident \(runtime.residentWorkflows) rss \(Self.memory("VmRSS"))\n".utf8))
                    }
                }
                defer { group.cancelAll() }
                return try await fanOut(total: total) { index in
                    try await runtime.start(SleepWorkflow.self, id: prefix + String(index), input: 86_400_000)
                }
            }
            // Parked: out of memory, waiting in the store for their timers.
            while runtime.residentWorkflows > 0 || runtime.pendingTimers > 0 {
                try await Task.sleep(for: .milliseconds(200))
            }
            return populated
        }
        await store.close()
        let spawned = ContinuousClock.now
        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        switch location {
        case .lmdb(let directory):
            child.arguments = ["bench", "--measure-restart", "--path", directory]
        case .postgres(_, let url):
            // The URL (it names the schema) goes through the environment, out of the process list.
            child.arguments = ["bench", "--measure-restart"]
            var environment = ProcessInfo.processInfo.environment
            environment[StoreOptions<TemporaryDirectory>.environmentVariable] = url
            child.environment = environment
        }
        let output = Pipe()
        child.standardOutput = output
        try child.run()
        let line = output.fileHandleForReading.readDataToEndOfFile()
        child.waitUntilExit()
        let restart = ContinuousClock.now - spawned
        guard child.terminationStatus == 0 else { throw ValidationError("the restarted process exited with \(child.terminationStatus)") }
        let measured = try JSONDecoder().decode(RestartMeasurement.self, from: line)
        var report = Report(scenario: "restart", workflows: total, concurrency: concurrency, seconds: elapsed.seconds, latencies: [])
        report.workflowsPerSecond = Double(total) / elapsed.seconds
        report.restartSeconds = restart.seconds
        report.readySeconds = measured.readySeconds
        report.residentMegabytes = measured.residentMegabytes
        report.peakResidentMegabytes = measured.peakResidentMegabytes
        return report
    }

    /// The child of the restart scenario: opens the store, runs the runtime until it is ready,
    /// prints what that took and the memory it holds, and stops.
    static func measureRestart(_ location: StoreLocation) async throws {
        let started = ContinuousClock.now
        let (store, runtime) = try await open(location)
        let measurement = try await runtime.withRunning { runtime in
            while !runtime.isReady { try await Task.sleep(for: .milliseconds(1)) }
            let ready = ContinuousClock.now - started
            // Serving: a question about a parked workflow is answered from the store.
            _ = try await runtime.list(status: .running, limit: 10)
            return RestartMeasurement(
                readySeconds: ready.seconds, residentMegabytes: Self.memory("VmRSS"), peakResidentMegabytes: Self.memory("VmHWM"))
        }
        await store.close()
        print(String(decoding: try JSONEncoder().encode(measurement), as: UTF8.self))
    }

    /// A `/proc/self/status` figure in megabytes (10^6 bytes).
    static func memory(_ field: String) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }),
            let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kilobytes * 1024 / 1e6
    }
}

struct RestartMeasurement: Codable {
    var readySeconds: Double
    var residentMegabytes: Double
    var peakResidentMegabytes: Double
}
