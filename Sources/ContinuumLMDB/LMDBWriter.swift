import CLMDB
import Continuum
import CoreMetrics
import Foundation
import Logging
import Synchronization

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
/// The writer also keeps the store's claims (``Claim``): one process owns an LMDB store, so
/// claims need not survive it, and keeping them on this thread checks every append's fencing
/// token in the same transaction that writes it, with no lock.
///
/// `@unchecked Sendable`: what is submitted is behind `submissions`' lock; `nextStream`,
/// `claims`, `ends`, `nextEpoch`, `counts`, `scratch`, `recordCursor` and the spare buffers are
/// touched only by the writer thread (and by `init`, before it starts).
final class LMDBWriter: @unchecked Sendable {
    enum Operation {
        // The two on every workflow's path resume their caller directly: a closure around the
        // continuation cost an allocation per submission.
        case create(CreateRequest, UnsafeContinuation<Result<CreateOutcome, ContinuumError>, Never>)
        case append(AppendRequest, UnsafeContinuation<Result<Void, ContinuumError>, Never>)
        case claim(String, OwnerID, @Sendable (Result<Claim?, ContinuumError>) -> Void)
        case renew([Claim], @Sendable (Result<[Claim], ContinuumError>) -> Void)
        /// Deletes a finished workflow: its id, record, status entry and every event.
        case purge(String, @Sendable (Result<Bool, ContinuumError>) -> Void)
        /// Runs a test's own change inside a write transaction.
        case raw(@Sendable (LMDBEnvironment, OpaquePointer) throws -> Void, @Sendable (Result<Void, ContinuumError>) -> Void)

        func fail(_ error: ContinuumError) {
            switch self {
            case .create(_, let continuation): continuation.resume(returning: .failure(error))
            case .append(_, let continuation): continuation.resume(returning: .failure(error))
            case .claim(_, _, let completion): completion(.failure(error))
            case .renew(_, let completion): completion(.failure(error))
            case .purge(_, let completion): completion(.failure(error))
            case .raw(_, let completion): completion(.failure(error))
            }
        }
    }

    /// What an operation produced, handed to its completion once the batch committed.
    private enum Produced {
        case created(CreateOutcome)
        case appended
        case claimed(Claim?)
        case renewed(lost: [Claim])
        case purged(Bool)
    }

    /// Why applying an operation stopped.
    private enum Failure: Error {
        /// This operation is invalid; the others may commit without it.
        case operation(ContinuumError)
        /// The transaction cannot continue (map full, I/O error).
        case transaction(Int32, String)
    }

    /// What the submitting threads share with the writer thread.
    private struct Submissions {
        var queue: [Operation] = []
        var stopping = false
        var onStopped: [@Sendable () -> Void] = []
        var threadEnded = false
        /// The writer thread found the queue empty and waits on `doorbell`: the next submission
        /// rings it (once).
        var writerWaits = false
    }

    private let environment: LMDBEnvironment
    private let configuration: LMDBStore.Configuration
    /// The queue, behind a lock that spins before it sleeps. An `NSCondition`'s mutex put a
    /// submitting thread to sleep in the kernel whenever it met the writer (or the other
    /// submitting thread) there: about one `futex` call in five the bench made.
    private let submissions = Mutex(Submissions())
    /// Wakes the writer thread when it sleeps; rung only by the submission that finds it asleep.
    private let doorbell = DispatchSemaphore(value: 0)
    /// The queue's other buffer: the writer takes the queue by swapping it with this one, empty,
    /// and keeps the batch's buffer as the next spare, so no batch allocates a queue.
    private var spare: [Operation] = []
    private var nextStream: UInt64 = 1
    /// The current claim of each claimed workflow, by stream.
    private var claims: [UInt64: FencingToken] = [:]
    /// The next sequence of each claimed stream, once this writer created or appended to it
    /// under its current claim: an append that starts there needs no lookup of the event
    /// before it. Forgotten when the claim changes, and wholly after a test's raw change.
    private var ends: [UInt64: UInt32] = [:]
    /// Where the writer thread encodes each event and record it stores: LMDB copies the value
    /// into its page, so one buffer serves every put.
    private var scratch = ByteWriter()
    private var nextEpoch: UInt64 = 0
    /// How many workflows each status-index byte holds, as stored in `meta/counts`.
    private var counts: StatusIndexCounts
    /// Whether the batch being applied wrote anything (a batch of claims of running workflows
    /// and renewals writes nothing, and is not committed).
    private var wrote = false
    /// Whether the batch being applied moved an index entry, so `meta/counts` is rewritten.
    private var countsChanged = false
    /// A cursor on the workflow records in the batch's transaction, opened at its first use:
    /// a record that changes is found once and rewritten where the cursor stands, rather than
    /// read and then searched for again by `mdb_put`. LMDB closes it with the transaction, and
    /// the batch sets it to `nil` then (so it is `nil` whenever no batch transaction is open).
    private var recordCursor: OpaquePointer?
    /// The buffers a batch is worked in, kept from one batch to the next: grown afresh for a
    /// batch of a thousand operations, each doubling past a kilobyte was a `malloc` that made
    /// glibc walk and merge all its free small chunks (`malloc_consolidate`).
    private var spareProduced: [Produced?] = []
    private var spareClaims: [(UInt64, FencingToken?)] = []
    private var spareEnds: [(UInt64, UInt32?)] = []
    /// How long each commit (with its fsyncs) took, and how many submissions it carried.
    private let commitDuration: CoreMetrics.Timer
    private let commitBatch: Recorder

