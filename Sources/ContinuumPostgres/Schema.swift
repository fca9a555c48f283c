import Continuum
import Logging
import PostgresNIO

/// The store's tables, created and migrated by the store itself.
///
/// Every migration has a version; `migrations` records the ones applied. Opening a store whose
/// schema is newer than this code knows is refused, so an old build never writes to tables it
/// does not understand. Migrations run in one transaction under an advisory lock, so processes
/// opening the store together apply each once.
enum Schema {
    /// The newest schema this code knows.
    static var version: Int { migrations.count }

    /// The migrations, in order; migration `n` (from 1) takes the schema from `n - 1` to `n`.
    static let migrations: [(description: String, sql: @Sendable (String) -> [String])] = [
        (
            "workflows, events, timers and status counts",
            { s in
                [
                    """
                    CREATE TABLE \(s).workflows (
                        stream bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                        id bytea NOT NULL UNIQUE,
                        type bytea NOT NULL,
                        status text NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'suspended', 'cancelled')),
                        created_at bigint NOT NULL,
                        updated_at bigint NOT NULL,
                        event_count integer NOT NULL,
                        owner text,
                        epoch bigint NOT NULL,
                        lease_expiry bigint,
                        parked boolean NOT NULL DEFAULT false
                    )
                    """,
                    "CREATE INDEX workflows_by_status ON \(s).workflows (status, stream)",
                    "CREATE INDEX workflows_runnable ON \(s).workflows (stream) WHERE status = 'running' AND NOT parked",
                    """
                    CREATE TABLE \(s).events (
                        stream bigint NOT NULL,
                        sequence integer NOT NULL,
                        value bytea NOT NULL,
                        PRIMARY KEY (stream, sequence)
                    )
                    """,
                    """
                    CREATE TABLE \(s).timers (
                        due bigint NOT NULL,
                        stream bigint NOT NULL,
                        id bytea NOT NULL,
                        PRIMARY KEY (due, stream)
                    )
                    """,
                    // Counts by status, sharded so that processes committing together do not queue
                    // on one row; `counts()` sums the shards. The status `parked` counts parked
                    // workflows (also counted as running).
                    """
                    CREATE TABLE \(s).counts (
                        status text NOT NULL,
                        shard integer NOT NULL,
                        count bigint NOT NULL,
                        PRIMARY KEY (status, shard)
                    )
                    """,
                ]
            }
        ),
        (
            "the inbox: events and cancellations for workflows another process runs",
            { s in
                [
                    """
                    CREATE TABLE \(s).inbox (
                        number bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                        stream bigint NOT NULL,
                        id bytea NOT NULL,
                        kind text NOT NULL CHECK (kind IN ('event', 'cancel')),
                        name text,
                        payload bytea,
                        dedup_key text,
                        requested_by text,
                        reason text,
                        posted_at timestamptz NOT NULL DEFAULT now(),
                        settled boolean NOT NULL DEFAULT false,
                        sequence integer,
                        duplicate boolean,
                        error_code text,
                        error_message text
                    )
                    """,
                    "CREATE INDEX inbox_pending ON \(s).inbox (stream, number) WHERE NOT settled",
                ]
            }
        ),
        (
            "runnable workflows by lease expiry, for claims of work nobody does",
            { s in
                ["CREATE INDEX workflows_lease ON \(s).workflows (lease_expiry) WHERE status = 'running' AND NOT parked"]
            }
        ),
        (
            "snapshots: each workflow's folded state after its first `through` events, which a wake loads instead of them",
            { s in
                ["CREATE TABLE \(s).snapshots (stream bigint PRIMARY KEY, through integer NOT NULL, value bytea NOT NULL)"]
            }
        ),
        (
            "queue entries and starts, so that queue limits hold across processes",
            { s in
                [
                    // An entry counts while its workflow's claim is current; an `admitted`
                    // entry holds a slot. `key` makes a retried join idempotent.
                    """
                    CREATE TABLE \(s).queue_entries (
                        ticket bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                        key text NOT NULL UNIQUE,
                        queue text NOT NULL,
                        partition text,
                        priority integer NOT NULL,
                        since bigint NOT NULL,
                        within boolean NOT NULL,
                        admitted boolean NOT NULL DEFAULT false,
                        stream bigint NOT NULL,
                        owner text NOT NULL,
                        epoch bigint NOT NULL
                    )
                    """,
                    "CREATE INDEX queue_entries_order ON \(s).queue_entries (queue, admitted, priority DESC, since, ticket)",
                    "CREATE INDEX queue_entries_within ON \(s).queue_entries (queue) WHERE within",
                    "CREATE TABLE \(s).queue_starts (queue text NOT NULL, at bigint NOT NULL)",
                    "CREATE INDEX queue_starts_by_queue ON \(s).queue_starts (queue, at)",
                    PostgresStore.admitFunction(s),
                ]
            }
        ),
    ]

    /// Creates the schema or brings it up to ``version``.
    ///
    /// - Throws: ``ContinuumError/Code/storageFailure`` naming both versions when the database's
    ///   schema is newer than this code.
    static func migrate(_ connection: PostgresConnection, schema: String, logger: Logger) async throws {
        let s = "\"\(schema)\""
        try await connection.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \(s)"), logger: logger).drain()
        try await connection.withTransaction(logger: logger) { connection in
            // One migrator at a time per schema.
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\(schema)))", logger: logger).drain()
            try await connection.query(
                PostgresQuery(
                    unsafeSQL: "CREATE TABLE IF NOT EXISTS \(s).migrations (version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"),
                logger: logger
            ).drain()
            var current = 0
            for try await version in try await connection.query(PostgresQuery(unsafeSQL: "SELECT COALESCE(max(version), 0) FROM \(s).migrations"), logger: logger)
                .decode(Int.self) { current = version }
            guard current <= version else {
                throw ContinuumError(
                    .storageFailure,
                    "The schema '\(schema)' is at version \(current), newer than this build knows (\(version)): a newer Continuum migrated it. Run that version, or use another schema.")
            }
            for number in (current + 1)..<(version + 1) {
                let migration = migrations[number - 1]
                for statement in migration.sql(s) {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger).drain()
                }
                var insert = PostgresQuery(unsafeSQL: "INSERT INTO \(s).migrations (version, description) VALUES ($1, $2)")
                insert.binds.append(number)
                insert.binds.append(migration.description)
                try await connection.query(insert, logger: logger).drain()
                logger.info("Migrated the PostgreSQL schema", metadata: ["continuum.schema": "\(schema)", "continuum.schema.version": "\(number)"])
            }
        }
    }
}

extension PostgresRowSequence {
    /// Reads the rows to the end, so that an error the server sends after the first row is
    /// thrown here rather than lost.
    func drain() async throws {
        for try await _ in self {}
    }
}
