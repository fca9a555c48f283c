@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

/// Writes `count` steps of 64 KiB each.
private struct Hoarder: Workflow {
    static let name = "hoarder"

    func run(_ ctx: WorkflowContext, input count: Int) async throws -> Int {
        var total = 0
        for index in 0..<count {
            let chunk = try await ctx.step("chunk-\(index)") { () -> String in
                // Random letters: compression or deduplication must not hide the bytes.
                String(decoding: (0..<65_536).map { _ in UInt8.random(in: 97...122) }, as: UTF8.self)
            }
            total += chunk.utf8.count
        }
        return total
    }
}

/// Mounts a tmpfs of `size` (for example "6m") on a fresh directory for the duration of `body`.
/// Needs root, which CI and this machine have; without it the test fails and says so.
private func withTmpfs<R>(size: String, _ body: (String) async throws -> R) async throws -> R {
    try await withTemporaryDirectory(prefix: "continuum-tmpfs") { directory in
        let mount = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", directory])
        guard mount.status == 0 else {
            throw TmpfsUnavailable(message: "mount -t tmpfs failed (\(mount.output)); this test needs root")
        }
        defer { _ = try? run("/bin/umount", ["-l", directory]) }
        return try await body(directory)
    }
}

private struct TmpfsUnavailable: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

private func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    process.waitUntilExit()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    return (process.terminationStatus, output)
}

@Suite("Disk full", .serialized)
struct DiskFullTests {
    @Test("on a full tmpfs: a named storageFull error, nothing acknowledged that is not stored, no SIGBUS; freeing space resumes")
    func fullDisk() async throws {
        try await withTmpfs(size: "6m") { mount in
            // Ballast to free later: a little first if the disk filled at a start, then the rest.
            let ballast = [mount + "/ballast-1", mount + "/ballast-2"]
            for file in ballast { #expect(FileManager.default.createFile(atPath: file, contents: Data(count: 1 << 20))) }
            let path = mount + "/state"
            var configuration = LMDBStore.Configuration()
            configuration.initialMapSize = 64 << 20  // far more than the file system holds
            var runtimeConfiguration = WorkflowRuntime.Configuration()
            runtimeConfiguration.storageRetryInterval = .milliseconds(50)
            var acknowledged: [String] = []
            try await WorkflowRuntime.withLMDB(
                path: path, workflows: [Hoarder()], configuration: configuration, runtime: runtimeConfiguration
            ) { runtime in
                /// Starts workflows until a write fails; returns the error and the workflow it stopped, if not a start.
                func fill(from first: Int) async throws -> (ContinuumError?, stuck: String?) {
                    for index in first..<first + 100 {
                        let id = "h\(index)"
                        do {
                            let handle = try await runtime.start(Hoarder.self, id: id, input: 8)
                            acknowledged.append(id)
                            _ = try await handle.result()
                        } catch let error as ContinuumError where error.code == .storageFull {
                            return (error, acknowledged.last == id ? id : nil)
                        }
                    }
                    return (nil, nil)
                }
                var (error, stuck) = try await fill(from: 0)
                let full = try #require(error, "the file system never filled up")
                #expect(full.message.contains(path), "the error names the store: \(full.message)")
                if stuck == nil {
                    // The start was the write that failed: make a little room and fill again, so a step fails.
                    try FileManager.default.removeItem(atPath: ballast[0])
                    (error, stuck) = try await fill(from: 100)
                    try FileManager.default.removeItem(atPath: ballast[1])
                } else {
                    try FileManager.default.removeItem(atPath: ballast[0])
                    try FileManager.default.removeItem(atPath: ballast[1])
                }
                // Nothing acknowledged is missing.
                for id in acknowledged {
                    #expect(try await runtime.status(of: id) != nil, "\(id) was acknowledged but is not stored")
                }
                // With space freed, the stopped workflow goes on by itself and new work is accepted.
                let stopped = try #require(stuck, "no step ever hit the full disk")
                try await eventually(timeout: .seconds(20)) { try await runtime.status(of: stopped)?.status == .completed }
                let after = try await runtime.start(Hoarder.self, id: "after", input: 1)
                #expect(try await after.result() == 65_536)
            }
            // Reopened: every acknowledged workflow is there, and the store is sound.
            try await LMDBStore.withStore(path: path) { store throws in
                for id in acknowledged + ["after"] {
                    #expect(try await store.summary(id: id) != nil, "\(id) was acknowledged but is not stored")
                }
                #expect(try store.verify().isClean)
            }
        }
    }
}
