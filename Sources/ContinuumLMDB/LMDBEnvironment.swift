import CLMDB
import Continuum

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The LMDB environment and its named databases, with the lock that lets the writer thread
/// grow the map while no read transaction is open.
///
/// `@unchecked Sendable`: the environment handle may be used from any thread for read
/// transactions because it is opened with `MDB_NOTLS`; write transactions are begun and
/// committed only by ``LMDBWriter``'s one thread; `mapLock` makes `mdb_env_set_mapsize`
/// (writer, exclusive) and read transactions (shared) exclusive of each other, as LMDB requires.
final class LMDBEnvironment: @unchecked Sendable {
    let env: OpaquePointer
    let path: String
    /// How many reader slots of dead processes opening cleared.
    private(set) var staleReadersCleared = 0
    /// workflow id (UTF-8) → stream number (8 bytes, big-endian)
    let ids: MDB_dbi
    /// stream number → workflow summary record
    let workflows: MDB_dbi
    /// [status: 1 byte][stream number] → empty: the workflows with each status, in creation order
    let byStatus: MDB_dbi
    /// [stream number][sequence: 4 bytes, big-endian] → event
    let events: MDB_dbi
    /// [due: 8 bytes, order-preserving][stream number] → workflow id (sealed): the due-time index
    let timers: MDB_dbi
    /// Store-wide records: `counts` → how many workflows each status-index byte holds (`nil` in
    /// a store from before it existed, opened read-only)
    let meta: MDB_dbi?
    /// stream number → [through: 4 bytes, big-endian][snapshot]: the latest snapshot of each
    /// workflow's folded state (`nil` in a store from before snapshots, opened read-only)
    let snapshots: MDB_dbi?
    /// Whether the environment was opened read-only (`MDB_RDONLY`).
    let readOnly: Bool
    /// Held shared by every read transaction and exclusively to grow the map or close: LMDB
    /// allows neither while a transaction is open in the process.
    private let mapLock: UnsafeMutablePointer<pthread_rwlock_t>
    private(set) var mapSize: Int
    /// Whether ``close()`` ran; reads then fail with ``ContinuumError/Code/storeClosed``.
    private var closed = false

    init(path: String, mapSize: Int, maxReaders: UInt32, readOnly: Bool = false) throws(ContinuumError) {
        self.readOnly = readOnly
        var env: OpaquePointer?
        try check(mdb_env_create(&env), "creating the environment", path: path)
        guard let env else { throw ContinuumError(.storageFailure, "mdb_env_create returned no environment") }
        self.env = env
        self.path = path
        self.mapSize = mapSize
        mapLock = .allocate(capacity: 1)
        pthread_rwlock_init(mapLock, nil)
        do {
            try check(mdb_env_set_maxdbs(env, 8), "setting maxdbs", path: path)
            try check(mdb_env_set_maxreaders(env, maxReaders), "setting maxreaders", path: path)
            try check(mdb_env_set_mapsize(env, mapSize), "setting the map size", path: path)
            // Durable flags only: no MDB_NOSYNC, MDB_NOMETASYNC or MDB_WRITEMAP.
            if !readOnly { try Self.allocateLockFile(path + "/lock.mdb", maxReaders: maxReaders) }
            try check(mdb_env_open(env, path, UInt32(MDB_NOTLS | (readOnly ? MDB_RDONLY : 0)), 0o644), "opening", path: path)
            try Self.checkNotTruncated(env, dataPath: path + "/data.mdb")
            var dead: Int32 = 0
            mdb_reader_check(env, &dead)
            staleReadersCleared = Int(dead)
            var txn: OpaquePointer?
            try check(mdb_txn_begin(env, nil, UInt32(readOnly ? MDB_RDONLY : 0), &txn), "beginning the setup transaction", path: path)
            var handles: [MDB_dbi?] = []
            for name in ["ids", "workflows", "byStatus", "events", "timers", "meta", "snapshots"] {
                var dbi: MDB_dbi = 0
                let rc = mdb_dbi_open(txn, name, UInt32(readOnly ? 0 : MDB_CREATE), &dbi)
                if rc == MDB_NOTFOUND && readOnly && (name == "meta" || name == "snapshots") {
                    handles.append(nil)
                    continue
                }
                if rc != 0 {
                    mdb_txn_abort(txn)
                    try check(
                        rc, readOnly && rc == MDB_NOTFOUND ? "opening database \(name) (read-only: is this a Continuum store?)" : "opening database \(name)",
                        path: path)
                }
                handles.append(dbi)
            }
            try check(mdb_txn_commit(txn), "committing the setup transaction", path: path)
            (ids, workflows, byStatus, events, timers, meta, snapshots) = (
                handles[0]!, handles[1]!, handles[2]!, handles[3]!, handles[4]!, handles[5], handles[6]
            )
        } catch {
            mdb_env_close(env)
            pthread_rwlock_destroy(mapLock)
            mapLock.deallocate()
            throw error
        }
    }

