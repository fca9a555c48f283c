import CLMDB
public import Continuum
public import CoreMetrics
import Foundation
public import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Closes a file descriptor (a free function: inside `LMDBStore`, `close` is the store's own method).
func closeDescriptor(_ fd: Int32) {
    _ = close(fd)
}

/// The environment and the directory's lock file, released once however many ways the store
/// is closed (a descriptor closed twice could close another store's file that reused its number).
final class StoreFiles: Sendable {
    private let environment: LMDBEnvironment
    private let lockFile: Int32
    private let released = Mutex(false)

    init(environment: LMDBEnvironment, lockFile: Int32) {
        self.environment = environment
        self.lockFile = lockFile
    }

    func release() {
        guard released.withLock({ released in
            defer { released = true }
            return !released
        }) else { return }
        environment.close()
        if lockFile >= 0 { closeDescriptor(lockFile) }
    }
}

/// The embedded event store: every workflow's history in an LMDB environment in one directory.
///
/// ```swift
/// let store = try LMDBStore(path: "./state")
/// let runtime = WorkflowRuntime(store: store, workflows: [OnboardUser()])
/// ```
///
/// - Writes go to one dedicated writer thread that owns every write transaction. Whatever
///   was submitted while the previous commit ran is committed together, with one fsync
///   (group commit), and every submission is acknowledged only after its commit returned.
/// - The environment is opened with durable flags only (never `MDB_NOSYNC`,
///   `MDB_NOMETASYNC` or `MDB_WRITEMAP`) and `MDB_NOTLS`.
/// - When the map fills, it doubles up to ``Configuration/maxMapSize``; past that, writes fail
///   with ``ContinuumError/Code/storageFull``.
/// - Every value carries a format byte and a CRC-32C; a damaged value is reported as
///   ``ContinuumError/Code/corruptedData`` with its location, never returned.
/// - A second process (or a second store in this process) on the same directory is refused
///   with ``ContinuumError/Code/storeLocked``.
/// - Streams are numbered in creation order and events are keyed by (stream, sequence), so
///   the workflows running at one time write to neighbouring pages.
/// - One process owns the store, so claims (``Claim``) need no lease: the writer thread keeps
///   them in memory and checks every append's fencing token in the transaction that writes it.
/// - Reads are read transactions on the calling thread: LMDB maps its file, so a read is a
///   memory access (a point read ≈ 3 µs, a 1,000-event history ≈ 75 µs), shorter than a hop to
///   another thread would be.
public final class LMDBStore: EventStore {
    /// The name of the store's writer thread (the one thread that writes, commits and syncs), as
    /// `top -H`, `ps -L` and `perf` show it: its CPU is the store's own.
    public static let writerThreadName = "continuum-lmdb"

    /// How the store is opened.
    public struct Configuration: Sendable {
        /// The map size to open with, in bytes (address space, not disk). Default 1 GiB.
        public var initialMapSize: Int = 1 << 30
        /// The largest the map may grow to, in bytes. Default 1 TiB.
        public var maxMapSize: Int = 1 << 40
        /// The most read transactions open at once. Default 512.
        public var maxReaders: UInt32 = 512
        /// The most submissions committed in one transaction. Default 8,192.
        public var maxBatch: Int = 8192
        /// Opens the store read-only, beside a process that writes it (or on a copy): no lock
        /// on the directory, no writer; every write fails with ``ContinuumError/Code/readOnly``.
        /// For `continuum check` and other inspection while a server runs.
        public var readOnly = false
        /// Where the store logs (map growth, failed commits); `nil` uses `Logger.current` of the
        /// task that opens the store.
        public var logger: Logger?
        /// Where the store reports `continuum_commit_duration_seconds` (each commit with its
        /// fsyncs) and `continuum_commit_batch_size` (submissions per commit); `nil` uses the
        /// process's `MetricsSystem` factory.
        public var metricsFactory: (any MetricsFactory)?

        /// The defaults.
        public init() {}
    }

    /// The directory holding the environment.
    public let path: String
    /// An LMDB key holds at most 511 bytes, and a workflow's id is one.
    public let limits = StoreLimits(maxWorkflowIDBytes: 511, maxNameBytes: 256, maxPayloadBytes: 256 << 20, leaseDuration: nil)
    /// How many reader slots left by processes that died mid-read opening cleared.
    public var staleReadersCleared: Int { environment.staleReadersCleared }
    let environment: LMDBEnvironment
    let writer: LMDBWriter
    private let files: StoreFiles

    /// Opens (creating if needed) the store in the directory at `path`.
    ///
    /// - Throws: ``ContinuumError/Code/storeLocked`` when another process has the directory
    ///   open; ``ContinuumError/Code/corruptedData`` when the directory holds a damaged or
    ///   foreign environment; ``ContinuumError/Code/storageFailure`` for other failures.
    public init(path: String, configuration: Configuration = .init()) throws(ContinuumError) {
        var configuration = configuration
        configuration.logger = configuration.logger ?? Logger.current
        self.path = path
        if configuration.readOnly {
            guard FileManager.default.fileExists(atPath: path + "/data.mdb") else {
                throw ContinuumError(.invalidArgument, "There is no store at \(path) to open read-only.")
            }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            } catch {
                throw ContinuumError(.storageFailure, "Cannot create the store directory \(path): \(error).")
            }
        }
        // Read-only opens beside the writer: LMDB's reader table lets them share the files.
        let lockFile = configuration.readOnly ? -1 : try Self.lock(directory: path)
        do {
            environment = try LMDBEnvironment(
                path: path, mapSize: configuration.initialMapSize, maxReaders: configuration.maxReaders, readOnly: configuration.readOnly)
        } catch {
            if lockFile >= 0 { closeDescriptor(lockFile) }
            throw error
        }
        files = StoreFiles(environment: environment, lockFile: lockFile)
        do {
            writer = try LMDBWriter(environment: environment, configuration: configuration)
        } catch {
            files.release()
            throw error
        }
        let logger = configuration.logger ?? Logger.current
        if environment.staleReadersCleared > 0 {
            logger.notice(
                "Cleared reader slots left by dead processes",
                metadata: ["continuum.lmdb.path": "\(path)", "continuum.lmdb.stale_readers": "\(environment.staleReadersCleared)"])
        }
        logger.debug(
            "Opened the LMDB store",
            metadata: ["continuum.lmdb.path": "\(path)", "continuum.lmdb.map_size": "\(environment.currentMapSize)"])
    }

    deinit {
        // Nobody can read or write any more: let the writer finish, then release the files.
        let files = self.files
        writer.stop { files.release() }
    }

    private static func lock(directory: String) throws(ContinuumError) -> Int32 {
        let lockPath = directory + "/continuum.lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw ContinuumError(.storageFailure, "Cannot open \(lockPath): \(String(cString: strerror(errno))).")
        }
        // A child process being spawned holds a copy of every descriptor until it execs (the
        // lock file is close-on-exec), so a lock just released can look held for a moment: try
        // again for up to a second before calling the directory taken.
        var attempts = 0
        while flock(fd, LOCK_EX | LOCK_NB) != 0, errno == EWOULDBLOCK, attempts < 20 {
            attempts += 1
            usleep(50_000)
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 32)
            let count = pread(fd, &buffer, buffer.count, 0)
            let owner = count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            closeDescriptor(fd)
            throw ContinuumError(
                .storeLocked,
                "The store at \(directory) is in use by another process (pid \(owner)). "
                    + "Run one runtime per data directory; stop the other process or use another directory.")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.count, 0)
        return fd
    }

    /// Stops taking writes, commits what was submitted, and closes the environment.
    /// Later writes and reads fail with ``ContinuumError/Code/storeClosed``. Safe to call more than once.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            writer.stop { continuation.resume() }
        }
        files.release()
    }

    /// The map's current size in bytes.
    public var mapSize: Int { writer.mapSize }

    // MARK: Writes

    // The writer calls every submission's completion exactly once: after its batch commits, when
    // the batch fails, or at once when the store is closed. So these two, on every step's path,
    // use unchecked continuations (a checked one allocates a canary per call).

    public nonisolated(nonsending) func create(_ request: CreateRequest) async throws(ContinuumError) -> CreateOutcome {
        // The submission happens in the continuation's closure, before the first suspension.
        try await withUnsafeContinuation { continuation in
            writer.submit(.create(request, continuation))
        }.get()
    }

    public nonisolated(nonsending) func append(_ request: consuming AppendRequest) async throws(ContinuumError) {
        // Submitted in a synchronous call, so that every appending task's frame holds little.
        // The request moves into the writer's queue (the closure cannot consume a parameter it
        // captures, so it takes it out of an optional): copied, it retained each reference.
        var request = Optional(request)
        try await withUnsafeContinuation { submitAppend(&request, $0) }.get()
    }

    /// Queues an append for the writer (``SubmittingEventStore``): the runtime's appends come
    /// through here, from inside each workflow's actor.
    @inline(never)
    package func submitAppend(_ request: inout AppendRequest?, _ continuation: UnsafeContinuation<Result<Void, ContinuumError>, Never>) {
        writer.submit(.append(request.take()!, continuation))
    }

    public func claim(_ id: String, owner: OwnerID) async throws(ContinuumError) -> Claim? {
        try await withCheckedContinuation { continuation in
            writer.submit(.claim(id, owner) { continuation.resume(returning: $0) })
        }.get()
    }

    public func renew(_ claims: [Claim]) async throws(ContinuumError) -> [Claim] {
        try await withCheckedContinuation { continuation in
            writer.submit(.renew(claims) { continuation.resume(returning: $0) })
        }.get()
    }

    // MARK: Reads

    public func load(id: String) async throws(ContinuumError) -> StoredWorkflow? {
        try named {
            try environment.read { txn in
                guard let stream = try streamNumber(id: id, txn: txn) else { return nil }
                let summary = try summary(stream: stream, txn: txn)
                return StoredWorkflow(stream: StreamID(rawValue: stream), summary: summary, events: try events(stream: stream, id: id, txn: txn))
            }
        }
    }

    public func loadRecent(id: String) async throws(ContinuumError) -> StoredWorkflow? {
        try named {
            try environment.read { txn in
                guard let stream = try streamNumber(id: id, txn: txn) else { return nil }
                let summary = try summary(stream: stream, txn: txn)
                // A damaged snapshot header reads as none: the runtime then folds every event.
                let snapshot = try snapshot(stream: stream, txn: txn)
                return StoredWorkflow(
                    stream: StreamID(rawValue: stream), summary: summary,
                    events: try events(stream: stream, id: id, from: snapshot?.through ?? 0, txn: txn), snapshot: snapshot)
            }
        }
    }

    public func summary(id: String) async throws(ContinuumError) -> WorkflowSummary? {
        try named {
            try environment.read { txn in
                guard let stream = try streamNumber(id: id, txn: txn) else { return nil }
                return try summary(stream: stream, txn: txn)
            }
        }
    }

    public func list(status: WorkflowStatus?, after: StreamID?, limit: Int) async throws(ContinuumError) -> [ListedWorkflow] {
        try named {
            try environment.read { txn in
                guard let status else { return try scanWorkflows(after: after, limit: limit, txn: txn) }
                var found = try scanIndex(status.storedByte, after: after, limit: limit, txn: txn)
                if status == .running {
                    // Parked workflows are running too: merge both ranges in creation order.
                    found += try scanIndex(Key.parkedStatus, after: after, limit: limit, txn: txn)
                    found.sort { $0.stream < $1.stream }
                    found = Array(found.prefix(limit))
                }
                return found
            }
        }
    }

    /// Running workflows that are not parked. One process owns the store, so no claim made by
    /// an earlier process is still live: every one of them is recovered.
    public func runnable(after: StreamID?, limit: Int) async throws(ContinuumError) -> [ListedWorkflow] {
        try named { try environment.read { txn in try scanIndex(WorkflowStatus.running.storedByte, after: after, limit: limit, txn: txn) } }
    }

    public func counts() async throws(ContinuumError) -> StatusCounts {
        try named { try environment.read { txn in try StatusIndexCounts.read(environment, txn: txn).statusCounts } }
    }

    public func timers(after: DueTimer?, limit: Int) async throws(ContinuumError) -> [DueTimer] {
        try named {
            try environment.read { txn in
                var cursor: OpaquePointer?
                try check(mdb_cursor_open(txn, environment.timers, &cursor), "opening a cursor", path: path)
                defer { mdb_cursor_close(cursor) }
                var result: [DueTimer] = []
                let start = after.map { Key.timer($0.due, $0.stream.rawValue) } ?? Key.timer(.min, 0)
                try withVal(start) { key in
                    var value = MDB_val()
                    var rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE)
                    while rc == 0, result.count < limit {
                        let keyBytes = key.buffer
                        guard keyBytes.count == 16 else { break }
                        let timer = DueTimer(
                            due: Key.readDue(keyBytes), stream: StreamID(rawValue: Key.readUInt64(keyBytes, at: 8)),
                            id: try BinaryCodec.read(value.buffer, location: "\(path) timers") { try $0.readString() })
                        if after.map({ $0 < timer }) ?? true { result.append(timer) }
                        rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
                    }
                    if rc != 0 && rc != MDB_NOTFOUND { try check(rc, "listing timers", path: path) }
                }
                return result
            }
        }
    }

    private func scanWorkflows(after: StreamID?, limit: Int, txn: OpaquePointer) throws -> [ListedWorkflow] {
        try scan(environment.workflows, from: Key.stream((after?.rawValue).map { $0 + 1 } ?? 0), limit: limit, txn: txn) { key, value in
            let stream = Key.readUInt64(key)
            return ListedWorkflow(
                stream: StreamID(rawValue: stream), summary: try BinaryCodec.decodeSummary(value, location: "\(path) workflows/\(stream)"))
        }
    }

    private func scanIndex(_ statusByte: UInt8, after: StreamID?, limit: Int, txn: OpaquePointer) throws -> [ListedWorkflow] {
        let start = Key.status(byte: statusByte, (after?.rawValue).map { $0 + 1 } ?? 0)
        return try scan(environment.byStatus, from: start, limit: limit, txn: txn) { key, _ in
            guard key.count == 9, key[0] == statusByte else { return nil }
            let stream = Key.readUInt64(key, at: 1)
            return ListedWorkflow(stream: StreamID(rawValue: stream), summary: try summary(stream: stream, txn: txn))
        }
    }

    /// Walks `dbi` from `start`, collecting what `row` returns until it returns `nil` or `limit` rows.
    private func scan<Row>(
        _ dbi: MDB_dbi, from start: some LMDBBytes, limit: Int, txn: OpaquePointer,
        _ row: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Row?
    ) throws -> [Row] {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, dbi, &cursor), "opening a cursor", path: path)
        defer { mdb_cursor_close(cursor) }
        var rows: [Row] = []
        try withVal(start) { key in
            var value = MDB_val()
            var rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE)
            while rc == 0, rows.count < limit, let next = try row(key.buffer, value.buffer) {
                rows.append(next)
                rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
            }
            if rc != 0 && rc != MDB_NOTFOUND { try check(rc, "scanning", path: path) }
        }
        return rows
    }

    private func streamNumber(id: String, txn: OpaquePointer) throws -> UInt64? {
        try withVal(id) { key in
            var value = MDB_val()
            let rc = mdb_get(txn, environment.ids, &key, &value)
            if rc == MDB_NOTFOUND { return nil }
            try check(rc, "looking up workflow '\(id)'", path: path)
            guard value.mv_size == 8 else {
                throw ContinuumError(.corruptedData, "The id index entry of workflow '\(id)' in \(path) is \(value.mv_size) bytes, not 8.")
            }
            return Key.readUInt64(value.buffer)
        }
    }

    private func summary(stream: UInt64, txn: OpaquePointer) throws -> WorkflowSummary {
        try withVal(Key.stream(stream)) { key in
            var value = MDB_val()
            let rc = mdb_get(txn, environment.workflows, &key, &value)
            if rc == MDB_NOTFOUND {
                throw ContinuumError(.corruptedData, "Workflow stream \(stream) in \(path) has no summary record.")
            }
            try check(rc, "reading workflow stream \(stream)", path: path)
            return try BinaryCodec.decodeSummary(value.buffer, location: "\(path) workflows/\(stream)")
        }
    }

    private func snapshot(stream: UInt64, txn: OpaquePointer) throws -> WorkflowSnapshot? {
        guard let snapshots = environment.snapshots else { return nil }
        return try withVal(Key.stream(stream)) { key in
            var value = MDB_val()
            let rc = mdb_get(txn, snapshots, &key, &value)
            if rc == MDB_NOTFOUND { return nil }
            try check(rc, "reading the snapshot of stream \(stream)", path: path)
            return Key.readSnapshot(value.buffer)
        }
    }

    /// The events of `stream` from sequence `first` on, in order.
    private func events(stream: UInt64, id: String, from first: UInt32 = 0, txn: OpaquePointer) throws -> [HistoryEvent] {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, environment.events, &cursor), "opening a cursor", path: path)
        defer { mdb_cursor_close(cursor) }
        var events: [HistoryEvent] = []
        try withVal(Key.event(stream, first)) { key in
            var value = MDB_val()
            var rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE)
            while rc == 0 {
                let keyBytes = key.buffer
                guard keyBytes.count == 12, Key.readUInt64(keyBytes) == stream else { break }
                let sequence = Key.readUInt32(keyBytes, at: 8)
                events.append(try BinaryCodec.decodeEvent(value.buffer, sequence: sequence, location: "workflow '\(id)' event \(sequence) in \(path)"))
                rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
            }
            if rc != 0 && rc != MDB_NOTFOUND { try check(rc, "reading the history of '\(id)'", path: path) }
        }
        return events
    }
}

extension LMDBStore: SubmittingEventStore {}

extension LMDBStore {
    /// Opens the store at `path`, runs `body` with it, then closes it, also when `body` throws.
    ///
    /// ```swift
    /// let report = try await LMDBStore.withStore(path: "./state") { store in try store.verify() }
    /// ```
    public static func withStore<R>(
        path: String, configuration: Configuration = .init(), isolation: isolated (any Actor)? = #isolation,
        _ body: (LMDBStore) async throws -> R
    ) async throws -> R {
        try await LMDBStore(path: path, configuration: configuration).closing(body)
    }
}
