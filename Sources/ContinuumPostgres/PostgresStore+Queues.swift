public import Continuum
import PostgresNIO

/// Queue slots shared by every process on the schema (``SharedQueueStore``): the entries live
/// in `queue_entries`, the starts of rate-limited queues in `queue_starts`, and one pass is one
/// call of the schema's `queue_admit` function, so a slot handed back, a new entry and the
/// admissions they allow cost one round trip.
extension PostgresStore: SharedQueueStore {
    public var sharedQueues: (any SharedQueueStore)? { self }

    public func admit(_ pass: QueuePass) async throws(ContinuumError) -> QueueAdmission {
        try ensureOpen()
        let joining = pass.joining
        if let stray = joining.first(where: { $0.entry.name != pass.queue }) {
            throw ContinuumError(.invalidArgument, "An entry for queue '\(stray.entry.name)' cannot join queue '\(pass.queue)'.")
        }
        var query = PostgresQuery(
            unsafeSQL: """
                SELECT tickets, granted, gone, retry_after FROM \(schema).queue_admit(
                    $1, $2, $3::bigint[], $4, $5, $6, $7, $8::bigint,
                    $9::text[], $10::text[], $11::boolean[], $12::integer[], $13::bigint[], $14::boolean[], $15::bigint[], $16::text[], $17::bigint[],
                    $18::bigint[], $19, $20)
                """)
        func int32(_ value: Int?) -> Int32? { value.map { Int32(clamping: $0) } }
        query.binds.append(pass.queue)
        query.binds.append(pass.owner.rawValue)
        query.binds.append(pass.leaving.map { Int64(bitPattern: $0) })
        query.binds.append(int32(pass.limits.concurrency))
        query.binds.append(int32(pass.limits.perPartition))
        query.binds.append(int32(pass.limits.rate?.count))
        query.binds.append(pass.limits.rate.map(\.window.nanoseconds))
        query.binds.append(clockNow)
        query.binds.append(joining.map(\.key))
        query.binds.append(joining.map { $0.entry.partition ?? "" })
        query.binds.append(joining.map { $0.entry.partition != nil })
        query.binds.append(joining.map { Int32(clamping: $0.entry.priority) })
        query.binds.append(joining.map(\.since))
        query.binds.append(joining.map(\.within))
        query.binds.append(joining.map { Int64($0.claim.stream.rawValue) })
        query.binds.append(joining.map(\.claim.token.owner.rawValue))
        query.binds.append(joining.map { Int64($0.claim.token.epoch) })
        query.binds.append(pass.waiting.map { Int64(bitPattern: $0) })
        query.binds.append(pass.firstOfOwner)
        query.binds.append(noticeChannel)
        do {
            for (tickets, granted, gone, retryAfter) in try await fetch(query).decode(([Int64], [Int64], [Int64], Int64?).self) {
                guard tickets.count == joining.count else {
                    throw ContinuumError(.storageFailure, "queue_admit returned \(tickets.count) tickets for \(joining.count) entries")
                }
                return QueueAdmission(
                    tickets: tickets.map { UInt64($0) }, admitted: granted.map { UInt64($0) }, gone: gone.map { UInt64($0) },
                    retryAfter: retryAfter.map { .nanoseconds(max($0, 1)) })
            }
            throw ContinuumError(.storageFailure, "queue_admit returned no row")
        } catch {
            throw Self.storeError(error, doing: "admit work to queue '\(pass.queue)'")
        }
    }