    /// Gives the reader table's file its blocks before LMDB maps it. LMDB writes its header and
    /// reader slots through a shared mapping; on a full file system (a small tmpfs, say)
    /// touching a page that was never allocated would kill the process with SIGBUS instead of
    /// failing a call. LMDB keeps a lock file at least as large as it needs.
    private static func allocateLockFile(_ lockPath: String, maxReaders: UInt32) throws(ContinuumError) {
        #if os(Linux)
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }  // mdb_env_open reports it with its own error
        defer { closeDescriptor(fd) }
        // LMDB needs (maxReaders - 1) 64-byte slots after a header of a few cache lines.
        let size = off_t(maxReaders) * 64 + 4096
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size < size else { return }
        let rc = posix_fallocate(fd, 0, size)
        switch rc {
        case 0, EOPNOTSUPP, EINVAL, ENOSYS:
            return  // done, or a file system that cannot preallocate (then there is nothing to prevent)
        default:
            throw ContinuumError(
                rc == ENOSPC ? .storageFull : .storageFailure,
                "Cannot allocate LMDB's reader table \(lockPath) (\(String(cString: strerror(rc)))); free space on its file system.")
        }
        #endif
    }

    /// Refuses a data file shorter than its last committed page: reading a page past the end
    /// of a mapped file kills the process with SIGBUS, so a file cut short (a copy that did
    /// not finish, say) must be caught before any read.
    private static func checkNotTruncated(_ env: OpaquePointer, dataPath: String) throws(ContinuumError) {
        var info = MDB_envinfo()
        var stats = MDB_stat()
        guard mdb_env_info(env, &info) == 0, mdb_env_stat(env, &stats) == 0 else { return }
        var file = stat()
        guard stat(dataPath, &file) == 0 else { return }
        let needed = (Int64(info.me_last_pgno) + 1) * Int64(stats.ms_psize)
        guard Int64(file.st_size) >= needed else {
            throw ContinuumError(
                .corruptedData,
                "The LMDB data file \(dataPath) is \(file.st_size) bytes, but its last committed page ends at byte \(needed): "
                    + "the file was truncated (a copy that did not finish?). Restore the directory from a backup.")
        }
    }

    deinit {
        if !closed { mdb_env_close(env) }
        pthread_rwlock_destroy(mapLock)
        mapLock.deallocate()
    }

    /// Closes the environment once no read transaction is open (the lock lives as long as the
    /// object: a reader that comes later must still find it, to learn the store is closed).
    func close() {
        pthread_rwlock_wrlock(mapLock)
        defer { pthread_rwlock_unlock(mapLock) }
        guard !closed else { return }
        closed = true
        mdb_env_close(env)
    }

    /// Runs `body` inside a read transaction. The values it sees are valid only inside `body`.
    ///
    /// - Throws: ``ContinuumError/Code/storeClosed`` after ``close()``.
    func read<T>(_ body: (OpaquePointer) throws -> T) throws -> T {
        pthread_rwlock_rdlock(mapLock)
        defer { pthread_rwlock_unlock(mapLock) }
        guard !closed else { throw ContinuumError(.storeClosed, "The store at \(path) is closed.") }
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "beginning a read transaction", path: path)
        defer { mdb_txn_abort(txn) }
        return try body(txn!)
    }

    /// The map's current size in bytes.
    var currentMapSize: Int {
        pthread_rwlock_rdlock(mapLock)
        defer { pthread_rwlock_unlock(mapLock) }
        return mapSize
    }

    /// Grows the map to `newSize`. Called by the writer thread with no write transaction open.
    func growMap(to newSize: Int) throws(ContinuumError) {
        pthread_rwlock_wrlock(mapLock)
        defer { pthread_rwlock_unlock(mapLock) }
        try check(mdb_env_set_mapsize(env, newSize), "growing the map to \(newSize) bytes", path: path)
        mapSize = newSize
    }
}