    init(environment: LMDBEnvironment, configuration: LMDBStore.Configuration) throws(ContinuumError) {
        self.environment = environment
        self.configuration = configuration
        let factory = configuration.metricsFactory ?? MetricsSystem.factory
        commitDuration = CoreMetrics.Timer(label: "continuum_commit_duration_seconds", factory: factory)
        commitBatch = Recorder(label: "continuum_commit_batch_size", factory: factory)
        (nextStream, counts) = try named {
            try environment.read { txn in
                var cursor: OpaquePointer?
                try check(mdb_cursor_open(txn, environment.workflows, &cursor), "opening a cursor", path: environment.path)
                defer { mdb_cursor_close(cursor) }
                var key = MDB_val()
                var value = MDB_val()
                let rc = mdb_cursor_get(cursor, &key, &value, MDB_LAST)
                var next: UInt64 = 1
                if rc != MDB_NOTFOUND {
                    try check(rc, "finding the last stream", path: environment.path)
                    next = Key.readUInt64(key.buffer) + 1
                }
                return (next, try StatusIndexCounts.read(environment, txn: txn))
            }
        }
        if environment.readOnly {
            // Nothing is ever written: every submission is refused, and there is no thread.
            submissions.withLock {
                $0.stopping = true
                $0.threadEnded = true
            }
            return
        }
        if counts.needsWriting { try writeInitialCounts() }
        let thread = Thread { [self] in
            // Named for `top -H` and `perf`, which showed it as the pool thread that opened the
            // store ("oot.default-qos").
            nameCurrentThread(LMDBStore.writerThreadName)
            loop()
        }
        thread.name = LMDBStore.writerThreadName
        thread.start()
    }

