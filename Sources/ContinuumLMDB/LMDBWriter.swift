import CLMDB
import Continuum
import CoreMetrics
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one thread that writes: it takes every submission queued since its last commit,
/// applies them in one write transaction, commits (one fsync for the batch), and only then
/// calls their completions.
///
/// LMDB write transactions are bound to the thread that began them (committing on another
/// thread leaves the writer mutex held and deadlocks the next write), so none is ever begun
/// anywhere else, and none spans an `await`.
///
/// `@unchecked Sendable`: `queue` and `stopping` are only touched with `condition` locked;
/// `nextStream` is only touched by the writer thread (and by `init`, before it starts).
final class LMDBWriter: @unchecked Sendable {
    enum Operation {
        case create(CreateRequest, @Sendable (Result<CreateOutcome, ContinuumError>) -> Void)
        case append(AppendRequest, @Sendable (Result<Void, ContinuumError>) -> Void)
        /// Deletes a finished workflow: its id, record, status entry and every event.
        case purge(String, @Sendable (Result<Bool, ContinuumError>) -> Void)

        func fail(_ error: ContinuumError) {
            switch self {
            case .create(_, let completion): completion(.failure(error))
            case .append(_, let completion): completion(.failure(error))
            case .purge(_, let completion): completion(.failure(error))
            }
        }
    }

    /// Why applying an operation stopped.
    private enum Failure: Error {
        /// This operation is invalid; the others may commit without it.
        case operation(ContinuumError)
        /// The transaction cannot continue (map full, I/O error).
        case transaction(Int32, String)
    }

