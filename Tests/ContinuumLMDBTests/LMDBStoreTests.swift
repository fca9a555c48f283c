import Continuum
import ContinuumLMDB
import ContinuumTesting
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

private func create(_ store: LMDBStore, _ id: String, type: String = "t", input: [UInt8] = []) async throws -> StreamID {
    switch try await store.create(CreateRequest(id: id, type: type, started: startEvent(type, input: input))) {
    case .created(let stream): return stream
    case .existing(let stream, _): return stream
    }
}

@Suite("LMDB store")
struct LMDBStoreTests {
    @Test("create is idempotent per id and numbers streams in creation order")
    func createIdempotent() async throws {
        try await withTemporaryDirectory { path in
            let store = try LMDBStore(path: path)
            defer { store.close() }
            let first = try await store.create(CreateRequest(id: "a", type: "t", started: startEvent()))
            let again = try await store.create(CreateRequest(id: "a", type: "other", started: startEvent("other")))
            let second = try await store.create(CreateRequest(id: "b", type: "t", started: startEvent()))
            guard case .created(let a) = first, case .existing(let sameA, let summary) = again, case .created(let b) = second else {
                Issue.record("unexpected outcomes \(first) \(again) \(second)")
                return
            }
            #expect(a == sameA)
            #expect(summary.type == "t", "the existing record is returned unchanged")
            #expect(b.rawValue > a.rawValue)
            #expect(try store.load(id: "a")?.events.count == 1)
        }
    }

    @Test("appends come back in order, survive reopening, and move the workflow between status lists")
    func appendAndReload() async throws {
        try await withTemporaryDirectory { path in
            do {
                let store = try LMDBStore(path: path)
                defer { store.close() }
                let stream = try await create(store, "w", input: [9])
                try await store.append(AppendRequest(stream: stream, id: "w", events: [stepEvent(1, "a"), stepEvent(2, "b")]))
                try await store.append(
                    AppendRequest(
                        stream: stream, id: "w",
                        events: [HistoryEvent(sequence: 3, timestamp: 3, kind: .workflowCompleted(output: [4]))], status: .completed))
                _ = try await create(store, "still-running")
            }
            let store = try LMDBStore(path: path)
            defer { store.close() }
            let loaded = try #require(try store.load(id: "w"))
            #expect(loaded.events.map(\.sequence) == [0, 1, 2, 3])
            #expect(loaded.events[0].kind == .workflowStarted(type: "t", input: [9]))
            #expect(loaded.summary.status == .completed)
            #expect(try store.list(status: .completed, after: nil, limit: 10).map(\.1.id) == ["w"])
            #expect(try store.list(status: .running, after: nil, limit: 10).map(\.1.id) == ["still-running"])
            #expect(try store.list(status: nil, after: nil, limit: 10).map(\.1.id) == ["w", "still-running"])
            #expect(try store.load(id: "missing") == nil)
            #expect(try store.summary(id: "missing") == nil)
        }
    }

    @Test("listing pages through workflows in creation order")
    func paging() async throws {
        try await withTemporaryDirectory { path in
            let store = try LMDBStore(path: path)
            defer { store.close() }
            for index in 0..<25 { _ = try await create(store, "w\(index)") }
            var seen: [String] = []
            var after: StreamID?
            while true {
                let page = try store.list(status: .running, after: after, limit: 10)
                seen += page.map(\.1.id)
                guard page.count == 10 else { break }
                after = page.last?.0
            }
            #expect(seen == (0..<25).map { "w\($0)" })
        }
    }