    public func queueLoad() async throws(ContinuumError) -> [String: QueueLoad] {
        try ensureOpen()
        var query = PostgresQuery(
            unsafeSQL: """
                SELECT q.queue, q.partition, q.admitted, count(*) FROM \(schema).queue_entries q
                JOIN \(schema).workflows w ON w.stream = q.stream AND w.owner = q.owner AND w.epoch = q.epoch
                    AND (q.admitted OR w.lease_expiry > \(nowSQL(1)))
                WHERE NOT (q.admitted AND q.within)
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
    /// Passes on a queue are serialized by a transaction-scoped advisory lock, and read the
    /// time once they hold it. An entry counts while its workflow's claim is current
    /// (`current`); a waiting entry of another owner goes, or holds others back, only while its
    /// lease runs too (`fresh`). The slots held are checked when the queue looks full (or has
    /// partition limits), a waiting entry when the walk reaches it, and now and then every
    /// entry of the queue: a pass costs what it admits rather than the queue's length. The walk
    /// stops at the first fresh entry that could go but is another owner's (and tells that
    /// owner), and when the rate's window is full (then `retry_after` says when its oldest start
    /// leaves it).
    static func admitFunction(_ s: String) -> String {
        func current(_ q: String) -> String {
            "EXISTS (SELECT 1 FROM \(s).workflows w WHERE w.stream = \(q).stream AND w.owner = \(q).owner AND w.epoch = \(q).epoch)"
        }
        return """
            CREATE FUNCTION \(s).queue_admit(
                p_queue text, p_owner text, p_leaving bigint[], p_concurrency integer, p_per_partition integer,
                p_rate integer, p_window bigint, p_clock bigint,
                p_keys text[], p_partitions text[], p_has_partitions boolean[], p_priorities integer[], p_sinces bigint[], p_withins boolean[],
                p_streams bigint[], p_owners text[], p_epochs bigint[],
                p_waiting bigint[], p_first boolean, p_channel text,
                OUT tickets bigint[], OUT granted bigint[], OUT gone bigint[], OUT retry_after bigint
            ) LANGUAGE plpgsql AS $fn$
            DECLARE
                v_now bigint;
                v_running integer;
                v_starts integer := 0;
                v_has_within boolean;
                v_current boolean;
                v_fresh boolean;
                e record;
            BEGIN
                granted := '{}';
                tickets := '{}';
                gone := '{}';
                PERFORM pg_advisory_xact_lock(hashtextextended('\(s).queue.' || p_queue, 0));
                v_now := COALESCE(p_clock, (extract(epoch FROM clock_timestamp()) * 1000000000)::bigint);
                IF p_first THEN
                    -- A new runtime under a name an earlier, dead, process used: its entries go.
                    DELETE FROM \(s).queue_entries q WHERE q.queue = p_queue AND q.owner = p_owner;
                END IF;
                IF cardinality(p_leaving) > 0 THEN
                    DELETE FROM \(s).queue_entries q WHERE q.ticket = ANY(p_leaving);
                END IF;
                IF cardinality(p_keys) > 0 THEN
                    INSERT INTO \(s).queue_entries (key, queue, partition, priority, since, within, stream, owner, epoch)
                    SELECT j.k, p_queue, CASE WHEN j.has THEN j.part END, j.prio, j.at, j.inside, j.str, j.own, j.ep
                    FROM unnest(p_keys, p_partitions, p_has_partitions, p_priorities, p_sinces, p_withins, p_streams, p_owners, p_epochs)
                        WITH ORDINALITY AS j(k, part, has, prio, at, inside, str, own, ep, n)
                    ORDER BY j.n
                    ON CONFLICT (key) DO NOTHING;
                    SELECT COALESCE(array_agg(q.ticket ORDER BY j.n), '{}') INTO tickets
                    FROM unnest(p_keys) WITH ORDINALITY AS j(k, n) JOIN \(s).queue_entries q ON q.key = j.k;
                END IF;
                IF cardinality(p_waiting) > 0 THEN
                    -- The caller's waiting entries whose claim ended (taken over): reported gone.
                    DELETE FROM \(s).queue_entries q WHERE q.ticket = ANY(p_waiting) AND NOT \(current("q"));
                END IF;
                IF random() < 0.02 THEN
                    -- Now and then, entries whose claim ended, wherever they are.
                    DELETE FROM \(s).queue_entries q WHERE q.queue = p_queue AND NOT \(current("q"));
                END IF;
                SELECT count(*) INTO v_running FROM \(s).queue_entries q WHERE q.queue = p_queue AND q.admitted AND NOT q.within;
                IF (p_concurrency IS NOT NULL AND v_running >= p_concurrency) OR p_per_partition IS NOT NULL THEN
                    -- Slots whose claim ended come back before the limits are applied.
                    DELETE FROM \(s).queue_entries q WHERE q.queue = p_queue AND q.admitted AND NOT \(current("q"));
                    SELECT count(*) INTO v_running FROM \(s).queue_entries q WHERE q.queue = p_queue AND q.admitted AND NOT q.within;
                END IF;
                IF p_rate IS NOT NULL THEN
                    DELETE FROM \(s).queue_starts st WHERE st.queue = p_queue AND st.at <= v_now - p_window;
                    SELECT count(*) INTO v_starts FROM \(s).queue_starts st WHERE st.queue = p_queue;
                END IF;
                SELECT EXISTS (SELECT 1 FROM \(s).queue_entries q WHERE q.queue = p_queue AND q.within AND NOT q.admitted) INTO v_has_within;
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
                            WHERE q.queue = p_queue AND q.admitted AND NOT q.within AND q.partition = e.partition) >= p_per_partition THEN
                            CONTINUE;
                        END IF;
                    END IF;
                    SELECT true, w.lease_expiry IS NOT NULL AND w.lease_expiry > v_now INTO v_current, v_fresh FROM \(s).workflows w
                    WHERE w.stream = e.stream AND w.owner = e.owner AND w.epoch = e.epoch;
                    IF v_current IS NULL THEN
                        DELETE FROM \(s).queue_entries q WHERE q.ticket = e.ticket;
                        CONTINUE;
                    END IF;
                    IF e.owner <> p_owner THEN
                        -- A lapsed lease that its owner may still renew: passed over meanwhile.
                        IF NOT v_fresh THEN CONTINUE; END IF;
                        -- Its owner admits it: tell that owner now rather than at its next look.
                        PERFORM pg_notify(p_channel, '\(queueNoticePrefix)' || p_queue || E'\\t' || e.owner);
                        EXIT;
                    END IF;
                    IF p_rate IS NOT NULL AND v_starts >= p_rate THEN
                        SELECT min(st.at) + p_window + 1 - v_now INTO retry_after FROM \(s).queue_starts st WHERE st.queue = p_queue;
                        EXIT;
                    END IF;
                    -- An entry admitted within a held slot takes no slot; it stays (not counted)
                    -- until its owner has seen the admission and takes it off.
                    UPDATE \(s).queue_entries q SET admitted = true WHERE q.ticket = e.ticket;
                    IF NOT e.within THEN v_running := v_running + 1; END IF;
                    IF p_rate IS NOT NULL THEN
                        INSERT INTO \(s).queue_starts (queue, at) VALUES (p_queue, v_now);
                        v_starts := v_starts + 1;
                    END IF;
                    granted := granted || e.ticket;
                END LOOP;
                IF cardinality(p_waiting) > 0 OR cardinality(tickets) > 0 THEN
                    -- Entries admitted by an earlier pass whose answer was lost.
                    SELECT granted || COALESCE(array_agg(q.ticket), '{}') INTO granted FROM \(s).queue_entries q
                    WHERE (q.ticket = ANY(p_waiting) OR q.ticket = ANY(tickets)) AND q.admitted AND NOT q.ticket = ANY(granted);
                    SELECT COALESCE(array_agg(t), '{}') INTO gone FROM unnest(p_waiting) AS t
                    WHERE NOT EXISTS (SELECT 1 FROM \(s).queue_entries q WHERE q.ticket = t);
                END IF;
            END
            $fn$
            """
    }
}
