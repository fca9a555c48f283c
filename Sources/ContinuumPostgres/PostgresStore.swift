public import Continuum
import Foundation
public import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// The scale-out store: workflows' histories in PostgreSQL, shared by several runtime processes.
///
/// ```swift
/// let store = try await PostgresStore.connect(configuration: .init(url: "postgres://app:secret@db:5432/app"), logger: logger)
/// try await WorkflowRuntime.withRuntime(store: store, workflows: [Checkout()], logger: logger) { runtime in … }
/// await store.close()
/// ```
///
/// - **Group commit.** `create` and `append` queue their request and return once the
///   transaction holding it committed. One writer commits whatever was queued while the previous
///   transaction ran, in a few set-based statements (`unnest` of arrays) whatever the batch's
///   size, so concurrent workflows share round trips and fsyncs.
/// - **Order.** Requests are taken before the caller first suspends, and a batch applies them in
///   submission order, so an actor's appends land in the order it made them.
/// - **Fencing.** Each workflow row holds its owner, an epoch that grows with every claim and
///   the lease's expiry. The writer locks the rows of a batch (`FOR UPDATE`, in stream order)
///   and refuses, alone, every append whose token is not the current claim or whose lease ran
///   out, in the transaction that would have written it.
/// - **Time.** Leases are compared with the database server's clock, never a process's.
/// - **Counts** by status are kept in the same transactions as the changes, in sharded rows.
/// - **Schema.** Created and migrated by the store in its own schema (``Configuration/schema``);
///   a schema newer than this build is refused.
public final class PostgresStore: EventStore {
    public let limits: StoreLimits
    /// What the store was opened with.
    public let configuration: Configuration

    let client: PostgresClient
    let logger: Logger
    let schema: String
    /// Which row of each status count this process adds to.
    let shard: Int
    private let queue = Mutex(Queue())
    /// The writer's batches go through this while the store runs; `close` waits for it.
    private let tasks = Mutex<Tasks?>(nil)

    /// Streams handed out by ``inboxNotices()`` and ``queueNotices()``, fed by the listener.
    let inboxSubscribers = NoticeSubscribers<Void>()
    let queueSubscribers = NoticeSubscribers<QueueNotice>()

    private struct Tasks {
        /// Runs the connection pool (`PostgresClient.run()`), which must run while it is used.
        var client: Task<Void, Never>
        /// Commits the queued requests.
        var writer: Task<Void, Never>
        /// Listens for inbox and queue notices (`LISTEN`), reconnecting when its connection drops.
        var listener: Task<Void, Never>
    }

    enum Submission {
        case create(CreateRequest, UnsafeContinuation<Result<CreateOutcome, ContinuumError>, Never>)
        case append(AppendRequest, UnsafeContinuation<Result<Void, ContinuumError>, Never>)
    }

    struct Queue {
        var pending: [Submission] = []
        var writerWaiting: CheckedContinuation<Void, Never>?
        var closed = false
    }

    private init(configuration: Configuration, client: PostgresClient, logger: Logger) {
        self.configuration = configuration
        self.client = client
        self.logger = logger
        self.schema = "\"\(configuration.schema)\""
        self.shard = Int.random(in: 0..<64)
        self.limits = StoreLimits(
            maxWorkflowIDBytes: 511, maxNameBytes: 256, maxPayloadBytes: configuration.maxPayloadBytes, leaseDuration: configuration.leaseDuration)
    }

