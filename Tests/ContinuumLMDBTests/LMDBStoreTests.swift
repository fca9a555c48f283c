@_spi(Testing) import Continuum
@_spi(Testing) import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

private func startEvent(_ type: String = "t", input: [UInt8] = []) -> HistoryEvent {
    HistoryEvent(sequence: 0, timestamp: 1, kind: .workflowStarted(type: type, input: input))
}

private func stepEvent(_ sequence: UInt32, _ name: String, result: [UInt8] = [1]) -> HistoryEvent {
    HistoryEvent(
        sequence: sequence, timestamp: Int64(sequence),
        kind: .stepCompleted(StepRecord(name: name, occurrence: 0, index: sequence - 1, concurrent: false), result: result))
}

@discardableResult
private func create(_ store: LMDBStore, _ id: String, type: String = "t", input: [UInt8] = []) async throws -> StreamID {
    switch try await store.create(CreateRequest(id: id, type: type, started: startEvent(type, input: input), owner: OwnerID("test"))) {
    case .created(let claim): return claim.stream
    case .existing(let stream, _): return stream
    }
}

/// LMDB stores in temporary directories, for the conformance suite.
struct LMDBFixture: EventStoreFixture {
    func makeStore(clock: ManualClock) async throws -> any EventStore {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("continuum-conformance-\(UUID().uuidString)").path
        return try LMDBStore(path: path)
    }

    func reopen(_ store: any EventStore, clock: ManualClock) async throws -> (any EventStore)? {
        let path = try #require(store as? LMDBStore).path
        await store.close()
        return try LMDBStore(path: path)
    }

    func corrupt(_ store: any EventStore, id: String, sequence: UInt32) async throws {
        try await #require(store as? LMDBStore).damage(id: id, sequence: sequence)
    }

    func dispose(_ store: any EventStore) async {
        if let store = store as? LMDBStore { try? FileManager.default.removeItem(atPath: store.path) }
    }
}

@Suite("LMDB store conformance")
struct LMDBConformanceTests {
    @Test(arguments: EventStoreConformance.checks)
    func conforms(_ check: EventStoreConformance.Check) async throws {
        try await check.run(on: LMDBFixture())
    }
}


@Suite("LMDB store")
struct LMDBStoreTests {
    @Test("a second store on the same directory is refused with storeLocked")
    func lockedDirectory() async throws {
        try await withTemporaryDirectory { path in
            let store = try LMDBStore(path: path)
            let error = #expect(throws: ContinuumError.self) { try LMDBStore(path: path) }
            #expect(error?.code == .storeLocked)
            #expect(error?.message.contains(path) == true)
            await store.close()
            let reopened = try LMDBStore(path: path)
            await reopened.close()
        }
    }