/// Runs `body`, turning any error that is not already a ``ContinuumError`` into a storage failure.
func named<T>(_ body: () throws -> T) throws(ContinuumError) -> T {
    do {
        return try body()
    } catch let error as ContinuumError {
        throw error
    } catch {
        throw ContinuumError(.storageFailure, "Unexpected storage error: \(error)")
    }
}

/// Turns an LMDB return code into a named error.
func check(_ rc: Int32, _ what: @autoclosure () -> String, path: String) throws(ContinuumError) {
    guard rc != 0 else { return }
    throw lmdbError(rc, what(), path: path)
}

func lmdbError(_ rc: Int32, _ what: String, path: String) -> ContinuumError {
    let reason = String(cString: mdb_strerror(rc))
    switch rc {
    case MDB_MAP_FULL, ENOSPC:
        return ContinuumError(
            .storageFull,
            "The store at \(path) is full while \(what) (\(reason)). Nothing was acknowledged; free disk space "
                + "or raise the maximum map size, and the runtime continues.")
    case MDB_INVALID, MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_VERSION_MISMATCH:
        return ContinuumError(
            .corruptedData,
            "The LMDB environment at \(path) is damaged or not an LMDB environment while \(what) (\(reason)). "
                + "Restore it from a backup, or move it aside to start empty.")
    default:
        return ContinuumError(.storageFailure, "LMDB failed while \(what) at \(path): \(reason) (code \(rc)).")
    }
}

/// A failed commit's error. LMDB reports a write cut short by a full file system as `EIO`, not
/// `ENOSPC`: when the file system is nearly full (under 5 % or 64 MiB free) it is `storageFull`.
func commitError(_ rc: Int32, _ what: String, path: String) -> ContinuumError {
    guard rc == EIO, let free = freeSpace(path), free.available < min(64 << 20, free.total / 20) else {
        return lmdbError(rc, what, path: path)
    }
    return ContinuumError(
        .storageFull,
        "The store at \(path) is full while \(what) (a write was cut short; its file system has \(free.available) bytes free). "
            + "Nothing was acknowledged; free disk space and the runtime continues.")
}

/// The bytes available to unprivileged writers and the size of the file system holding `path`.
func freeSpace(_ path: String) -> (available: Int, total: Int)? {
    var info = statvfs()
    guard statvfs(path, &info) == 0 else { return nil }
    return (Int(info.f_bavail) * Int(info.f_frsize), Int(info.f_blocks) * Int(info.f_frsize))
}

// MARK: Keys

enum Key {
    static func stream(_ stream: UInt64) -> InlineKey {
        InlineKey(count: 8) { $0.storeBytes(of: stream.bigEndian, toByteOffset: 0, as: UInt64.self) }
    }

    static func event(_ stream: UInt64, _ sequence: UInt32) -> InlineKey {
        InlineKey(count: 12) {
            $0.storeBytes(of: stream.bigEndian, toByteOffset: 0, as: UInt64.self)
            $0.storeBytes(of: sequence.bigEndian, toByteOffset: 8, as: UInt32.self)
        }
    }

    /// Calls `body` with an event's key (``event(_:_:)``) built on the stack.
    static func withEvent<R>(_ stream: UInt64, _ sequence: UInt32, _ body: (inout MDB_val) throws -> R) rethrows -> R {
        var key = (stream.bigEndian, sequence.bigEndian)
        return try withUnsafeMutableBytes(of: &key) { raw in
            var val = MDB_val(mv_size: 12, mv_data: raw.baseAddress)
            return try body(&val)
        }
    }

    /// The status index byte of parked running workflows (kept apart so recovery skips them).
    static let parkedStatus: UInt8 = 0x81