    /// Connects to the database, creates or migrates the schema, and starts the writer.
    ///
    /// While the server cannot be reached it retries with backoff for
    /// ``Configuration/connectTimeout``.
    ///
    /// - Throws: ``ContinuumError/Code/storageFailure`` naming the cause: the server unreachable
    ///   after the timeout, a refused password, a missing database, a schema newer than this build;
    ///   ``ContinuumError/Code/invalidArgument`` for a bad configuration.
    public static func connect(configuration: Configuration, logger: Logger) async throws(ContinuumError) -> PostgresStore {
        try configuration.validate()
        var options = PostgresClient.Configuration.Options()
        options.maximumConnections = configuration.poolSize
        options.minimumConnections = 1
        options.connectTimeout = .seconds(10)
        if let timeout = configuration.statementTimeout {
            options.additionalStartupParameters = [("statement_timeout", "\(max(1, timeout.milliseconds))")]
        }
        // A process paused in the middle of a write transaction (SIGSTOP, a long GC pause, a
        // partition) would hold its batch's row locks until it resumes, and every other process's
        // claim of those workflows waits on them, holding a pooled connection: the takeover
        // waited for the paused process, and enough waiting claims stalled the taker's whole
        // pool. The server ends such a session once it idled inside its transaction for a lease
        // (at least a second); nothing of it was committed or acknowledged.
        let idle = min(max(configuration.leaseDuration.milliseconds, 1000), Int64(Int32.max))
        options.additionalStartupParameters.append(("idle_in_transaction_session_timeout", "\(idle)"))
        var clientConfiguration = PostgresClient.Configuration(
            host: configuration.host, port: configuration.port, username: configuration.username, password: configuration.password,
            database: configuration.database, tls: configuration.requireTLS ? .require(.makeClientConfiguration()) : .disable)
        clientConfiguration.options = options

        // One direct connection first: it reports a bad password or database at once (the pool
        // would retry those forever), and migrates the schema.
        try await firstConnection(configuration: configuration, clientConfiguration: clientConfiguration, logger: logger)

        // The pool warns when it is asked for a connection before its `run()` task got going, which
        // is harmless here (the request waits); its errors reach the store's callers as thrown errors.
        var poolLogger = logger
        poolLogger.logLevel = max(logger.logLevel, .error)
        let client = PostgresClient(configuration: clientConfiguration, backgroundLogger: poolLogger)
        let store = PostgresStore(configuration: configuration, client: client, logger: logger)
        // The tasks are owned by the store: `close()` ends them and waits for them.
        let clientTask = Task { await client.run() }
        let writerTask = Task { await store.runWriter() }
        let listenerTask = Task { await store.listen() }
        store.tasks.withLock { $0 = Tasks(client: clientTask, writer: writerTask, listener: listenerTask) }
        logger.debug("PostgreSQL store open", metadata: ["continuum.store": "\(configuration.displayURL)"])
        return store
    }