    /// Stores the counts of a store written before counts were kept (counted once, at open).
    private func writeInitialCounts() throws(ContinuumError) {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(environment.env, nil, 0, &txn), "beginning a write transaction", path: environment.path)
        do {
            try put(txn!, environment.meta!, Key.counts, counts.encoded, "storing the status counts")
        } catch {
            mdb_txn_abort(txn)
            throw lmdbError(-1, "storing the status counts: \(error)", path: environment.path)
        }
        try check(mdb_txn_commit(txn), "storing the status counts", path: environment.path)
        counts.needsWriting = false
    }

    var mapSize: Int { environment.currentMapSize }

    func submit(_ operation: consuming Operation) {
        var operation = Optional(operation)
        let (queued, ring) = submissions.withLock { state -> (Bool, Bool) in
            guard !state.stopping else { return (false, false) }
            state.queue.append(operation.take()!)
            defer { state.writerWaits = false }
            return (true, state.writerWaits)
        }
        if ring { doorbell.signal() }
        guard !queued, let operation = operation.take() else { return }
        operation.fail(
            environment.readOnly
                ? ContinuumError(.readOnly, "The store at \(environment.path) is open read-only; nothing was written.")
                : ContinuumError(.storeClosed, "The store at \(environment.path) is closed; nothing was written."))
    }

    /// Commits what was submitted, then stops the thread and calls `then` on it (at once when
    /// the thread has ended already). Returns `false` when it was stopped before.
    @discardableResult
    func stop(then: @escaping @Sendable () -> Void) -> Bool {
        let (ended, first, ring) = submissions.withLock { state -> (Bool, Bool, Bool) in
            if state.threadEnded { return (true, false, false) }
            let first = !state.stopping
            state.stopping = true
            state.onStopped.append(then)
            defer { state.writerWaits = false }
            return (false, first, state.writerWaits)
        }
        if ring { doorbell.signal() }
        if ended { then() }
        return first
    }

    /// What the writer thread does next.
    private enum Next {
        /// Commit the batch it took.
        case commit
        /// Sleep until a submission rings the doorbell.
        case wait
        /// End, calling these.
        case end([@Sendable () -> Void])
    }

    private func loop() {
        // The batch is taken by swapping buffers, and its buffer is the next spare: `batch` is
        // the only reference to it while it commits (a second one would copy it on write).
        var batch = [Operation]()
        while true {
            swap(&batch, &spare)
            let next = submissions.withLock { state -> Next in
                if state.queue.isEmpty {
                    guard state.stopping else {
                        state.writerWaits = true
                        return .wait
                    }
                    state.threadEnded = true
                    defer { state.onStopped = [] }
                    return .end(state.onStopped)
                }
                if state.queue.count <= configuration.maxBatch {
                    swap(&batch, &state.queue)
                } else {
                    batch.append(contentsOf: state.queue.prefix(configuration.maxBatch))
                    state.queue.removeFirst(configuration.maxBatch)
                }
                return .commit
            }
            switch next {
            case .commit:
                // Each operation is worked on in the batch's buffer (see `commit`). Copied out of
                // the array (`for operation in batch`), an append's request retained and released
                // each of its references: about twenty refcount operations per operation, on this
                // one thread, on memory the submitting threads wrote.
                batch.withUnsafeMutableBufferPointer { commit($0) }
                batch.removeAll(keepingCapacity: true)
            case .wait:
                doorbell.wait()
            case .end(let callbacks):
                for callback in callbacks { callback() }
                return
            }
            swap(&batch, &spare)
        }
    }

    // MARK: Committing a batch

    /// What a batch changed in the writer's own state, undone when its transaction is not committed.
    private struct Undo {
        var claims: [(UInt64, FencingToken?)] = []
        var ends: [(UInt64, UInt32?)] = []
        var nextEpoch: UInt64
        var counts: StatusIndexCounts
    }

    private func commit(_ batch: UnsafeMutableBufferPointer<Operation>) {
        var rejected: [Int: ContinuumError] = [:]
        while true {
            var txn: OpaquePointer?
            let begun = mdb_txn_begin(environment.env, nil, 0, &txn)
            guard begun == 0, let txn else {
                failAll(UnsafeBufferPointer(batch), lmdbError(begun, "beginning a write transaction", path: environment.path))
                return
            }
            // Taken out of their fields (not copied: a copy would not be unique, and its first
            // append would copy it again) and put back, emptied, when the batch is done.
            var produced: [Produced?] = []
            swap(&produced, &spareProduced)
            produced.append(contentsOf: repeatElement(nil, count: batch.count))
            var undo = Undo(nextEpoch: nextEpoch, counts: counts)
            swap(&undo.claims, &spareClaims)
            swap(&undo.ends, &spareEnds)
            defer {
                recordCursor = nil  // LMDB closed it with the transaction
                produced.removeAll(keepingCapacity: true)
                swap(&produced, &spareProduced)
                undo.claims.removeAll(keepingCapacity: true)
                undo.ends.removeAll(keepingCapacity: true)
                swap(&undo.claims, &spareClaims)
                swap(&undo.ends, &spareEnds)
            }
            var stream = nextStream
            var failure: Failure?
            wrote = false
            countsChanged = false
            // Nearly always empty: not hashed into for every operation then.
            for index in batch.indices where rejected.isEmpty || rejected[index] == nil {
                // Moved out of its slot, its parts bound as they are, and put back once done with:
                // matched in place, an append's or a create's payload was copied at the call,
                // retaining and releasing each reference it holds (about 20 per workflow).
                let slot = batch.baseAddress! + index
                do {
                    switch slot.move() {
                    case .create(let request, let continuation):
                        defer { slot.initialize(to: .create(request, continuation)) }
                        produced[index] = .created(try create(request, txn: txn, nextStream: &stream, undo: &undo))
                    case .append(let request, let continuation):
                        defer { slot.initialize(to: .append(request, continuation)) }
                        try append(request, txn: txn, undo: &undo)
                        produced[index] = .appended
                    case .claim(let id, let owner, let completion):
                        defer { slot.initialize(to: .claim(id, owner, completion)) }
                        produced[index] = .claimed(try claim(id, owner: owner, txn: txn, undo: &undo))
                    case .renew(let held, let completion):
                        defer { slot.initialize(to: .renew(held, completion)) }
                        produced[index] = .renewed(lost: held.filter { claims[$0.stream.rawValue] != $0.token })
                    case .purge(let id, let completion):
                        defer { slot.initialize(to: .purge(id, completion)) }
                        produced[index] = .purged(try purge(id, txn: txn, undo: &undo))
                    case .raw(let change, let completion):
                        defer { slot.initialize(to: .raw(change, completion)) }
                        // It may change any stream's events behind the writer's back.
                        for (stream, end) in ends { undo.ends.append((stream, end)) }
                        ends = [:]
                        do {
                            try change(environment, txn)
                        } catch let error as ContinuumError {
                            throw Failure.operation(error)
                        }
                        wrote = true
                        produced[index] = .appended
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
            if failure == nil, countsChanged {
                do {
                    try put(txn, environment.meta!, Key.counts, counts.encoded, "storing the status counts")
                } catch let error as Failure {
                    failure = error
                } catch {
                    failure = .transaction(-1, "\(error)")
                }
            }
            var rc: Int32 = 0
            var what = "committing"
            switch failure {
            case nil where !wrote:
                mdb_txn_abort(txn)  // nothing to make durable
            case nil:
                let started = DispatchTime.now().uptimeNanoseconds
                rc = mdb_txn_commit(txn)
                if rc == 0 {
                    commitDuration.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
                    commitBatch.record(batch.count - rejected.count)
                }
            case .operation?:
                mdb_txn_abort(txn)
                rollBack(undo)
                continue  // retry without the rejected operation
            case .transaction(let code, let context)?:
                mdb_txn_abort(txn)
                rc = code
                what = context
            }
            if rc != 0 { rollBack(undo) }
            if rc == MDB_MAP_FULL, grow() { continue }
            if rc != 0 {
                let error = rc == -1 ? ContinuumError(.storageFailure, what) : commitError(rc, what, path: environment.path)
                configuration.logger?.error(
                    "Commit failed: \(error.message)",
                    metadata: ["continuum.error.code": "\(error.code)", "continuum.commit.batch_size": "\(batch.count)"])
                failAll(UnsafeBufferPointer(batch), error)
                return
            }
            nextStream = stream
            for index in batch.indices {
                // Not matched as a tuple with what it produced: the tuple would copy the operation.
                let answered: Bool
                switch batch[index] {
                case .create(_, let continuation):
                    guard case .created(let outcome)? = produced[index] else { answered = false; break }
                    continuation.resume(returning: .success(outcome))
                    answered = true
                case .append(_, let continuation):
                    guard case .appended? = produced[index] else { answered = false; break }
                    continuation.resume(returning: .success(()))
                    answered = true
                case .claim(_, _, let completion):
                    guard case .claimed(let claim)? = produced[index] else { answered = false; break }
                    completion(.success(claim))
                    answered = true
                case .renew(_, let completion):
                    guard case .renewed(let lost)? = produced[index] else { answered = false; break }
                    completion(.success(lost))
                    answered = true
                case .purge(_, let completion):
                    guard case .purged(let found)? = produced[index] else { answered = false; break }
                    completion(.success(found))
                    answered = true
                case .raw(_, let completion):
                    guard case .appended? = produced[index] else { answered = false; break }
                    completion(.success(()))
                    answered = true
                }
                if !answered { batch[index].fail(rejected[index] ?? ContinuumError(.storageFailure, "The operation produced no result.")) }
            }
            return
        }
    }

    /// Puts the writer's state back as it was before a transaction that was not committed.
    private func rollBack(_ undo: Undo) {
        for (stream, token) in undo.claims.reversed() { claims[stream] = token }
        for (stream, end) in undo.ends.reversed() { ends[stream] = end }
        nextEpoch = undo.nextEpoch
        counts = undo.counts
    }

    private func setClaim(_ stream: UInt64, _ token: FencingToken?, undo: inout Undo) {
        undo.claims.append((stream, claims[stream]))
        claims[stream] = token
        setEnd(stream, nil, undo: &undo)
    }

    private func setEnd(_ stream: UInt64, _ end: UInt32?, undo: inout Undo) {
        undo.ends.append((stream, ends[stream]))
        ends[stream] = end
    }

    private func failAll(_ batch: UnsafeBufferPointer<Operation>, _ error: ContinuumError) {
        for operation in batch { operation.fail(error) }
    }

    /// Doubles the map if the configured maximum allows; `false` when it is already at the maximum.
    private func grow() -> Bool {
        let current = environment.currentMapSize
        guard current < configuration.maxMapSize else { return false }
        let target = min(current * 2, configuration.maxMapSize)
        do {
            try environment.growMap(to: target)
            configuration.logger?.info("Grew the LMDB map", metadata: ["continuum.lmdb.map_size": "\(target)"])
            return true
        } catch {
            configuration.logger?.error(
                "Could not grow the LMDB map: \(error)",
                metadata: ["continuum.lmdb.path": "\(environment.path)", "continuum.lmdb.map_size": "\(current)"])
            return false
        }
    }

    // MARK: Primitives

    private func put(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ key: some LMDBBytes, _ value: some LMDBBytes, flags: Int32 = 0, _ what: @autoclosure () -> String) throws {
        let rc = withVal(key) { key in
            withVal(value) { value in mdb_put(txn, dbi, &key, &value, UInt32(flags)) }
        }
        try stored(rc, what())
    }

    /// Lets go of the scratch buffer once a large payload has grown it: it is not kept for the
    /// life of the store.
    private func shrinkScratch() {
        if scratch.bytes.capacity > 1 << 16 { scratch = ByteWriter() }
    }

    /// Stores an event (never over one): its key built on the stack, as every append does.
    private func put(_ txn: OpaquePointer, event stream: UInt64, _ sequence: UInt32, _ value: [UInt8], _ what: @autoclosure () -> String) throws {
        let rc = Key.withEvent(stream, sequence) { key in
            withVal(value) { value in mdb_put(txn, environment.events, &key, &value, UInt32(MDB_NOOVERWRITE)) }
        }
        try stored(rc, what())
    }

    /// What a put's return code means: stored, a key already there (this operation is refused),
    /// or a failed transaction.
    private func stored(_ rc: Int32, _ what: @autoclosure () -> String) throws {
        if rc == MDB_KEYEXIST {
            throw Failure.operation(ContinuumError(.storageFailure, "\(what()): the key is already stored; two writers raced on one workflow."))
        }
        if rc != 0 { throw Failure.transaction(rc, what()) }
        wrote = true
    }

    private func exists(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ key: some LMDBBytes) throws -> MDB_val? {
        try withVal(key) { key in
            var value = MDB_val()
            let rc = mdb_get(txn, dbi, &key, &value)
            if rc == MDB_NOTFOUND { return nil }
            if rc != 0 { throw Failure.transaction(rc, "reading") }
            return value
        }
    }

    /// Stores `key` → `value` unless `key` is stored already; returns the stored value then
    /// (`MDB_NOOVERWRITE` points the value at it), `nil` once it wrote.
    private func insert(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ key: some LMDBBytes, _ value: some LMDBBytes, _ what: @autoclosure () -> String) throws -> MDB_val? {
        var existing: MDB_val?
        let rc = withVal(key) { key in
            withVal(value) { value in
                let rc = mdb_put(txn, dbi, &key, &value, UInt32(MDB_NOOVERWRITE))
                if rc == MDB_KEYEXIST { existing = value }
                return rc
            }
        }
        if rc == MDB_KEYEXIST { return existing }
        try stored(rc, what())
        return nil
    }

    /// The transaction's cursor on the workflow records (``recordCursor``).
    private func recordCursor(_ txn: OpaquePointer) throws -> OpaquePointer {
        if let recordCursor { return recordCursor }
        var cursor: OpaquePointer?
        let rc = mdb_cursor_open(txn, environment.workflows, &cursor)
        guard rc == 0, let cursor else { throw Failure.transaction(rc, "opening a cursor on the workflow records") }
        recordCursor = cursor
        return cursor
    }

    /// Moves `cursor` to `key`; returns its value, `nil` when it is not stored.
    private func position(_ cursor: OpaquePointer, at key: some LMDBBytes) throws -> MDB_val? {
        try withVal(key) { key in
            var value = MDB_val()
            let rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_KEY)
            if rc == MDB_NOTFOUND { return nil }
            if rc != 0 { throw Failure.transaction(rc, "reading") }
            return value
        }
    }

    /// Replaces the value where `cursor` stands, whose key is `key`.
    private func replace(_ cursor: OpaquePointer, _ key: some LMDBBytes, _ value: some LMDBBytes, _ what: @autoclosure () -> String) throws {
        let rc = withVal(key) { key in
            withVal(value) { value in mdb_cursor_put(cursor, &key, &value, UInt32(MDB_CURRENT)) }
        }
        try stored(rc, what())
    }

    /// Deletes `key`; returns whether it was there.
    @discardableResult
    private func delete(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ key: some LMDBBytes, _ what: @autoclosure () -> String) throws -> Bool {
        let rc = withVal(key) { key in mdb_del(txn, dbi, &key, nil) }
        if rc == MDB_NOTFOUND { return false }
        if rc != 0 { throw Failure.transaction(rc, what()) }
        wrote = true
        return true
    }

    private func summary(_ txn: OpaquePointer, stream: UInt64, id: String) throws -> WorkflowSummary? {
        guard let record = try exists(txn, environment.workflows, Key.stream(stream)) else { return nil }
        return try decoding { try BinaryCodec.decodeSummary(record.buffer, location: "\(environment.path) workflows/\(stream)") }
    }

    /// Decodes a stored record with `body`: a damaged one fails its operation, not the batch.
    private func decoding<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ContinuumError {
            throw Failure.operation(error)
        }
    }

    /// Moves a workflow's status-index entry from `old` to `new` (index bytes; `nil`: none).
    private func reindex(_ txn: OpaquePointer, stream: UInt64, from old: UInt8?, to new: UInt8?, id: String) throws {
        guard old != new else { return }
        if let old, try delete(txn, environment.byStatus, Key.status(byte: old, stream), "re-indexing '\(id)'") {
            counts[old] -= 1
            countsChanged = true
        }
        if let new {
            try put(txn, environment.byStatus, Key.status(byte: new, stream), [], "indexing '\(id)'")
            counts[new] += 1
            countsChanged = true
        }
    }

    /// The status-index byte a workflow sits under now: its status's, or parked.
    private func indexByte(_ txn: OpaquePointer, _ status: WorkflowStatus, stream: UInt64) throws -> UInt8 {
        guard status == .running else { return status.storedByte }
        return try exists(txn, environment.byStatus, Key.status(byte: Key.parkedStatus, stream)) != nil ? Key.parkedStatus : status.storedByte
    }

    // MARK: Operations

    private func create(_ request: CreateRequest, txn: OpaquePointer, nextStream: inout UInt64, undo: inout Undo) throws -> CreateOutcome {
        let stream = nextStream
        // The id is stored unless it is there already: one B-tree search, not a lookup and then
        // a put (a fresh id's existence check was one of the 13 LMDB calls a workflow made).
        if let found = try insert(txn, environment.ids, request.id, Key.stream(stream), "storing the id of '\(request.id)'") {
            let stream = Key.readUInt64(found.buffer)
            guard let summary = try summary(txn, stream: stream, id: request.id) else {
                throw Failure.operation(ContinuumError(.corruptedData, "Workflow '\(request.id)' has an id entry but no record in \(environment.path)."))
            }
            return .existing(StreamID(rawValue: stream), summary)
        }
        nextStream += 1
        let summary = WorkflowSummary(
            id: request.id, type: request.type, status: .running, createdAt: request.started.timestamp, updatedAt: request.started.timestamp)
        // Each record is encoded into the scratch buffer, as appends are: none allocates.
        BinaryCodec.encode(summary, into: &scratch)
        try put(txn, environment.workflows, Key.stream(stream), scratch.bytes, "storing the record of '\(request.id)'")
        try reindex(txn, stream: stream, from: nil, to: WorkflowStatus.running.storedByte, id: request.id)
        BinaryCodec.encode(request.started, into: &scratch)
        try put(txn, event: stream, 0, scratch.bytes, "storing the start of '\(request.id)'")
        for (offset, event) in request.history.enumerated() {
            guard Int(event.sequence) == offset + 1 else {
                throw Failure.operation(ContinuumError(.invalidArgument, "The history of new workflow '\(request.id)' is not numbered from 1."))
            }
            BinaryCodec.encode(event, into: &scratch)
            try put(txn, event: stream, event.sequence, scratch.bytes, "storing the history of '\(request.id)'")
        }
        shrinkScratch()
        for case .add(let due) in request.timers {
            BinaryCodec.seal(into: &scratch) { $0.write(string: request.id) }
            try put(txn, environment.timers, Key.timer(due, stream), scratch.bytes, "indexing a timer of '\(request.id)'")
        }
        nextEpoch += 1
        let token = FencingToken(owner: request.owner, epoch: nextEpoch)
        setClaim(stream, token, undo: &undo)
        setEnd(stream, UInt32(request.history.count + 1), undo: &undo)
        return .created(Claim(stream: StreamID(rawValue: stream), token: token))
    }

    private func append(_ request: AppendRequest, txn: OpaquePointer, undo: inout Undo) throws {
        let stream = request.stream.rawValue
        guard claims[stream] == request.fence.token else {
            throw Failure.operation(
                ContinuumError(
                    .ownershipLost,
                    "Workflow '\(request.id)' is no longer claimed by \(request.fence.token) (current claim: "
                        + "\(claims[stream].map { "\($0)" } ?? "none")); nothing was appended.",
                    workflowID: request.id))
        }
        // The first and last events' numbers read in place: `events.first` copied the event,
        // retaining what it holds, to read one field.
        let count = request.events.count
        let first = count > 0 ? request.events[0].sequence : nil
        let last = count > 0 ? request.events[count - 1].sequence : nil
        if let first, first > 0, ends[stream] != first, try exists(txn, environment.events, Key.event(stream, first - 1)) == nil {
            throw Failure.operation(
                ContinuumError(
                    .storageFailure,
                    "Cannot append event \(first) to workflow '\(request.id)': event \(first - 1) is not stored.",
                    workflowID: request.id))
        }
        // Read in place through the buffer: `for event in`, or the array's subscript, copied
        // each event out, retaining what it holds.
        try request.events.withUnsafeBufferPointer { events in
            for index in events.indices {
                BinaryCodec.encode(events[index], into: &scratch)
                let sequence = events[index].sequence
                try put(txn, event: stream, sequence, scratch.bytes, "appending event \(sequence) to '\(request.id)'")
                shrinkScratch()
            }
        }
        if let last { setEnd(stream, last + 1, undo: &undo) }
        if let snapshot = request.snapshot, let snapshots = environment.snapshots {
            // It stands for the stream's every event: the last is `through - 1`, none follows.
            guard snapshot.through > 0, try exists(txn, environment.events, Key.event(stream, snapshot.through - 1)) != nil,
                try exists(txn, environment.events, Key.event(stream, snapshot.through)) == nil
            else {
                throw Failure.operation(
                    ContinuumError(
                        .invalidArgument, "A snapshot of workflow '\(request.id)' covers \(snapshot.through) events, which is not the stream's length.",
                        workflowID: request.id))
            }
            try put(txn, snapshots, Key.stream(stream), Key.snapshot(snapshot), "writing a snapshot of '\(request.id)'")
        }
        for change in request.timers {
            switch change {
            case .add(let due):
                BinaryCodec.seal(into: &scratch) { $0.write(string: request.id) }
                try put(txn, environment.timers, Key.timer(due, stream), scratch.bytes, "indexing a timer of '\(request.id)'")
            case .remove(let due):
                try delete(txn, environment.timers, Key.timer(due, stream), "removing a timer of '\(request.id)'")
            }
        }
        if request.release { setClaim(stream, nil, undo: &undo) }
        guard request.status != nil || request.release else { return }
        // The record is changed in place: its id and type are copied, never decoded.
        let cursor = try recordCursor(txn)
        guard let record = try position(cursor, at: Key.stream(stream)) else {
            throw Failure.operation(ContinuumError(.unknownWorkflow, "Workflow '\(request.id)' has no record.", workflowID: request.id))
        }
        let head = try decoding { try BinaryCodec.decodeSummaryHead(record.buffer, location: "\(environment.path) workflows/\(stream)") }
        var status = head.status
        // Claimed (checked above), so indexed under its status: a claim takes a workflow out of
        // the parked index in the transaction that grants it, and only a release puts it back.
        // Not looked up in the index then (one B-tree search per append that changes a status or
        // releases, such as every workflow's last); debug builds, and so the tests, check it.
        let old = status.storedByte
        assert((try? indexByte(txn, status, stream: stream)) == old, "A claimed workflow is indexed as parked.")
        if let new = request.status, new != status {
            status = new
            let updatedAt = count > 0 ? request.events[count - 1].timestamp : nil
            BinaryCodec.encodeSummary(record.buffer, head, status: new, updatedAt: updatedAt, into: &scratch)
            try replace(cursor, Key.stream(stream), scratch.bytes, "updating the record of '\(request.id)'")
        }
        // A workflow is indexed once: under its status, or as parked while running and released.
        let parked = status == .running && request.release
        try reindex(txn, stream: stream, from: old, to: parked ? Key.parkedStatus : status.storedByte, id: request.id)
    }

    private func claim(_ id: String, owner: OwnerID, txn: OpaquePointer, undo: inout Undo) throws -> Claim? {
        guard let found = try exists(txn, environment.ids, id) else { return nil }
        let stream = Key.readUInt64(found.buffer)
        guard let summary = try summary(txn, stream: stream, id: id) else { return nil }
        // Taken into memory: no longer parked, so a crash from now on recovers it at once.
        if summary.status == .running {
            try reindex(txn, stream: stream, from: try indexByte(txn, summary.status, stream: stream), to: summary.status.storedByte, id: id)
        }
        nextEpoch += 1
        let token = FencingToken(owner: owner, epoch: nextEpoch)
        setClaim(stream, token, undo: &undo)
        return Claim(stream: StreamID(rawValue: stream), token: token)
    }

    /// Deletes a finished workflow; `false` when there is no such workflow. A running one is refused.
    private func purge(_ id: String, txn: OpaquePointer, undo: inout Undo) throws -> Bool {
        let idKey = id
        guard let found = try exists(txn, environment.ids, idKey) else { return false }
        let stream = Key.readUInt64(found.buffer)
        guard let summary = try summary(txn, stream: stream, id: id) else { return false }
        guard summary.status.isFinished else {
            throw Failure.operation(
                ContinuumError(.invalidArgument, "Workflow '\(id)' is \(summary.status); only finished workflows are deleted.", workflowID: id))
        }
        try delete(txn, environment.ids, idKey, "deleting the id of '\(id)'")
        try delete(txn, environment.workflows, Key.stream(stream), "deleting the record of '\(id)'")
        if let snapshots = environment.snapshots { _ = try delete(txn, snapshots, Key.stream(stream), "deleting the snapshot of '\(id)'") }
        try reindex(txn, stream: stream, from: summary.status.storedByte, to: nil, id: id)
        if claims[stream] != nil { setClaim(stream, nil, undo: &undo) }
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
}

/// How many workflows each status-index byte holds: the counts the store keeps in `meta/counts`
/// in the same transactions that move index entries.
struct StatusIndexCounts: Equatable {
    /// Counts by index byte (a status's stored byte, or ``Key/parkedStatus``).
    private var byByte: [UInt8: Int] = [:]
    /// Whether the counts were computed by scanning (a store from before counts were kept).
    var needsWriting = false

    subscript(byte: UInt8) -> Int {
        get { byByte[byte, default: 0] }
        set { byByte[byte] = newValue }
    }

    static func == (lhs: StatusIndexCounts, rhs: StatusIndexCounts) -> Bool {
        lhs.byByte.filter { $0.value != 0 } == rhs.byByte.filter { $0.value != 0 }
    }

    /// The counts as ``StatusCounts``.
    var statusCounts: StatusCounts {
        var counts = StatusCounts(parked: self[Key.parkedStatus])
        for status in WorkflowStatus.allCases { counts.byStatus[status] = self[status.storedByte] }
        counts.byStatus[.running, default: 0] += counts.parked
        return counts
    }

    /// The stored record: pairs of (index byte, count).
    var encoded: [UInt8] {
        BinaryCodec.seal { writer in
            let entries = byByte.filter { $0.value != 0 }.sorted { $0.key < $1.key }
            writer.write(UInt32(entries.count))
            for (byte, count) in entries {
                writer.write(byte)
                writer.write(UInt64(count))
            }
        }
    }

    /// The counts stored in `meta/counts`, or counted from the status index when there are none.
    static func read(_ environment: LMDBEnvironment, txn: OpaquePointer) throws -> StatusIndexCounts {
        var counts = StatusIndexCounts()
        let stored: [UInt8]? = try withVal(Key.counts) { key in
            guard let meta = environment.meta else { return nil }
            var value = MDB_val()
            let rc = mdb_get(txn, meta, &key, &value)
            if rc == MDB_NOTFOUND { return nil }
            try check(rc, "reading the status counts", path: environment.path)
            return Array(value.buffer)
        }
        if let stored {
            try stored.withUnsafeBytes { raw in
                try BinaryCodec.read(raw, location: "\(environment.path) meta/counts") { reader in
                    let entries: UInt32 = try reader.read()
                    for _ in 0..<entries {
                        let byte: UInt8 = try reader.read()
                        counts[byte] = Int(try reader.read() as UInt64)
                    }
                    try reader.expectEnd()
                }
            }
            return counts
        }
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, environment.byStatus, &cursor), "opening a cursor", path: environment.path)
        defer { mdb_cursor_close(cursor) }
        var key = MDB_val()
        var value = MDB_val()
        var rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST)
        while rc == 0 {
            if key.mv_size == 9 { counts[key.buffer[0]] += 1 }
            rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
        }
        if rc != MDB_NOTFOUND { try check(rc, "counting workflows", path: environment.path) }
        counts.needsWriting = true
        return counts
    }
}