    /// A status-index key: the index byte (a status's stored byte, or ``parkedStatus``), then the stream.
    static func status(byte: UInt8, _ stream: UInt64) -> InlineKey {
        InlineKey(count: 9) {
            $0.storeBytes(of: byte, toByteOffset: 0, as: UInt8.self)
            $0.storeBytes(of: stream.bigEndian, toByteOffset: 1, as: UInt64.self)
        }
    }

    /// The key of the status counts in `meta`.
    static let counts = Array("counts".utf8)

    /// A snapshot's value: how many events it covers, then its bytes.
    static func snapshot(_ snapshot: WorkflowSnapshot) -> [UInt8] {
        var value = withUnsafeBytes(of: snapshot.through.bigEndian) { Array($0) }
        value += snapshot.bytes
        return value
    }

    /// Reads a snapshot's value; `nil` when it is shorter than its header.
    static func readSnapshot(_ bytes: UnsafeRawBufferPointer) -> WorkflowSnapshot? {
        guard bytes.count >= 4 else { return nil }
        return WorkflowSnapshot(through: readUInt32(bytes, at: 0), bytes: Array(bytes[4...]))
    }

    /// A due time in an order-preserving form (the sign bit flipped), then the stream.
    static func timer(_ due: Int64, _ stream: UInt64) -> InlineKey {
        InlineKey(count: 16) {
            $0.storeBytes(of: (UInt64(bitPattern: due) ^ (1 << 63)).bigEndian, toByteOffset: 0, as: UInt64.self)
            $0.storeBytes(of: stream.bigEndian, toByteOffset: 8, as: UInt64.self)
        }
    }

    static func readDue(_ bytes: UnsafeRawBufferPointer) -> Int64 {
        Int64(bitPattern: readUInt64(bytes) ^ (1 << 63))
    }

    static func readUInt64(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0) -> UInt64 {
        UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    static func readUInt32(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> UInt32 {
        UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
}

extension MDB_val {
    var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: mv_data, count: mv_size) }
}

/// Bytes LMDB can read a key or a value from, lent for the length of a call.
///
/// LMDB only reads what a key or a value passed to it points at (it may point the `MDB_val`
/// itself elsewhere, never write through it), so the bytes' own storage is lent: a mutable
/// copy would cost an allocation and a copy of every key and value the writer puts.
protocol LMDBBytes {
    func withVal<R>(_ body: (inout MDB_val) throws -> R) rethrows -> R
}

extension Array: LMDBBytes where Element == UInt8 {
    func withVal<R>(_ body: (inout MDB_val) throws -> R) rethrows -> R {
        try withUnsafeBytes { raw in
            var val = MDB_val(mv_size: raw.count, mv_data: UnsafeMutableRawPointer(mutating: raw.baseAddress))
            return try body(&val)
        }
    }
}

/// A workflow id as a key: its UTF-8 bytes, lent from the string (no copy for a native string).
extension String: LMDBBytes {
    func withVal<R>(_ body: (inout MDB_val) throws -> R) rethrows -> R {
        var id = self
        return try id.withUTF8 { utf8 in
            var val = MDB_val(mv_size: utf8.count, mv_data: UnsafeMutableRawPointer(mutating: utf8.baseAddress))
            return try body(&val)
        }
    }
}

/// A key of at most 16 bytes (a stream's, an event's, a status index's, a timer's), kept
/// inline: building one allocates nothing, where an array of its bytes took an allocation on
/// every put, lookup and delete.
struct InlineKey: LMDBBytes {
    private var storage: (UInt64, UInt64) = (0, 0)
    let count: Int

    init(count: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void) {
        precondition(count <= 16, "an inline key holds at most 16 bytes")
        self.count = count
        withUnsafeMutableBytes(of: &storage) { fill(UnsafeMutableRawBufferPointer(rebasing: $0[..<count])) }
    }

    func withVal<R>(_ body: (inout MDB_val) throws -> R) rethrows -> R {
        var copy = storage
        return try withUnsafeMutableBytes(of: &copy) { raw in
            var val = MDB_val(mv_size: count, mv_data: raw.baseAddress)
            return try body(&val)
        }
    }
}

/// Calls `body` with an `MDB_val` over `bytes` (see ``LMDBBytes``).
func withVal<R>(_ bytes: some LMDBBytes, _ body: (inout MDB_val) throws -> R) rethrows -> R {
    try bytes.withVal(body)
}