    private static func firstConnection(
        configuration: Configuration, clientConfiguration: PostgresClient.Configuration, logger: Logger
    ) async throws(ContinuumError) {
        let deadline = ContinuousClock.now + configuration.connectTimeout
        var delay = Duration.milliseconds(100)
        var attempt = 0
        while true {
            attempt += 1
            do {
                let connection = try await PostgresConnection.connect(
                    configuration: PostgresConnection.Configuration(
                        host: configuration.host, port: configuration.port, username: configuration.username,
                        password: configuration.password, database: configuration.database,
                        tls: configuration.requireTLS ? .require(try .init(configuration: .makeClientConfiguration())) : .disable),
                    id: 0, logger: logger)
                do {
                    try await Schema.migrate(connection, schema: configuration.schema, logger: logger)
                } catch {
                    try? await connection.close()
                    throw Self.storeError(error, doing: "migrate the schema '\(configuration.schema)' at \(configuration.displayURL)")
                }
                try? await connection.close()
                return
            } catch let error as ContinuumError {
                throw error
            } catch {
                let failure = storeError(error, doing: "connect to \(configuration.displayURL)")
                // Refusals the server made on purpose do not go away by waiting.
                if let state = (error as? PSQLError)?.serverInfo?[.sqlState], state.hasPrefix("28") || state == "3D000" || state.hasPrefix("42") {
                    throw failure
                }
                guard ContinuousClock.now + delay < deadline else {
                    throw ContinuumError(
                        .storageFailure,
                        "PostgreSQL at \(configuration.displayURL) could not be reached in \(configuration.connectTimeout) (\(attempt) attempts): \(failure.message)",
                        cause: error)
                }
                logger.notice(
                    "PostgreSQL not reachable yet; retrying",
                    metadata: ["continuum.store": "\(configuration.displayURL)", "continuum.attempt": "\(attempt)", "continuum.error": "\(failure.message)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }

    /// A ``ContinuumError`` for a failure of PostgreSQL or of the connection to it.
    static func storeError(_ error: any Error, doing what: String, workflowID: String? = nil) -> ContinuumError {
        if let error = error as? ContinuumError { return error }
        if let error = error as? PostgresTransactionError {
            return storeError(error.closureError ?? error.beginError ?? error.commitError ?? error.rollbackError ?? error, doing: what, workflowID: workflowID)
        }
        if let error = error as? ConnectionGone {
            return ContinuumError(.storeUnavailable, "Could not \(what): \(error.description).", workflowID: workflowID, cause: error)
        }
        guard let error = error as? PSQLError else {
            return ContinuumError(.storageFailure, "Could not \(what): \(error)", workflowID: workflowID, cause: error)
        }
        if let info = error.serverInfo {
            let state = info[.sqlState] ?? "?"
            let message = info[.message] ?? "\(error.code)"
            let reason: String
            switch state {
            case "28P01", "28000": reason = "the server refused the credentials (\(message))"
            case "3D000": reason = "the database does not exist (\(message))"
            case "53100": return ContinuumError(.storageFull, "Could not \(what): the database's disk is full (\(message)).", workflowID: workflowID, cause: error)
            // Passing conditions: the server is shutting down or restarting, refuses connections
            // for now, ran out of connection slots, timed a statement out, ended a session that
            // idled in a transaction (25P03: this process was paused), or chose this transaction
            // as a deadlock or serialization victim. Nothing was committed.
            case "57014", "57P01", "57P02", "57P03", "53300", "40001", "40P01", "25P03":
                let why = state == "57014" ? "a statement ran past statement_timeout" : "PostgreSQL error \(state)"
                return ContinuumError(.storeUnavailable, "Could not \(what): \(why) (\(message)).", workflowID: workflowID, cause: error)
            case _ where state.hasPrefix("08"):
                return ContinuumError(.storeUnavailable, "Could not \(what): connection failure \(state) (\(message)).", workflowID: workflowID, cause: error)
            default: reason = "PostgreSQL error \(state): \(message)"
            }
            return ContinuumError(.storageFailure, "Could not \(what): \(reason).", workflowID: workflowID, cause: error)
        }
        switch error.code {
        case .connectionError:
            return ContinuumError(
                .storeUnavailable, "Could not \(what): the connection failed (\(error.underlying.map { "\($0)" } ?? "no detail")).",
                workflowID: workflowID, cause: error)
        case .serverClosedConnection, .clientClosedConnection, .uncleanShutdown:
            return ContinuumError(.storeUnavailable, "Could not \(what): the connection to PostgreSQL closed.", workflowID: workflowID, cause: error)
        case .poolClosed:
            return ContinuumError(.storeClosed, "Could not \(what): the store is closed.", workflowID: workflowID, cause: error)
        default:
            return ContinuumError(.storageFailure, "Could not \(what): \(error.code).", workflowID: workflowID, cause: error)
        }
    }

    // MARK: Writes

    public nonisolated(nonsending) func create(_ request: CreateRequest) async throws(ContinuumError) -> CreateOutcome {
        try await withUnsafeContinuation { continuation in
            submit(.create(request, continuation))
        }.get()
    }

    public nonisolated(nonsending) func append(_ request: AppendRequest) async throws(ContinuumError) {
        try await withUnsafeContinuation { continuation in
            submit(.append(request, continuation))
        }.get()
    }

    private func submit(_ submission: Submission) {
        let (accepted, writer) = queue.withLock { queue -> (Bool, CheckedContinuation<Void, Never>?) in
            guard !queue.closed else { return (false, nil) }
            queue.pending.append(submission)
            defer { queue.writerWaiting = nil }
            return (true, queue.writerWaiting)
        }
        guard accepted else {
            submission.fail(ContinuumError(.storeClosed, "The PostgreSQL store is closed; nothing was written."))
            return
        }
        writer?.resume()
    }

    /// The next batch, waiting for one; `nil` once the store is closed and nothing is left.
    private func nextBatch() async -> [Submission]? {
        while true {
            enum Next { case batch([Submission]), done, wait }
            let next = queue.withLock { queue -> Next in
                if !queue.pending.isEmpty {
                    let count = min(queue.pending.count, configuration.maxBatch)
                    let batch = Array(queue.pending.prefix(count))
                    queue.pending.removeFirst(count)
                    return .batch(batch)
                }
                return queue.closed ? .done : .wait
            }
            switch next {
            case .batch(let batch): return batch
            case .done: return nil
            case .wait:
                await withCheckedContinuation { continuation in
                    let resumeNow = queue.withLock { queue -> Bool in
                        if !queue.pending.isEmpty || queue.closed { return true }
                        queue.writerWaiting = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    private func runWriter() async {
        while let batch = await nextBatch() {
            await commit(batch)
        }
    }

    // MARK: Ownership

    public func claim(_ id: String, owner: OwnerID) async throws(ContinuumError) -> Claim? {
        try ensureOpen()
        var query = PostgresQuery(
            unsafeSQL: """
                WITH now AS (SELECT \(nowSQL(1)) AS ns),
                old AS (SELECT stream, parked FROM \(schema).workflows WHERE id = $2 FOR UPDATE),
                claimed AS (
                    UPDATE \(schema).workflows w
                    SET owner = $3, epoch = w.epoch + 1, lease_expiry = now.ns + $4, parked = false
                    FROM old, now
                    WHERE w.stream = old.stream AND (w.owner IS NULL OR w.owner = $3 OR w.lease_expiry <= now.ns)
                    RETURNING w.stream, w.epoch, old.parked
                ),
                counted AS (
                    INSERT INTO \(schema).counts (status, shard, count)
                    SELECT 'parked', $5, -1 FROM claimed WHERE claimed.parked
                    ON CONFLICT (status, shard) DO UPDATE SET count = \(schema).counts.count + excluded.count
                )
                SELECT stream, epoch FROM claimed
                """)
        query.binds.append(clockNow)
        query.binds.append(ByteBuffer(bytes: Array(id.utf8)))
        query.binds.append(owner.rawValue)
        query.binds.append(configuration.leaseDuration.nanoseconds)
        query.binds.append(shard)
        do {
            for (stream, epoch) in try await fetch(query).decode((Int64, Int64).self) {
                return Claim(stream: StreamID(rawValue: UInt64(stream)), token: FencingToken(owner: owner, epoch: UInt64(epoch)))
            }
            return nil
        } catch {
            throw Self.storeError(error, doing: "claim workflow '\(id)'", workflowID: id)
        }
    }

    public func renew(_ claims: [Claim]) async throws(ContinuumError) -> [Claim] {
        try ensureOpen()
        guard !claims.isEmpty else { return [] }
        // The rows are locked in stream order first, as the writer locks them: an UPDATE joined
        // with the claims locks them in whatever order its plan reads them, and deadlocked with
        // the writer's batches (PostgreSQL aborted one after a second; a batch of 1,024 appends
        // failed with it).
        var query = PostgresQuery(
            unsafeSQL: """
                WITH now AS (SELECT \(nowSQL(1)) AS ns),
                c AS (SELECT * FROM unnest($3::bigint[], $4::text[], $5::bigint[]) AS c(stream, owner, epoch)),
                held AS (
                    SELECT c.stream, c.owner, c.epoch FROM \(schema).workflows w JOIN c ON w.stream = c.stream, now
                    WHERE w.owner = c.owner AND w.epoch = c.epoch
                    ORDER BY w.stream
                    FOR UPDATE OF w
                )
                UPDATE \(schema).workflows w SET lease_expiry = now.ns + $2
                FROM now, held
                WHERE w.stream = held.stream
                RETURNING held.stream, held.owner, held.epoch
                """)
        query.binds.append(clockNow)
        query.binds.append(configuration.leaseDuration.nanoseconds)
        query.binds.append(claims.map { Int64($0.stream.rawValue) })
        query.binds.append(claims.map(\.token.owner.rawValue))
        query.binds.append(claims.map { Int64($0.token.epoch) })
        do {
            var renewed = Set<Claim>()
            for (stream, owner, epoch) in try await fetch(query).decode((Int64, String, Int64).self) {
                renewed.insert(Claim(stream: StreamID(rawValue: UInt64(stream)), token: FencingToken(owner: OwnerID(owner), epoch: UInt64(epoch))))
            }
            return claims.filter { !renewed.contains($0) }
        } catch {
            throw Self.storeError(error, doing: "renew \(claims.count) claims")
        }
    }

    public func claimAvailable(owner: OwnerID, overdue: Duration, limit: Int) async throws(ContinuumError) -> [ClaimedWorkflow] {
        try ensureOpen()
        guard limit > 0 else { return [] }
        // Two kinds of rows, each locked with SKIP LOCKED so that runtimes claiming at once share
        // them out instead of queueing behind each other: running rows whose lease ran out (an
        // ordered range of the index on lease expiry: no sort, however many there are), and
        // parked rows with an overdue timer (by the due index). The update finds its rows by
        // primary key (`= ANY`): joined, the planner hashed the whole table for each page.
        // A row this owner holds under a lapsed lease keeps its token (its lease is extended):
        // a new epoch would fence off the run this runtime may still be making of it.
        var query = PostgresQuery(
            unsafeSQL: """
                WITH now AS (SELECT \(nowSQL(1)) AS ns),
                expired AS (
                    SELECT w.stream, false AS parked FROM \(schema).workflows w
                    WHERE w.status = 'running' AND NOT w.parked AND w.lease_expiry <= (SELECT ns FROM now)
                    ORDER BY w.lease_expiry
                    LIMIT $5
                    FOR UPDATE OF w SKIP LOCKED
                ),
                unowned AS (
                    SELECT w.stream, false AS parked FROM \(schema).workflows w
                    WHERE w.status = 'running' AND NOT w.parked AND w.lease_expiry IS NULL
                    LIMIT $5
                    FOR UPDATE OF w SKIP LOCKED
                ),
                due AS (
                    SELECT w.stream, true AS parked FROM \(schema).workflows w
                    WHERE w.stream IN (
                          SELECT t.stream FROM \(schema).timers t WHERE t.due <= (SELECT ns FROM now) - $4 ORDER BY t.due LIMIT $5 * 4)
                      AND w.status = 'running' AND w.parked AND w.owner IS NULL
                    LIMIT $5
                    FOR UPDATE OF w SKIP LOCKED
                ),
                picked AS (
                    SELECT * FROM (
                        SELECT * FROM expired
                        UNION ALL SELECT * FROM unowned
                        UNION ALL SELECT * FROM due WHERE (SELECT count(*) FROM expired) < $5
                    ) p
                    LIMIT $5
                ),
                claimed AS (
                    UPDATE \(schema).workflows w
                    SET owner = $2, epoch = CASE WHEN w.owner = $2 THEN w.epoch ELSE w.epoch + 1 END,
                        lease_expiry = (SELECT ns FROM now) + $3, parked = false
                    WHERE w.stream = ANY(ARRAY(SELECT stream FROM picked))
                    RETURNING w.stream, w.id, w.epoch
                ),
                result AS (SELECT c.stream, c.id, c.epoch, p.parked FROM claimed c JOIN picked p USING (stream)),
                counted AS (
                    INSERT INTO \(schema).counts (status, shard, count)
                    SELECT 'parked', $6, -count(*) FROM result WHERE result.parked HAVING count(*) > 0
                    ON CONFLICT (status, shard) DO UPDATE SET count = \(schema).counts.count + excluded.count
                )
                SELECT stream, id, epoch FROM result
                """)
        query.binds.append(clockNow)
        query.binds.append(owner.rawValue)
        query.binds.append(configuration.leaseDuration.nanoseconds)
        query.binds.append(overdue.nanoseconds)
        query.binds.append(limit)
        query.binds.append(shard)
        do {
            var claimed: [ClaimedWorkflow] = []
            for (stream, id, epoch) in try await fetch(query).decode((Int64, ByteBuffer, Int64).self) {
                claimed.append(
                    ClaimedWorkflow(
                        id: String(decoding: id.readableBytesView, as: UTF8.self),
                        claim: Claim(stream: StreamID(rawValue: UInt64(stream)), token: FencingToken(owner: owner, epoch: UInt64(epoch)))))
            }
            return claimed
        } catch {
            throw Self.storeError(error, doing: "claim available workflows")
        }
    }

    // MARK: Reads

    public func load(id: String) async throws(ContinuumError) -> StoredWorkflow? {
        try ensureOpen()
        // One round trip: the summary on every row, beside each event (a recovery loads
        // every workflow it resumes, so a second statement per workflow was half its reads).
        var query = PostgresQuery(
            unsafeSQL: """
                SELECT w.stream, w.id, w.type, w.status, w.created_at, w.updated_at, e.sequence, e.value
                FROM \(schema).workflows w LEFT JOIN \(schema).events e ON e.stream = w.stream
                WHERE w.id = $1 ORDER BY e.sequence
                """)
        query.binds.append(ByteBuffer(bytes: Array(id.utf8)))
        do {
            var summary: ListedWorkflow?
            var events: [HistoryEvent] = []
            for (stream, rowID, type, status, created, updated, sequence, value) in try await fetch(query)
                .decode((Int64, ByteBuffer, ByteBuffer, String, Int64, Int64, Int32?, ByteBuffer?).self)
            {
                if summary == nil { summary = try listedWorkflow(stream, rowID, type, status, created, updated) }
                guard let sequence, let value else { continue }
                events.append(
                    try BinaryCodec.decodeEvent(
                        Array(value.readableBytesView), sequence: UInt32(sequence),
                        location: "workflow '\(id)' event \(sequence) in PostgreSQL \(configuration.displayURL)"))
            }
            guard let summary else { return nil }
            return StoredWorkflow(stream: summary.stream, summary: summary.summary, events: events)
        } catch {
            throw Self.storeError(error, doing: "load workflow '\(id)'", workflowID: id)
        }
    }

    public func loadRecent(id: String) async throws(ContinuumError) -> StoredWorkflow? {
        try ensureOpen()
        // One round trip: the snapshot's row (sequence -1) first, then the events after it,
        // each beside the summary, as in `load(id:)`.
        var query = PostgresQuery(
            unsafeSQL: """
                WITH w AS (SELECT stream, id, type, status, created_at, updated_at FROM \(schema).workflows WHERE id = $1),
                s AS (SELECT s.through, s.value FROM \(schema).snapshots s JOIN w ON s.stream = w.stream)
                SELECT w.stream, w.id, w.type, w.status, w.created_at, w.updated_at, -1 AS sequence, s.value, s.through
                FROM w JOIN s ON true
                UNION ALL
                SELECT w.stream, w.id, w.type, w.status, w.created_at, w.updated_at, e.sequence, e.value, NULL
                FROM w LEFT JOIN \(schema).events e ON e.stream = w.stream AND e.sequence >= COALESCE((SELECT through FROM s), 0)
                ORDER BY sequence
                """)
        query.binds.append(ByteBuffer(bytes: Array(id.utf8)))
        do {
            var summary: ListedWorkflow?
            var snapshot: WorkflowSnapshot?
            var events: [HistoryEvent] = []
            for (stream, rowID, type, status, created, updated, sequence, value, through) in try await fetch(query)
                .decode((Int64, ByteBuffer, ByteBuffer, String, Int64, Int64, Int32?, ByteBuffer?, Int32?).self)
            {
                if summary == nil { summary = try listedWorkflow(stream, rowID, type, status, created, updated) }
                guard let sequence, let value else { continue }
                if sequence < 0, let through {
                    snapshot = WorkflowSnapshot(through: UInt32(through), bytes: Array(value.readableBytesView))
                    continue
                }
                events.append(
                    try BinaryCodec.decodeEvent(
                        Array(value.readableBytesView), sequence: UInt32(sequence),
                        location: "workflow '\(id)' event \(sequence) in PostgreSQL \(configuration.displayURL)"))
            }
            guard let summary else { return nil }
            return StoredWorkflow(stream: summary.stream, summary: summary.summary, events: events, snapshot: snapshot)
        } catch {
            throw Self.storeError(error, doing: "load workflow '\(id)'", workflowID: id)
        }
    }

    public func summary(id: String) async throws(ContinuumError) -> WorkflowSummary? {
        try ensureOpen()
        do {
            return try await summaryRow(id: id)?.summary
        } catch {
            throw Self.storeError(error, doing: "read workflow '\(id)'", workflowID: id)
        }
    }

    private static let summaryColumns = "stream, id, type, status, created_at, updated_at"

    private func summaryRow(id: String) async throws -> ListedWorkflow? {
        var query = PostgresQuery(unsafeSQL: "SELECT \(Self.summaryColumns) FROM \(schema).workflows WHERE id = $1")
        query.binds.append(ByteBuffer(bytes: Array(id.utf8)))
        return try await listed(query).first
    }

    private func listed(_ query: PostgresQuery) async throws -> [ListedWorkflow] {
        try await fetch(query).decode((Int64, ByteBuffer, ByteBuffer, String, Int64, Int64).self).map(listedWorkflow)
    }

    private func listedWorkflow(
        _ stream: Int64, _ id: ByteBuffer, _ type: ByteBuffer, _ status: String, _ created: Int64, _ updated: Int64
    ) throws -> ListedWorkflow {
        guard let status = WorkflowStatus(named: status) else {
            throw ContinuumError(.corruptedData, "Workflow stream \(stream) has the unknown status '\(status)' in \(configuration.displayURL).")
        }
        return ListedWorkflow(
            stream: StreamID(rawValue: UInt64(stream)),
            summary: WorkflowSummary(
                id: String(decoding: id.readableBytesView, as: UTF8.self), type: String(decoding: type.readableBytesView, as: UTF8.self),
                status: status, createdAt: created, updatedAt: updated))
    }

    public func list(status: WorkflowStatus?, after: StreamID?, limit: Int) async throws(ContinuumError) -> [ListedWorkflow] {
        try ensureOpen()
        var query = PostgresQuery(
            unsafeSQL: """
                SELECT \(Self.summaryColumns) FROM \(schema).workflows
                WHERE stream > $1 AND ($2::text IS NULL OR status = $2) ORDER BY stream LIMIT $3
                """)
        query.binds.append(Int64(after?.rawValue ?? 0))
        query.binds.append(status?.rawValue)
        query.binds.append(max(0, limit))
        do {
            return try await listed(query)
        } catch {
            throw Self.storeError(error, doing: "list workflows")
        }
    }

    public func runnable(after: StreamID?, limit: Int) async throws(ContinuumError) -> [ListedWorkflow] {
        try ensureOpen()
        var query = PostgresQuery(
            unsafeSQL: """
                SELECT \(Self.summaryColumns) FROM \(schema).workflows
                WHERE status = 'running' AND NOT parked AND stream > $2 AND (owner IS NULL OR lease_expiry <= \(nowSQL(1)))
                ORDER BY stream LIMIT $3
                """)
        query.binds.append(clockNow)
        query.binds.append(Int64(after?.rawValue ?? 0))
        query.binds.append(max(0, limit))
        do {
            return try await listed(query)
        } catch {
            throw Self.storeError(error, doing: "list runnable workflows")
        }
    }

    public func timers(after: DueTimer?, limit: Int) async throws(ContinuumError) -> [DueTimer] {
        try ensureOpen()
        var query = PostgresQuery(
            unsafeSQL: "SELECT due, stream, id FROM \(schema).timers WHERE (due, stream) > ($1, $2) ORDER BY due, stream LIMIT $3")
        query.binds.append(after?.due ?? .min)
        query.binds.append(after.map { Int64($0.stream.rawValue) } ?? .min)
        query.binds.append(max(0, limit))
        do {
            var timers: [DueTimer] = []
            for (due, stream, id) in try await fetch(query).decode((Int64, Int64, ByteBuffer).self) {
                timers.append(DueTimer(due: due, stream: StreamID(rawValue: UInt64(stream)), id: String(decoding: id.readableBytesView, as: UTF8.self)))
            }
            return timers
        } catch {
            throw Self.storeError(error, doing: "read the timer index")
        }
    }

    public func counts() async throws(ContinuumError) -> StatusCounts {
        try ensureOpen()
        do {
            var counts = StatusCounts()
            let query = PostgresQuery(unsafeSQL: "SELECT status, sum(count)::bigint FROM \(schema).counts GROUP BY status")
            for (status, count) in try await fetch(query).decode((String, Int64).self) where count != 0 {
                if status == "parked" {
                    counts.parked = Int(count)
                } else if let status = WorkflowStatus(named: status) {
                    counts.byStatus[status] = Int(count)
                }
            }
            return counts
        } catch {
            throw Self.storeError(error, doing: "count workflows")
        }
    }

    public func close() async {
        queue.withLock { $0.closed = true }
        let waiting = queue.withLock { queue in
            defer { queue.writerWaiting = nil }
            return queue.writerWaiting
        }
        waiting?.resume()
        guard let tasks = tasks.withLock({ tasks in
            defer { tasks = nil }
            return tasks
        }) else { return }
        await tasks.writer.value
        tasks.listener.cancel()
        await tasks.listener.value
        inboxSubscribers.finishAll()
        queueSubscribers.finishAll()
        tasks.client.cancel()
        await tasks.client.value
    }

    func ensureOpen() throws(ContinuumError) {
        if queue.withLock({ $0.closed }) {
            throw ContinuumError(.storeClosed, "The PostgreSQL store is closed; nothing was read or written.")
        }
    }

    // MARK: Time

    /// The configured clock's time, or `nil` to use the database's (see ``nowSQL(_:)``).
    var clockNow: Int64? { configuration.clock?.now() }

    /// SQL for "now" in nanoseconds since 1970: the bound parameter `$index` when the store runs
    /// on a configured clock, else the database server's clock.
    func nowSQL(_ index: Int) -> String {
        "COALESCE($\(index)::bigint, (extract(epoch FROM clock_timestamp()) * 1000000000)::bigint)"
    }

    // MARK: Test hooks

    /// Damages the stored bytes of event `sequence` of workflow `id` (flips one bit of its last
    /// byte), as a failing disk would.
    @_spi(Testing) public func damage(id: String, sequence: UInt32) async throws {
        var query = PostgresQuery(
            unsafeSQL: """
                UPDATE \(schema).events e SET value = set_byte(e.value, length(e.value) - 1, get_byte(e.value, length(e.value) - 1) # 64)
                FROM \(schema).workflows w WHERE w.id = $1 AND e.stream = w.stream AND e.sequence = $2
                """)
        query.binds.append(ByteBuffer(bytes: Array(id.utf8)))
        query.binds.append(Int32(sequence))
        _ = try await fetch(query)
    }

    /// Runs `sql` on a pooled connection (tests reach into the tables with it).
    @_spi(Testing) public func execute(_ sql: String) async throws(ContinuumError) {
        do {
            _ = try await fetch(PostgresQuery(unsafeSQL: sql.replacingOccurrences(of: "{schema}", with: schema)))
        } catch {
            throw Self.storeError(error, doing: "run \(sql)")
        }
    }

    /// Drops the store's schema and everything in it. For tests and throwaway deployments.
    @_spi(Testing) public func dropSchema() async throws {
        _ = try await fetch(PostgresQuery(unsafeSQL: "DROP SCHEMA IF EXISTS \(schema) CASCADE"))
    }
}

extension PostgresStore.Submission {
    func fail(_ error: ContinuumError) {
        switch self {
        case .create(_, let continuation): continuation.resume(returning: .failure(error))
        case .append(_, let continuation): continuation.resume(returning: .failure(error))
        }
    }
}

extension Duration {
    /// The duration in nanoseconds, saturating.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? (seconds < 0 ? .min : .max) : scaled &+ attoseconds / 1_000_000_000
    }

    var milliseconds: Int64 { nanoseconds / 1_000_000 }
}
