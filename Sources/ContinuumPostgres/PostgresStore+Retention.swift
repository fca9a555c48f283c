public import Continuum
import PostgresNIO

extension PostgresStore {
    /// How many workflows one transaction of ``deleteFinished(before:progress:)`` deletes.
    static let deletionBatch = 1_000

    /// Deletes every workflow that finished (completed, failed or cancelled) before `cutoff`
    /// (nanoseconds since 1970) with its events and timers; returns how many. Their ids can be
    /// used again. Running and suspended workflows are never touched, nor a finished one that a
    /// live claim holds (a process resetting or resuming it); the next run deletes that one.
    ///
    /// Works in transactions of a thousand workflows, each of which also takes them off the
    /// status counts, so that other processes can go on using the store meanwhile; `progress`
    /// gets the running total after each.
    ///
    /// ```sh
    /// continuum gc --finished-before 30d --postgres "$CONTINUUM_POSTGRES_URL"
    /// ```
    ///
    /// - Throws: ``ContinuumError/Code/storeUnavailable`` or ``ContinuumError/Code/storageFailure``
    ///   naming the failure; the transactions committed before it stay deleted.
    public func deleteFinished(before cutoff: Int64, progress: (Int) -> Void = { _ in }) async throws(ContinuumError) -> Int {
        var deleted = 0
        while true {
            let batch = try await deleteFinishedBatch(before: cutoff)
            // A batch can come back short when a workflow it picked changed meanwhile: only an
            // empty one means that nothing is left.
            guard batch > 0 else { return deleted }
            deleted += batch
            progress(deleted)
        }
    }

    /// Deletes up to ``deletionBatch`` finished workflows, their events and timers, and takes
    /// them off the counts, in one statement (one transaction); returns how many.
    ///
    /// The rows are locked in stream order (`FOR UPDATE`), as the writer locks them, and the
    /// status is checked again on the locked row: a workflow that a reset made running again
    /// after the statement started is left alone.
    private func deleteFinishedBatch(before cutoff: Int64) async throws(ContinuumError) -> Int {
        var query = PostgresQuery(
            unsafeSQL: """
                WITH now AS (SELECT \(nowSQL(1)) AS ns),
                doomed AS (
                    SELECT w.stream FROM \(schema).workflows w, now
                    WHERE w.status IN ('completed', 'failed', 'cancelled') AND w.updated_at < $2
                        AND (w.owner IS NULL OR w.lease_expiry IS NULL OR w.lease_expiry <= now.ns)
                    ORDER BY w.stream LIMIT $3
                    FOR UPDATE OF w
                ),
                gone_events AS (DELETE FROM \(schema).events e USING doomed d WHERE e.stream = d.stream),
                gone_timers AS (DELETE FROM \(schema).timers t USING doomed d WHERE t.stream = d.stream),
                gone_snapshots AS (DELETE FROM \(schema).snapshots s USING doomed d WHERE s.stream = d.stream),
                gone AS (DELETE FROM \(schema).workflows w USING doomed d WHERE w.stream = d.stream RETURNING w.status, w.parked),
                counted AS (
                    INSERT INTO \(schema).counts (status, shard, count)
                    SELECT c.status, $4, -count(*)
                    FROM (SELECT status FROM gone UNION ALL SELECT 'parked' FROM gone WHERE parked) AS c(status)
                    GROUP BY c.status ORDER BY c.status
                    ON CONFLICT (status, shard) DO UPDATE SET count = \(schema).counts.count + excluded.count
                )
                SELECT count(*) FROM gone
                """)
        query.binds.append(clockNow)
        query.binds.append(cutoff)
        query.binds.append(Self.deletionBatch)
        query.binds.append(shard)
        do {
            var deleted: Int64 = 0
            for count in try await fetch(query).decode(Int64.self) { deleted = count }
            return Int(deleted)
        } catch {
            throw Self.storeError(error, doing: "delete workflows that finished before \(cutoff) from \(configuration.displayURL)")
        }
    }
}
