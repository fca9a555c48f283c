public import Continuum
import PostgresNIO

/// Queue slots shared by every process on the schema (``SharedQueueStore``): the entries live
/// in `queue_entries`, the starts of rate-limited queues in `queue_starts`, and one pass is one
/// call of the schema's `queue_admit` function, so a slot handed back, a new entry and the
/// admissions they allow cost one round trip.
extension PostgresStore: SharedQueueStore {
    public var sharedQueues: (any SharedQueueStore)? { self }

    public func admit(
        queue: String, limits: QueueLimits, owner: OwnerID, joining: [QueueRequest], leaving: [UInt64]
    ) async throws(ContinuumError) -> QueueAdmission {
        try ensureOpen()
        if let stray = joining.first(where: { $0.entry.name != queue }) {
            throw ContinuumError(.invalidArgument, "An entry for queue '\(stray.entry.name)' cannot join queue '\(queue)'.")
        }
        var query = PostgresQuery(
            unsafeSQL: """
                SELECT tickets, granted, retry_after FROM \(schema).queue_admit(
                    $1, $2, $3::bigint[], $4, $5, $6, $7, \(nowSQL(8)),
                    $9::text[], $10::boolean[], $11::integer[], $12::bigint[], $13::boolean[], $14::bigint[], $15::text[], $16::bigint[], $17)
                """)
        query.binds.append(queue)
        query.binds.append(owner.rawValue)
        query.binds.append(leaving.map { Int64(bitPattern: $0) })
        query.binds.append(limits.concurrency.map(Int32.init))
        query.binds.append(limits.perPartition.map(Int32.init))
        query.binds.append(limits.rate.map { Int32($0.count) })
        query.binds.append(limits.rate.map(\.window.nanoseconds))
        query.binds.append(clockNow)
        query.binds.append(joining.map { $0.entry.partition ?? "" })
        query.binds.append(joining.map { $0.entry.partition != nil })
        query.binds.append(joining.map { Int32(clamping: $0.entry.priority) })
        query.binds.append(joining.map(\.since))
        query.binds.append(joining.map(\.within))
        query.binds.append(joining.map { Int64($0.claim.stream.rawValue) })
        query.binds.append(joining.map(\.claim.token.owner.rawValue))
        query.binds.append(joining.map { Int64($0.claim.token.epoch) })
        query.binds.append(noticeChannel)
        do {
            for (tickets, granted, retryAfter) in try await fetch(query).decode(([Int64], [Int64], Int64?).self) {
                guard tickets.count == joining.count else {
                    throw ContinuumError(.storageFailure, "queue_admit returned \(tickets.count) tickets for \(joining.count) entries")
                }
                return QueueAdmission(
                    tickets: tickets.map { UInt64($0) }, admitted: granted.map { UInt64($0) }, retryAfter: retryAfter.map { .nanoseconds(max($0, 1)) })
            }
            throw ContinuumError(.storageFailure, "queue_admit returned no row")
        } catch {
            throw Self.storeError(error, doing: "admit work to queue '\(queue)'")
        }
    }

    public func queueLoad() async throws(ContinuumError) -> [String: QueueLoad] {
        try ensureOpen()
        var query = PostgresQuery(
            unsafeSQL: """
                SELECT q.queue, q.partition, q.admitted, count(*) FROM \(schema).queue_entries q
                JOIN \(schema).workflows w ON w.stream = q.stream AND w.owner = q.owner AND w.epoch = q.epoch AND w.lease_expiry > \(nowSQL(1))
                GROUP BY q.queue, q.partition, q.admitted
                """)
        query.binds.append(clockNow)
        do {
            var load: [String: QueueLoad] = [:]
            for (queue, partition, admitted, count) in try await fetch(query).decode((String, String?, Bool, Int64).self) {
                var entry = load[queue] ?? QueueLoad(running: 0, waiting: 0, partitions: [:])
                if admitted {
                    entry.running += Int(count)
                    if let partition { entry.partitions[partition, default: 0] += Int(count) }
                } else {
                    entry.waiting += Int(count)
                }
                load[queue] = entry
            }
            return load
        } catch {
            throw Self.storeError(error, doing: "read the queues' load")
        }
    }