    private let environment: LMDBEnvironment
    private let configuration: LMDBStore.Configuration
    private let condition = NSCondition()
    private var queue: [Operation] = []
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)
    private var nextStream: UInt64 = 1
    /// How long each commit (with its fsyncs) took, and how many submissions it carried.
    private let commitDuration: CoreMetrics.Timer
    private let commitBatch: Recorder

    init(environment: LMDBEnvironment, configuration: LMDBStore.Configuration) throws(ContinuumError) {
        self.environment = environment
        self.configuration = configuration
        let factory = configuration.metricsFactory ?? MetricsSystem.factory
        commitDuration = CoreMetrics.Timer(label: "continuum_commit_duration_seconds", factory: factory)
        commitBatch = Recorder(label: "continuum_commit_batch_size", factory: factory)
        nextStream = try named {
            try environment.read { txn in
                var cursor: OpaquePointer?
                try check(mdb_cursor_open(txn, environment.workflows, &cursor), "opening a cursor", path: environment.path)
                defer { mdb_cursor_close(cursor) }
                var key = MDB_val()
                var value = MDB_val()
                let rc = mdb_cursor_get(cursor, &key, &value, MDB_LAST)
                if rc == MDB_NOTFOUND { return 1 }
                try check(rc, "finding the last stream", path: environment.path)
                return Key.readUInt64(key.buffer) + 1
            }
        }
        let thread = Thread { [self] in loop() }
        thread.name = "continuum-lmdb-writer"
        thread.start()
    }

    var mapSize: Int { environment.currentMapSize }

    func submit(_ operation: Operation) {
        condition.lock()
        guard !stopping else {
            condition.unlock()
            operation.fail(ContinuumError(.storeClosed, "The store at \(environment.path) is closed; nothing was written."))
            return
        }
        queue.append(operation)
        if queue.count == 1 { condition.signal() }
        condition.unlock()
    }

    /// Commits what was submitted, then stops the thread. Returns `false` if already stopped.
    func stop() -> Bool {
        condition.lock()
        guard !stopping else {
            condition.unlock()
            return false
        }
        stopping = true
        condition.signal()
        condition.unlock()
        finished.wait()
        return true
    }

    private func loop() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty {
                condition.unlock()
                break
            }
            let batch: [Operation]
            if queue.count <= configuration.maxBatch {
                batch = queue
                queue.removeAll(keepingCapacity: true)
            } else {
                batch = Array(queue.prefix(configuration.maxBatch))
                queue.removeFirst(configuration.maxBatch)
            }
            condition.unlock()
            commit(batch)
        }
        finished.signal()
    }

    // MARK: Committing a batch

    private func commit(_ batch: [Operation]) {
        var rejected: [Int: ContinuumError] = [:]
        while true {
            var txn: OpaquePointer?
            let begun = mdb_txn_begin(environment.env, nil, 0, &txn)
            guard begun == 0, let txn else {
                failAll(batch, lmdbError(begun, "beginning a write transaction", path: environment.path))
                return
            }
            var created: [Int: CreateOutcome] = [:]
            var purged: [Int: Bool] = [:]
            var stream = nextStream
            var failure: Failure?
            for (index, operation) in batch.enumerated() where rejected[index] == nil {
                do {
                    switch operation {
                    case .create(let request, _):
                        created[index] = try create(request, txn: txn, nextStream: &stream)
                    case .append(let request, _):
                        try append(request, txn: txn)
                    case .purge(let id, _):
                        purged[index] = try purge(id, txn: txn)
                    }
                } catch let error as Failure {
                    failure = error
                    if case .operation(let error) = error { rejected[index] = error }
                    break
                } catch {
                    failure = .transaction(-1, "\(error)")
                    break
                }
            }
            var rc: Int32 = 0
            var what = "committing"
            switch failure {
            case nil:
                let started = DispatchTime.now().uptimeNanoseconds
                rc = mdb_txn_commit(txn)
                if rc == 0 {
                    commitDuration.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
                    commitBatch.record(batch.count - rejected.count)
                }
            case .operation:
                mdb_txn_abort(txn)
                continue  // retry without the rejected operation
            case .transaction(let code, let context):
                mdb_txn_abort(txn)
                rc = code
                what = context
            }
            if rc == MDB_MAP_FULL, grow() { continue }
            if rc != 0 {
                let error = rc == -1 ? ContinuumError(.storageFailure, what) : commitError(rc, what, path: environment.path)
                configuration.logger.error(
                    "Commit failed: \(error.message)",
                    metadata: ["continuum.error.code": "\(error.code)", "continuum.commit.batch_size": "\(batch.count)"])
                failAll(batch, error)
                return
            }
            nextStream = stream
            for (index, operation) in batch.enumerated() {
                switch operation {
                case .create(_, let completion):
                    if let error = rejected[index] { completion(.failure(error)) } else { completion(.success(created[index]!)) }
                case .append(_, let completion):
                    if let error = rejected[index] { completion(.failure(error)) } else { completion(.success(())) }
                case .purge(_, let completion):
                    if let error = rejected[index] { completion(.failure(error)) } else { completion(.success(purged[index] ?? false)) }
                }
            }
            return
        }
    }

    private func failAll(_ batch: [Operation], _ error: ContinuumError) {
        for operation in batch { operation.fail(error) }
    }

    /// Doubles the map if the configured maximum allows; `false` when it is already at the maximum.
    private func grow() -> Bool {
        let current = environment.currentMapSize
        guard current < configuration.maxMapSize else { return false }
        let target = min(current * 2, configuration.maxMapSize)
        do {
            try environment.growMap(to: target)
            configuration.logger.info("Grew the LMDB map", metadata: ["continuum.lmdb.map_size": "\(target)"])
            return true
        } catch {
            configuration.logger.error(
                "Could not grow the LMDB map: \(error)",
                metadata: ["continuum.lmdb.path": "\(environment.path)", "continuum.lmdb.map_size": "\(current)"])
            return false
        }
    }

    private func put(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ key: [UInt8], _ value: [UInt8], flags: Int32 = 0, _ what: @autoclosure () -> String) throws {
        let rc = withVal(key) { key in
            withVal(value) { value in mdb_put(txn, dbi, &key, &value, UInt32(flags)) }
        }
        if rc == MDB_KEYEXIST {
            throw Failure.operation(ContinuumError(.storageFailure, "\(what()): the key is already stored; two writers raced on one workflow."))
        }
        if rc != 0 { throw Failure.transaction(rc, what()) }
    }

    private func exists(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ key: [UInt8]) throws -> MDB_val? {
        try withVal(key) { key in
            var value = MDB_val()
            let rc = mdb_get(txn, dbi, &key, &value)
            if rc == MDB_NOTFOUND { return nil }
            if rc != 0 { throw Failure.transaction(rc, "reading") }
            return value
        }
    }

    private func create(_ request: CreateRequest, txn: OpaquePointer, nextStream: inout UInt64) throws -> CreateOutcome {
        let idKey = Array(request.id.utf8)
        if let found = try exists(txn, environment.ids, idKey) {
            let stream = Key.readUInt64(found.buffer)
            guard let record = try exists(txn, environment.workflows, Key.stream(stream)) else {
                throw Failure.operation(ContinuumError(.corruptedData, "Workflow '\(request.id)' has an id entry but no record in \(environment.path)."))
            }
            do {
                let summary = try BinaryCodec.decodeSummary(record.buffer, location: "\(environment.path) workflows/\(stream)")
                return .existing(StreamID(rawValue: stream), summary)
            } catch let error as ContinuumError {
                throw Failure.operation(error)
            }
        }
        let stream = nextStream
        nextStream += 1
        let summary = WorkflowSummary(
            id: request.id, type: request.type, status: .running, createdAt: request.started.timestamp, updatedAt: request.started.timestamp)
        try put(txn, environment.ids, idKey, Key.stream(stream), flags: MDB_NOOVERWRITE, "storing the id of '\(request.id)'")
        try put(txn, environment.workflows, Key.stream(stream), BinaryCodec.encode(summary), "storing the record of '\(request.id)'")
        try put(txn, environment.byStatus, Key.status(.running, stream), [], "indexing '\(request.id)'")
        try put(txn, environment.events, Key.event(stream, 0), BinaryCodec.encode(request.started), flags: MDB_NOOVERWRITE, "storing the start of '\(request.id)'")
        return .created(StreamID(rawValue: stream))
    }

    private func append(_ request: AppendRequest, txn: OpaquePointer) throws {
        let stream = request.stream.rawValue
        if let first = request.events.first, first.sequence > 0,
            try exists(txn, environment.events, Key.event(stream, first.sequence - 1)) == nil
        {
            throw Failure.operation(
                ContinuumError(
                    .storageFailure,
                    "Cannot append event \(first.sequence) to workflow '\(request.id)': event \(first.sequence - 1) is not stored.",
                    workflowID: request.id))
        }
        for event in request.events {
            try put(
                txn, environment.events, Key.event(stream, event.sequence), BinaryCodec.encode(event), flags: MDB_NOOVERWRITE,
                "appending event \(event.sequence) to '\(request.id)'")
        }
        for change in request.timers {
            switch change {
            case .add(let due):
                try put(txn, environment.timers, Key.timer(due, stream), BinaryCodec.seal { $0.write(string: request.id) }, "indexing a timer of '\(request.id)'")
            case .remove(let due):
                try delete(txn, environment.timers, Key.timer(due, stream), "removing a timer of '\(request.id)'")
            }
        }
        guard request.status != nil || request.parked != nil else { return }
        guard let record = try exists(txn, environment.workflows, Key.stream(stream)) else {
            throw Failure.operation(ContinuumError(.unknownWorkflow, "Workflow '\(request.id)' has no record.", workflowID: request.id))
        }
        var summary: WorkflowSummary
        do {
            summary = try BinaryCodec.decodeSummary(record.buffer, location: "\(environment.path) workflows/\(stream)")
        } catch let error as ContinuumError {
            throw Failure.operation(error)
        }
        // A workflow is indexed once: under its status, or as parked while running.
        try delete(txn, environment.byStatus, Key.status(summary.status, stream), "re-indexing '\(request.id)'")
        try delete(txn, environment.byStatus, Key.status(summary.status, stream, parked: true), "re-indexing '\(request.id)'")
        if let status = request.status {
            summary.status = status
            summary.updatedAt = request.events.last?.timestamp ?? summary.updatedAt
        }
        let parked = summary.status == .running && request.parked == true
        try put(txn, environment.byStatus, Key.status(summary.status, stream, parked: parked), [], "indexing '\(request.id)'")
        if request.status != nil {
            try put(txn, environment.workflows, Key.stream(stream), BinaryCodec.encode(summary), "updating the record of '\(request.id)'")
        }
    }

    /// Deletes a finished workflow; `false` when there is no such workflow. A running one is refused.
    private func purge(_ id: String, txn: OpaquePointer) throws -> Bool {
        let idKey = Array(id.utf8)
        guard let found = try exists(txn, environment.ids, idKey) else { return false }
        let stream = Key.readUInt64(found.buffer)
        guard let record = try exists(txn, environment.workflows, Key.stream(stream)) else { return false }
        let summary: WorkflowSummary
        do {
            summary = try BinaryCodec.decodeSummary(record.buffer, location: "\(environment.path) workflows/\(stream)")
        } catch let error as ContinuumError {
            throw Failure.operation(error)
        }
        guard summary.status.isFinished else {
            throw Failure.operation(
                ContinuumError(.invalidArgument, "Workflow '\(id)' is \(summary.status); only finished workflows are deleted.", workflowID: id))
        }
        try delete(txn, environment.ids, idKey, "deleting the id of '\(id)'")
        try delete(txn, environment.workflows, Key.stream(stream), "deleting the record of '\(id)'")
        try delete(txn, environment.byStatus, Key.status(summary.status, stream), "deleting the index entry of '\(id)'")
        // Every event: keys are (stream, sequence), so they sit together from sequence 0.
        var keys: [[UInt8]] = []
        var cursor: OpaquePointer?
        let opened = mdb_cursor_open(txn, environment.events, &cursor)
        guard opened == 0 else { throw Failure.transaction(opened, "opening a cursor to delete '\(id)'") }
        try withVal(Key.event(stream, 0)) { key in
            var value = MDB_val()
            var rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE)
            while rc == 0, key.mv_size == 12, Key.readUInt64(key.buffer) == stream {
                keys.append(Array(key.buffer))
                rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
            }
            mdb_cursor_close(cursor)
            if rc != 0 && rc != MDB_NOTFOUND { throw Failure.transaction(rc, "finding the events of '\(id)'") }
        }
        for key in keys { try delete(txn, environment.events, key, "deleting an event of '\(id)'") }
        return true
    }

    private func delete(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ key: [UInt8], _ what: @autoclosure () -> String) throws {
        let rc = withVal(key) { key in mdb_del(txn, dbi, &key, nil) }
        if rc != 0 && rc != MDB_NOTFOUND { throw Failure.transaction(rc, what()) }
    }
}