    @Test("an append that does not follow the stored stream is refused alone; the rest of its batch commits")
    func gapRefused() async throws {
        try await withTemporaryDirectory { path in
            let store = try LMDBStore(path: path)
            defer { store.close() }
            let stream = try await create(store, "w")
            let other = try await create(store, "v")
            async let bad = errorOf { try await store.append(AppendRequest(stream: stream, id: "w", events: [stepEvent(5, "late")])) }
            async let good = errorOf { try await store.append(AppendRequest(stream: other, id: "v", events: [stepEvent(1, "a")])) }
            let (badError, goodError) = await (bad, good)
            #expect((badError as? ContinuumError)?.message.contains("event 4 is not stored") == true)
            #expect(goodError == nil)
            #expect(try store.load(id: "w")?.events.count == 1)
            #expect(try store.load(id: "v")?.events.count == 2)
            // Writing the same sequence twice is refused too.
            let duplicate = await #expect(throws: ContinuumError.self) {
                try await store.append(AppendRequest(stream: other, id: "v", events: [stepEvent(1, "again")]))
            }
            #expect(duplicate?.message.contains("already stored") == true)
        }
    }

    @Test("a thousand concurrent appends are all durable")
    func groupCommit() async throws {
        try await withTemporaryDirectory { path in
            do {
                let store = try LMDBStore(path: path)
                defer { store.close() }
                let streams = try await withThrowingTaskGroup(of: (Int, StreamID).self) { group in
                    for index in 0..<1000 { group.addTask { (index, try await create(store, "w\(index)")) } }
                    return try await group.reduce(into: [Int: StreamID]()) { $0[$1.0] = $1.1 }
                }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (index, stream) in streams {
                        group.addTask { try await store.append(AppendRequest(stream: stream, id: "w\(index)", events: [stepEvent(1, "s")])) }
                    }
                    try await group.waitForAll()
                }
            }
            let store = try LMDBStore(path: path)
            defer { store.close() }
            for index in 0..<1000 { #expect(try store.load(id: "w\(index)")?.events.count == 2) }
        }
    }

    @Test("the due-time index lists timers in due order and follows adds and removes")
    func timerIndex() async throws {
        try await withTemporaryDirectory { path in
            let store = try LMDBStore(path: path)
            defer { store.close() }
            let a = try await create(store, "a")
            let b = try await create(store, "b")
            try await store.append(AppendRequest(stream: a, id: "a", events: [], timers: [.add(300), .add(-5)]))
            try await store.append(AppendRequest(stream: b, id: "b", events: [], timers: [.add(100), .add(300)]))
            let all = try store.timers(after: nil, limit: 10)
            #expect(all.map(\.due) == [-5, 100, 300, 300])
            #expect(all.map(\.id) == ["a", "b", "a", "b"])
            #expect(try store.timers(after: all[1], limit: 10).map(\.id) == ["a", "b"])
            try await store.append(AppendRequest(stream: a, id: "a", events: [], timers: [.remove(300), .remove(-5)]))
            #expect(try store.timers(after: nil, limit: 10).map(\.id) == ["b", "b"])
        }
    }

    @Test("parked workflows count as running but are not listed as active")
    func parking() async throws {
        try await withTemporaryDirectory { path in
            let store = try LMDBStore(path: path)
            defer { store.close() }
            let a = try await create(store, "a")
            _ = try await create(store, "b")
            try await store.append(AppendRequest(stream: a, id: "a", events: [], parked: true))
            #expect(try store.listActive(after: nil, limit: 10).map(\.1.id) == ["b"])
            #expect(try store.list(status: .running, after: nil, limit: 10).map(\.1.id) == ["a", "b"])
            try await store.append(AppendRequest(stream: a, id: "a", events: [], parked: false))
            #expect(try store.listActive(after: nil, limit: 10).map(\.1.id) == ["a", "b"])
            try await store.append(AppendRequest(stream: a, id: "a", events: [], parked: true))
            try await store.append(
                AppendRequest(
                    stream: a, id: "a", events: [HistoryEvent(sequence: 1, timestamp: 2, kind: .workflowCompleted(output: []))],
                    status: .completed))
            #expect(try store.list(status: .running, after: nil, limit: 10).map(\.1.id) == ["b"])
            #expect(try store.list(status: .completed, after: nil, limit: 10).map(\.1.id) == ["a"])
        }
    }

    @Test("a second store on the same directory is refused with storeLocked")
    func lockedDirectory() async throws {
        try await withTemporaryDirectory { path in
            let store = try LMDBStore(path: path)
            let error = #expect(throws: ContinuumError.self) { try LMDBStore(path: path) }
            #expect(error?.code == .storeLocked)
            #expect(error?.message.contains(path) == true)
            store.close()
            let reopened = try LMDBStore(path: path)
            reopened.close()
        }
    }

    @Test("writes after close fail with storeClosed")
    func closed() async throws {
        try await withTemporaryDirectory { path in
            let store = try LMDBStore(path: path)
            store.close()
            let error = await #expect(throws: ContinuumError.self) {
                _ = try await store.create(CreateRequest(id: "late", type: "t", started: startEvent()))
            }
            #expect(error?.code == .storeClosed)
        }
    }

    @Test("a full map grows; past the maximum writes fail with storageFull and nothing is acknowledged")
    func mapGrowthAndLimit() async throws {
        try await withTemporaryDirectory { path in
            var configuration = LMDBStore.Configuration()
            configuration.initialMapSize = 256 * 1024
            configuration.maxMapSize = 2 * 1024 * 1024
            let store = try LMDBStore(path: path, configuration: configuration)
            defer { store.close() }
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
            #expect(try store.list(status: nil, after: nil, limit: 10_000).count == acknowledged)
            #expect(try store.load(id: "w\(acknowledged)") == nil)
            #expect(try store.load(id: "w0")?.events.first?.kind == .workflowStarted(type: "t", input: payload))
        }
    }

    @Test("a damaged value is reported as corruptedData with its location, and other workflows still load")
    func corruptedValue() async throws {
        try await withTemporaryDirectory { path in
            let marker = Array("CORRUPT-ME-MARKER-0123456789".utf8)
            do {
                let store = try LMDBStore(path: path)
                defer { store.close() }
                _ = try await create(store, "damaged", input: marker)
                _ = try await create(store, "healthy", input: [1, 2, 3])
            }
            var file = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path + "/data.mdb")))
            let offsets = (0...(file.count - marker.count)).filter { file[$0] == marker[0] && Array(file[$0..<$0 + marker.count]) == marker }
            #expect(!offsets.isEmpty)
            for offset in offsets { file[offset + 3] ^= 0x20 }
            try Data(file).write(to: URL(fileURLWithPath: path + "/data.mdb"))

            let store = try LMDBStore(path: path)
            defer { store.close() }
            let error = #expect(throws: ContinuumError.self) { try store.load(id: "damaged") }
            #expect(error?.code == .corruptedData)
            #expect(error?.message.contains("'damaged' event 0") == true)
            #expect(try store.load(id: "healthy")?.events.count == 1)
        }
    }

    @Test("verify reads every value and names the damaged workflow; the CLI exits 1 and says which")
    func verifyFindsDamage() async throws {
        try await withTemporaryDirectory { path in
            let marker = Array("VERIFY-ME-MARKER-0123456789".utf8)
            do {
                let store = try LMDBStore(path: path)
                defer { store.close() }
                _ = try await create(store, "damaged", input: marker)
                for index in 0..<5 { _ = try await create(store, "healthy-\(index)", input: [UInt8(index)]) }
                let clean = try store.verify()
                #expect(clean.isClean && clean.checked["events"] == 6 && clean.checked["workflows"] == 6)
            }
            var file = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path + "/data.mdb")))
            let offsets = (0...(file.count - marker.count)).filter { file[$0] == marker[0] && Array(file[$0..<$0 + marker.count]) == marker }
            for offset in offsets { file[offset + 5] ^= 0x01 }
            try Data(file).write(to: URL(fileURLWithPath: path + "/data.mdb"))
            do {
                let store = try LMDBStore(path: path)
                defer { store.close() }
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
            do {
                let store = try LMDBStore(path: path)
                defer { store.close() }
                for index in 0..<300 { _ = try await create(store, "w\(index)", input: Array(repeating: 7, count: 2000)) }
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
                try await eventually { try runtime.history(of: "damaged").count == 2 && runtime.history(of: "healthy").count == 2 }
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
                #expect(try runtime.status(of: "damaged")?.status == .suspended)
            }
        }
    }
}