    /// The schema's `queue_admit` function: one pass over one queue (see ``SharedQueueStore``).
    ///
    /// Passes on a queue are serialized by a transaction-scoped advisory lock. An entry counts
    /// while its workflow's claim is current and its lease runs: the entries holding slots are
    /// checked when the queue looks full (or has partition limits), and a waiting entry when
    /// the walk reaches it, so a pass costs what it admits rather than the queue's length, and a
    /// dead process's slots come back within its lease with no one cleaning up after it. The
    /// walk stops at the first entry that could go but is another owner's (and tells that owner),
    /// and when the rate's window is full (then `retry_after` says when its oldest start leaves it).
    static func admitFunction(_ s: String) -> String {
        let live = """
            EXISTS (SELECT 1 FROM \(s).workflows w
                    WHERE w.stream = q.stream AND w.owner = q.owner AND w.epoch = q.epoch AND w.lease_expiry > p_now)
            """
        return """
            CREATE FUNCTION \(s).queue_admit(
                p_queue text, p_owner text, p_leaving bigint[], p_concurrency integer, p_per_partition integer,
                p_rate integer, p_window bigint, p_now bigint,
                p_partitions text[], p_has_partitions boolean[], p_priorities integer[], p_sinces bigint[], p_withins boolean[],
                p_streams bigint[], p_owners text[], p_epochs bigint[], p_channel text,
                OUT tickets bigint[], OUT granted bigint[], OUT retry_after bigint
            ) LANGUAGE plpgsql AS $fn$
            DECLARE
                v_running integer;
                v_starts integer := 0;
                v_has_within boolean;
                v_live boolean;
                e record;
            BEGIN
                granted := '{}';
                tickets := '{}';
                PERFORM pg_advisory_xact_lock(hashtext('\(s).queue.' || p_queue));
                IF cardinality(p_leaving) > 0 THEN
                    DELETE FROM \(s).queue_entries q WHERE q.ticket = ANY(p_leaving);
                END IF;
                IF cardinality(p_streams) > 0 THEN
                    WITH inserted AS (
                        INSERT INTO \(s).queue_entries (queue, partition, priority, since, within, stream, owner, epoch)
                        SELECT p_queue, CASE WHEN j.has THEN j.part END, j.prio, j.at, j.inside, j.str, j.own, j.ep
                        FROM unnest(p_partitions, p_has_partitions, p_priorities, p_sinces, p_withins, p_streams, p_owners, p_epochs)
                            WITH ORDINALITY AS j(part, has, prio, at, inside, str, own, ep, n)
                        ORDER BY j.n
                        RETURNING queue_entries.ticket
                    )
                    SELECT COALESCE(array_agg(i.ticket ORDER BY i.ticket), '{}') INTO tickets FROM inserted i;
                END IF;
                SELECT count(*) INTO v_running FROM \(s).queue_entries q WHERE q.queue = p_queue AND q.admitted;
                IF (p_concurrency IS NOT NULL AND v_running >= p_concurrency) OR p_per_partition IS NOT NULL THEN
                    -- Slots held by the dead come back before the limits are applied.
                    DELETE FROM \(s).queue_entries q WHERE q.queue = p_queue AND q.admitted AND NOT \(live);
                    SELECT count(*) INTO v_running FROM \(s).queue_entries q WHERE q.queue = p_queue AND q.admitted;
                END IF;
                IF p_rate IS NOT NULL THEN
                    DELETE FROM \(s).queue_starts st WHERE st.queue = p_queue AND st.at <= p_now - p_window;
                    SELECT count(*) INTO v_starts FROM \(s).queue_starts st WHERE st.queue = p_queue;
                END IF;
                SELECT EXISTS (SELECT 1 FROM \(s).queue_entries q WHERE q.queue = p_queue AND q.within) INTO v_has_within;
                FOR e IN
                    SELECT q.ticket, q.partition, q.within, q.owner, q.stream, q.epoch FROM \(s).queue_entries q
                    WHERE q.queue = p_queue AND NOT q.admitted
                    ORDER BY q.priority DESC, q.since, q.ticket
                LOOP
                    IF NOT e.within THEN
                        IF p_concurrency IS NOT NULL AND v_running >= p_concurrency THEN
                            IF v_has_within THEN CONTINUE; END IF;
                            EXIT;
                        END IF;
                        IF p_per_partition IS NOT NULL AND e.partition IS NOT NULL AND (
                            SELECT count(*) FROM \(s).queue_entries q
                            WHERE q.queue = p_queue AND q.admitted AND q.partition = e.partition) >= p_per_partition THEN
                            CONTINUE;
                        END IF;
                    END IF;
                    SELECT EXISTS (SELECT 1 FROM \(s).workflows w
                        WHERE w.stream = e.stream AND w.owner = e.owner AND w.epoch = e.epoch AND w.lease_expiry > p_now) INTO v_live;
                    IF NOT v_live THEN
                        DELETE FROM \(s).queue_entries q WHERE q.ticket = e.ticket;
                        CONTINUE;
                    END IF;
                    IF e.owner <> p_owner THEN
                        -- Its owner admits it: tell that owner now rather than at its next look.
                        PERFORM pg_notify(p_channel, '\(queueNoticePrefix)' || p_queue);
                        EXIT;
                    END IF;
                    IF p_rate IS NOT NULL AND v_starts >= p_rate THEN
                        SELECT min(st.at) + p_window + 1 - p_now INTO retry_after FROM \(s).queue_starts st WHERE st.queue = p_queue;
                        EXIT;
                    END IF;
                    IF e.within THEN
                        DELETE FROM \(s).queue_entries q WHERE q.ticket = e.ticket;
                    ELSE
                        UPDATE \(s).queue_entries q SET admitted = true WHERE q.ticket = e.ticket;
                        v_running := v_running + 1;
                    END IF;
                    IF p_rate IS NOT NULL THEN
                        INSERT INTO \(s).queue_starts (queue, at) VALUES (p_queue, p_now);
                        v_starts := v_starts + 1;
                    END IF;
                    granted := granted || e.ticket;
                END LOOP;
            END
            $fn$
            """
    }
}