    @Test("a store opened read-only beside its owner reads, refuses every write with readOnly, and closes")
    func readOnlyRefusesWrites() async throws {
        try await withTemporaryDirectory { path in
            let owner = try LMDBStore(path: path)
            let stream = try await create(owner, "kept", input: [7])
            var configuration = LMDBStore.Configuration()
            configuration.readOnly = true
            let reader = try LMDBStore(path: path, configuration: configuration)
            #expect(try await reader.load(id: "kept")?.events.count == 1)
            let created = await #expect(throws: ContinuumError.self) {
                _ = try await reader.create(CreateRequest(id: "new", type: "t", started: startEvent(), owner: OwnerID("test")))
            }
            #expect(created?.code == .readOnly)
            let appended = await #expect(throws: ContinuumError.self) {
                try await reader.append(
                    AppendRequest(fence: Claim(stream: stream, token: FencingToken(owner: OwnerID("test"), epoch: 1)), id: "kept", events: [stepEvent(1, "a")]))
            }
            #expect(appended?.code == .readOnly)
            await reader.close()
            // Nothing was written: the owner still sees one event and no second workflow.
            #expect(try await owner.load(id: "kept")?.events.count == 1)
            #expect(try await owner.load(id: "new") == nil)
            await owner.close()
        }
    }

    @Test("a full map grows; past the maximum writes fail with storageFull and nothing is acknowledged")
    func mapGrowthAndLimit() async throws {
        try await withTemporaryDirectory { path in
            var configuration = LMDBStore.Configuration()
            configuration.initialMapSize = 256 * 1024
            configuration.maxMapSize = 2 * 1024 * 1024
            try await LMDBStore.withStore(path: path, configuration: configuration) { store throws in
            let payload = [UInt8](repeating: 7, count: 2000)
            var acknowledged = 0
            var failure: ContinuumError?
            for index in 0..<2000 {
                do {
                    _ = try await create(store, "w\(index)", input: payload)
                    acknowledged += 1
                } catch let error as ContinuumError {
                    failure = error
                    break
                }
            }
            #expect(store.mapSize > 256 * 1024, "the map grew")
            #expect(failure?.code == .storageFull)
            #expect(failure?.message.contains("full") == true)
            // Everything acknowledged is readable; the refused workflow is not there.
            #expect(try await store.list(status: nil, after: nil, limit: 10_000).count == acknowledged)
            #expect(try await store.load(id: "w\(acknowledged)") == nil)
            #expect(try await store.load(id: "w0")?.events.first?.kind == .workflowStarted(type: "t", input: payload))
            }
        }
    }

    @Test("a damaged value is reported as corruptedData with its location, and other workflows still load")
    func corruptedValue() async throws {
        try await withTemporaryDirectory { path in
            let marker = Array("CORRUPT-ME-MARKER-0123456789".utf8)
            try await LMDBStore.withStore(path: path) { store throws in
                try await create(store, "damaged", input: marker)
                try await create(store, "healthy", input: [1, 2, 3])
            }
            var file = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path + "/data.mdb")))
            let offsets = (0...(file.count - marker.count)).filter { file[$0] == marker[0] && Array(file[$0..<$0 + marker.count]) == marker }
            #expect(!offsets.isEmpty)
            for offset in offsets { file[offset + 3] ^= 0x20 }
            try Data(file).write(to: URL(fileURLWithPath: path + "/data.mdb"))

            try await LMDBStore.withStore(path: path) { store throws in
                let error = await #expect(throws: ContinuumError.self) { try await store.load(id: "damaged") }
                #expect(error?.code == .corruptedData)
                #expect(error?.message.contains("'damaged' event 0") == true)
                #expect(try await store.load(id: "healthy")?.events.count == 1)
            }
        }
    }

    @Test("verify reads every value and names the damaged workflow; the CLI exits 1 and says which")
    func verifyFindsDamage() async throws {
        try await withTemporaryDirectory { path in
            let marker = Array("VERIFY-ME-MARKER-0123456789".utf8)
            try await LMDBStore.withStore(path: path) { store throws in
                try await create(store, "damaged", input: marker)
                for index in 0..<5 { try await create(store, "healthy-\(index)", input: [UInt8(index)]) }
                let clean = try store.verify()
                #expect(clean.isClean && clean.checked["events"] == 6 && clean.checked["workflows"] == 6)
            }
            var file = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path + "/data.mdb")))
            let offsets = (0...(file.count - marker.count)).filter { file[$0] == marker[0] && Array(file[$0..<$0 + marker.count]) == marker }
            for offset in offsets { file[offset + 5] ^= 0x01 }
            try Data(file).write(to: URL(fileURLWithPath: path + "/data.mdb"))
            try await LMDBStore.withStore(path: path) { store throws in
                let report = try store.verify()
                #expect(report.damagedWorkflows == ["damaged"])
                #expect(report.problems.count == 1 && report.problems[0].location.contains("event 0"), "\(report.problems)")
                #expect(report.checked["events"] == 6, "verify stopped at the damage")
            }
            let executable = try #require(builtExecutable(named: "continuum"))
            let command = try ChildProcess(executable: executable, arguments: ["verify", "--path", path])
            #expect(await command.exit() == .exited(1))
            #expect(command.output.contains("damaged") && command.output.contains("6 events"), "\(command.output)")
        }
    }

    @Test("a directory holding something that is not an LMDB environment is refused with a clear error")
    func foreignEnvironment() async throws {
        try await withTemporaryDirectory { path in
            try Data(repeating: 0xAB, count: 64 * 1024).write(to: URL(fileURLWithPath: path + "/data.mdb"))
            let error = #expect(throws: ContinuumError.self) { try LMDBStore(path: path) }
            #expect(error?.code == .corruptedData)
            #expect(error?.message.contains(path) == true)
        }
    }

    @Test("a data file cut short is refused with a clear error, never SIGBUS")
    func truncatedEnvironment() async throws {
        try await withTemporaryDirectory { path in
            try await LMDBStore.withStore(path: path) { store throws in
                for index in 0..<300 { try await create(store, "w\(index)", input: Array(repeating: 7, count: 2000)) }
            }
            let data = path + "/data.mdb"
            let size = try #require(try FileManager.default.attributesOfItem(atPath: data)[.size] as? Int)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: data))
            try handle.truncate(atOffset: UInt64(size / 2))
            try handle.close()
            let error = #expect(throws: ContinuumError.self) { try LMDBStore(path: path) }
            #expect(error?.code == .corruptedData)
            #expect(error?.message.contains("truncated") == true, "\(error?.message ?? "")")
        }
    }
}

/// Blocks in its second step until cancelled, so a test can leave it unfinished.
private struct Parked: Workflow {
    static let name = "parked"
    let stop: Bool

    func run(_ ctx: WorkflowContext, input: String) async throws -> String {
        let first = try await ctx.step("first") { input }
        try await ctx.step("second") { if stop { try await Task.sleep(for: .seconds(3600)) } }
        return first
    }
}

@Suite("Runtime on a damaged store")
struct DamagedStoreTests {
    @Test("a workflow with a damaged event is suspended as corruptedData while the others complete")
    func corruptedWorkflowSuspended() async throws {
        try await withTemporaryDirectory { path in
            let marker = "CORRUPT-ME-MARKER-ABCDEFGHIJ"
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Parked(stop: true)]) { runtime throws in
                try await runtime.start(Parked.self, id: "damaged", input: marker)
                try await runtime.start(Parked.self, id: "healthy", input: "fine")
                try await eventually {
                    let damaged = try await runtime.history(of: "damaged").count
                    let healthy = try await runtime.history(of: "healthy").count
                    return damaged == 2 && healthy == 2
                }
            }
            var file = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path + "/data.mdb")))
            let needle = Array(marker.utf8)
            let offsets = (0...(file.count - needle.count)).filter { file[$0] == needle[0] && Array(file[$0..<$0 + needle.count]) == needle }
            #expect(!offsets.isEmpty)
            for offset in offsets { file[offset + 5] ^= 0x01 }
            try Data(file).write(to: URL(fileURLWithPath: path + "/data.mdb"))

            try await WorkflowRuntime.withLMDB(path: path, workflows: [Parked(stop: false)]) { runtime throws in
                #expect(try await runtime.handle(Parked.self, id: "healthy").result() == "fine")
                let error = await #expect(throws: ContinuumError.self) { try await runtime.handle(Parked.self, id: "damaged").result() }
                #expect(error?.code == .corruptedData)
                #expect(error?.message.contains("'damaged'") == true)
                #expect(try await runtime.status(of: "damaged")?.status == .suspended)
            }
        }
    }
}
