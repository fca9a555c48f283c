import Continuum
import NIOCore
import PostgresNIO

/// The writer's side: one transaction per batch of queued creates and appends.
///
/// The batch's decisions (is this token current, does this append follow the stream, which
/// workflows park) are made in Swift on rows locked `FOR UPDATE`, exactly as the in-memory store
/// makes them; the writes are then a handful of set-based statements whatever the batch's size.
extension PostgresStore {
    /// What happened to one submission of a batch.
    enum Outcome: Sendable {
        case created(CreateOutcome)
        case appended
        case refused(ContinuumError)
    }

    func commit(_ batch: [Submission]) async {
        let requests = batch.map(Request.init)
        let outcomes: [Outcome]
        do {
            outcomes = try await client.withConnection { connection in
                try await self.transaction(requests, on: connection)
            }
        } catch {
            let failure = Self.storeError(error, doing: "commit \(batch.count) writes; none was acknowledged")
            logger.warning("A commit failed", metadata: ["continuum.error.code": "\(failure.code)", "continuum.error": "\(failure.message)"])
            for submission in batch { submission.fail(failure) }
            return
        }
        for (submission, outcome) in zip(batch, outcomes) {
            switch (submission, outcome) {
            case (.create(_, let continuation), .created(let created)): continuation.resume(returning: .success(created))
            case (.append(_, let continuation), .appended): continuation.resume(returning: .success(()))
            case (_, .refused(let error)): submission.fail(error)
            default: submission.fail(ContinuumError(.storageFailure, "The PostgreSQL writer mismatched a submission with its outcome."))
            }
        }
    }

    /// Applies `requests` in one transaction on `connection`.
    ///
    /// On any failure the connection is closed rather than rolled back: it may be dead (the
    /// server restarted) or in an unknown state, a `ROLLBACK` on it could wait forever, and the
    /// server rolls back whatever it had not committed when the connection goes. The pool opens
    /// a new one.
    private func transaction(_ requests: [Request], on connection: PostgresConnection) async throws -> [Outcome] {
        do {
            _ = try await fetch("BEGIN", on: connection)
            let outcomes = try await apply(requests, on: connection)
            _ = try await fetch("COMMIT", on: connection)
            return outcomes
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// A submission without its continuation, to hand to the transaction.
    enum Request: Sendable {
        case create(CreateRequest)
        case append(AppendRequest)

        init(_ submission: Submission) {
            switch submission {
            case .create(let request, _): self = .create(request)
            case .append(let request, _): self = .append(request)
            }
        }
    }

    /// A locked workflow row as the batch changes it.
    private struct Row {
        var status: WorkflowStatus
        var parked: Bool
        var owner: String?
        var epoch: Int64
        var leaseExpiry: Int64?
        var eventCount: Int
        var updatedAt: Int64
        var released = false
        var dirty = false
    }

    /// The writes a batch makes, gathered to be sent as arrays.
    private struct Writes {
        var eventStreams: [Int64] = []
        var eventSequences: [Int32] = []
        var eventValues: [ByteBuffer] = []
        /// The net effect on the timer index: `(due, stream)` → added (with the id) or removed.
        var timers: [TimerKey: (add: Bool, id: [UInt8])] = [:]
        var counts: [String: Int64] = [:]
        /// The latest snapshot of each stream in the batch.
        var snapshots: [Int64: WorkflowSnapshot] = [:]

        mutating func event(_ stream: Int64, _ event: HistoryEvent) {
            eventStreams.append(stream)
            eventSequences.append(Int32(event.sequence))
            eventValues.append(ByteBuffer(bytes: BinaryCodec.encode(event)))
        }

        mutating func timer(_ change: TimerChange, stream: Int64, id: String) {
            switch change {
            case .add(let due): timers[TimerKey(due: due, stream: stream)] = (true, Array(id.utf8))
            case .remove(let due): timers[TimerKey(due: due, stream: stream)] = (false, [])
            }
        }

        mutating func count(_ status: String, _ delta: Int64) {
            counts[status, default: 0] += delta
        }
    }

    private struct TimerKey: Hashable {
        var due: Int64
        var stream: Int64
    }

    private func apply(_ requests: [Request], on connection: PostgresConnection) async throws -> [Outcome] {
        var outcomes = [Outcome?](repeating: nil, count: requests.count)
        var writes = Writes()
        let now = try await databaseNow(connection)

        // Creates: insert the new ids in submission order; an id that exists (or comes twice in
        // this batch) gets the existing workflow.
        var creates: [(index: Int, request: CreateRequest)] = []
        var firstCreate: [[UInt8]: Int] = [:]
        var duplicates: [(index: Int, of: Int)] = []
        for (index, request) in requests.enumerated() {
            guard case .create(let create) = request else { continue }
            if let offset = create.history.indices.first(where: { Int(create.history[$0].sequence) != $0 + 1 }) {
                outcomes[index] = .refused(ContinuumError(.invalidArgument, "The history of new workflow '\(create.id)' is not numbered from 1 (event \(offset + 1)).", workflowID: create.id))
                continue
            }
            let key = Array(create.id.utf8)
            if let first = firstCreate[key] {
                duplicates.append((index, first))
            } else {
                firstCreate[key] = index
                creates.append((index, create))
            }
        }
        if !creates.isEmpty {
            try await insertWorkflows(creates, now: now, outcomes: &outcomes, writes: &writes, on: connection)
        }
        for (index, first) in duplicates {
            switch outcomes[first] {
            case .created(.created(let claim))?:
                guard case .create(let request) = requests[first] else { continue }
                outcomes[index] = .created(
                    .existing(
                        claim.stream,
                        WorkflowSummary(
                            id: request.id, type: request.type, status: .running, createdAt: request.started.timestamp,
                            updatedAt: request.started.timestamp)))
            default: outcomes[index] = outcomes[first]
            }
        }

        // Appends: lock their rows, decide each in order, write what was accepted.
        let appendStreams = Set(requests.compactMap { request -> Int64? in
            if case .append(let append) = request { Int64(append.stream.rawValue) } else { nil }
        })
        if !appendStreams.isEmpty {
            var rows = try await lockRows(Array(appendStreams).sorted(), on: connection)
            for (index, request) in requests.enumerated() {
                guard case .append(let append) = request else { continue }
                outcomes[index] = decide(append, rows: &rows, writes: &writes)
            }
            try await updateRows(rows, on: connection)
        }

        try await writeEvents(writes, on: connection)
        try await writeTimers(writes, on: connection)
        try await writeCounts(writes, on: connection)
        try await writeSnapshots(writes, on: connection)
        return outcomes.map { $0 ?? .refused(ContinuumError(.storageFailure, "The PostgreSQL writer left a submission undecided.")) }
    }

    private func databaseNow(_ connection: PostgresConnection) async throws -> Int64 {
        var query = PostgresQuery(unsafeSQL: "SELECT \(nowSQL(1))")
        query.binds.append(clockNow)
        for now in try await fetch(query, on: connection).decode(Int64.self) { return now }
        throw ContinuumError(.storageFailure, "PostgreSQL returned no time.")
    }

    private func insertWorkflows(
        _ creates: [(index: Int, request: CreateRequest)], now: Int64, outcomes: inout [Outcome?], writes: inout Writes,
        on connection: PostgresConnection
    ) async throws {
        var insert = PostgresQuery(
            unsafeSQL: """
                INSERT INTO \(schema).workflows (id, type, status, created_at, updated_at, event_count, owner, epoch, lease_expiry)
                SELECT r.id, r.type, 'running', r.started, r.started, r.events, r.owner, 1, $1::bigint
                FROM unnest($2::bytea[], $3::bytea[], $4::bigint[], $5::integer[], $6::text[]) WITH ORDINALITY AS r(id, type, started, events, owner, position)
                ORDER BY r.position
                ON CONFLICT (id) DO NOTHING
                RETURNING id, stream
                """)
        insert.binds.append(now + configuration.leaseDuration.nanoseconds)
        insert.binds.append(creates.map { ByteBuffer(bytes: Array($0.request.id.utf8)) })
        insert.binds.append(creates.map { ByteBuffer(bytes: Array($0.request.type.utf8)) })
        insert.binds.append(creates.map(\.request.started.timestamp))
        insert.binds.append(creates.map { Int32(1 + $0.request.history.count) })
        insert.binds.append(creates.map(\.request.owner.rawValue))
        var created: [[UInt8]: Int64] = [:]
        for (id, stream) in try await fetch(insert, on: connection).decode((ByteBuffer, Int64).self) {
            created[Array(id.readableBytesView)] = stream
        }
        var existing: [ByteBuffer] = []
        for (index, request) in creates {
            guard let stream = created[Array(request.id.utf8)] else {
                existing.append(ByteBuffer(bytes: Array(request.id.utf8)))
                continue
            }
            writes.event(stream, request.started)
            for event in request.history { writes.event(stream, event) }
            for timer in request.timers { writes.timer(timer, stream: stream, id: request.id) }
            writes.count(WorkflowStatus.running.rawValue, 1)
            outcomes[index] = .created(
                .created(Claim(stream: StreamID(rawValue: UInt64(stream)), token: FencingToken(owner: request.owner, epoch: 1))))
        }
        guard !existing.isEmpty else { return }
        var select = PostgresQuery(
            unsafeSQL: "SELECT stream, id, type, status, created_at, updated_at FROM \(schema).workflows WHERE id = ANY($1::bytea[])")
        select.binds.append(existing)
        var found: [[UInt8]: (StreamID, WorkflowSummary)] = [:]
        for (stream, id, type, status, createdAt, updatedAt) in try await fetch(select, on: connection)
            .decode((Int64, ByteBuffer, ByteBuffer, String, Int64, Int64).self)
        {
            let idString = String(decoding: id.readableBytesView, as: UTF8.self)
            guard let status = WorkflowStatus(named: status) else {
                throw ContinuumError(.corruptedData, "Workflow '\(idString)' has the unknown status '\(status)'.", workflowID: idString)
            }
            found[Array(id.readableBytesView)] = (
                StreamID(rawValue: UInt64(stream)),
                WorkflowSummary(
                    id: idString, type: String(decoding: type.readableBytesView, as: UTF8.self), status: status, createdAt: createdAt,
                    updatedAt: updatedAt)
            )
        }
        for (index, request) in creates where outcomes[index] == nil {
            if let (stream, summary) = found[Array(request.id.utf8)] {
                outcomes[index] = .created(.existing(stream, summary))
            } else {
                // Inserted by another process and deleted again before we looked: nothing was written.
                outcomes[index] = .refused(
                    ContinuumError(.storageFailure, "Workflow '\(request.id)' was created and removed concurrently; try again.", workflowID: request.id))
            }
        }
    }

    private func lockRows(_ streams: [Int64], on connection: PostgresConnection) async throws -> [Int64: Row] {
        var query = PostgresQuery(
            unsafeSQL: """
                SELECT stream, status, parked, owner, epoch, lease_expiry, event_count, updated_at
                FROM \(schema).workflows WHERE stream = ANY($1::bigint[]) ORDER BY stream FOR UPDATE
                """)
        query.binds.append(streams)
        var rows: [Int64: Row] = [:]
        for (stream, status, parked, owner, epoch, lease, count, updated) in try await fetch(query, on: connection)
            .decode((Int64, String, Bool, String?, Int64, Int64?, Int32, Int64).self)
        {
            guard let status = WorkflowStatus(named: status) else {
                throw ContinuumError(.corruptedData, "Workflow stream \(stream) has the unknown status '\(status)'.")
            }
            rows[stream] = Row(status: status, parked: parked, owner: owner, epoch: epoch, leaseExpiry: lease, eventCount: Int(count), updatedAt: updated)
        }
        return rows
    }

    /// Whether `request` may be appended to its (locked) row, and its effects when it may.
    private func decide(_ request: AppendRequest, rows: inout [Int64: Row], writes: inout Writes) -> Outcome {
        let stream = Int64(request.stream.rawValue)
        guard var row = rows[stream] else {
            return .refused(ContinuumError(.unknownWorkflow, "Workflow '\(request.id)' has no record.", workflowID: request.id))
        }
        let token = request.fence.token
        // The token alone decides: a lease that ran out lets another owner claim the workflow,
        // and that claim (under this row's lock) is what ends this one.
        guard row.owner == token.owner.rawValue, row.epoch == Int64(token.epoch) else {
            return .refused(
                ContinuumError(
                    .ownershipLost, "Workflow '\(request.id)' is no longer claimed by \(token); nothing was appended.", workflowID: request.id))
        }
        for (offset, event) in request.events.enumerated() where Int(event.sequence) != row.eventCount + offset {
            return .refused(
                ContinuumError(
                    .storageFailure,
                    "Cannot append event \(event.sequence) to workflow '\(request.id)': the stream holds \(row.eventCount) events.",
                    workflowID: request.id))
        }
        if let snapshot = request.snapshot, Int(snapshot.through) != row.eventCount + request.events.count {
            return .refused(
                ContinuumError(
                    .invalidArgument,
                    "A snapshot of workflow '\(request.id)' covers \(snapshot.through) events, but the stream holds \(row.eventCount + request.events.count).",
                    workflowID: request.id))
        }
        for event in request.events { writes.event(stream, event) }
        row.eventCount += request.events.count
        if let snapshot = request.snapshot { writes.snapshots[stream] = snapshot }
        for timer in request.timers { writes.timer(timer, stream: stream, id: request.id) }
        let oldStatus = row.status
        let wasParked = row.parked
        if let status = request.status, status != row.status {
            row.status = status
            row.updatedAt = request.events.last?.timestamp ?? row.updatedAt
        }
        if request.release {
            row.owner = nil
            row.leaseExpiry = nil
            row.released = true
        }
        if request.status != nil || request.release {
            row.parked = row.status == .running && request.release
        }
        if oldStatus != row.status {
            writes.count(oldStatus.rawValue, -1)
            writes.count(row.status.rawValue, 1)
        }
        if wasParked != row.parked { writes.count("parked", row.parked ? 1 : -1) }
        row.dirty = true
        rows[stream] = row
        return .appended
    }

    private func updateRows(_ rows: [Int64: Row], on connection: PostgresConnection) async throws {
        let dirty = rows.filter(\.value.dirty).sorted { $0.key < $1.key }
        guard !dirty.isEmpty else { return }
        var query = PostgresQuery(
            unsafeSQL: """
                UPDATE \(schema).workflows w SET
                    status = u.status, updated_at = u.updated_at, event_count = u.event_count, parked = u.parked,
                    owner = CASE WHEN u.released THEN NULL ELSE w.owner END,
                    lease_expiry = CASE WHEN u.released THEN NULL ELSE w.lease_expiry END
                FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::integer[], $5::boolean[], $6::boolean[])
                    AS u(stream, status, updated_at, event_count, parked, released)
                WHERE w.stream = u.stream
                """)
        query.binds.append(dirty.map(\.key))
        query.binds.append(dirty.map(\.value.status.rawValue))
        query.binds.append(dirty.map(\.value.updatedAt))
        query.binds.append(dirty.map { Int32($0.value.eventCount) })
        query.binds.append(dirty.map(\.value.parked))
        query.binds.append(dirty.map(\.value.released))
        _ = try await fetch(query, on: connection)
    }

    private func writeEvents(_ writes: Writes, on connection: PostgresConnection) async throws {
        guard !writes.eventStreams.isEmpty else { return }
        var query = PostgresQuery(
            unsafeSQL: "INSERT INTO \(schema).events (stream, sequence, value) SELECT * FROM unnest($1::bigint[], $2::integer[], $3::bytea[])")
        query.binds.append(writes.eventStreams)
        query.binds.append(writes.eventSequences)
        query.binds.append(writes.eventValues)
        _ = try await fetch(query, on: connection)
    }

    private func writeSnapshots(_ writes: Writes, on connection: PostgresConnection) async throws {
        guard !writes.snapshots.isEmpty else { return }
        let snapshots = writes.snapshots.sorted { $0.key < $1.key }
        var query = PostgresQuery(
            unsafeSQL: """
                INSERT INTO \(schema).snapshots (stream, through, value)
                SELECT * FROM unnest($1::bigint[], $2::integer[], $3::bytea[])
                ON CONFLICT (stream) DO UPDATE SET through = excluded.through, value = excluded.value
                """)
        query.binds.append(snapshots.map(\.key))
        query.binds.append(snapshots.map { Int32($0.value.through) })
        query.binds.append(snapshots.map { ByteBuffer(bytes: $0.value.bytes) })
        _ = try await fetch(query, on: connection)
    }

    private func writeTimers(_ writes: Writes, on connection: PostgresConnection) async throws {
        let removed = writes.timers.filter { !$0.value.add }.map(\.key)
        let added = writes.timers.filter(\.value.add).sorted { ($0.key.due, $0.key.stream) < ($1.key.due, $1.key.stream) }
        if !removed.isEmpty {
            var query = PostgresQuery(
                unsafeSQL: """
                    DELETE FROM \(schema).timers t USING unnest($1::bigint[], $2::bigint[]) AS r(due, stream)
                    WHERE t.due = r.due AND t.stream = r.stream
                    """)
            query.binds.append(removed.map(\.due))
            query.binds.append(removed.map(\.stream))
            _ = try await fetch(query, on: connection)
        }
        if !added.isEmpty {
            var query = PostgresQuery(
                unsafeSQL: """
                    INSERT INTO \(schema).timers (due, stream, id) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[])
                    ON CONFLICT (due, stream) DO NOTHING
                    """)
            query.binds.append(added.map(\.key.due))
            query.binds.append(added.map(\.key.stream))
            query.binds.append(added.map { ByteBuffer(bytes: $0.value.id) })
            _ = try await fetch(query, on: connection)
        }
    }

    private func writeCounts(_ writes: Writes, on connection: PostgresConnection) async throws {
        let counts = writes.counts.filter { $0.value != 0 }.sorted { $0.key < $1.key }
        guard !counts.isEmpty else { return }
        var query = PostgresQuery(
            unsafeSQL: """
                INSERT INTO \(schema).counts (status, shard, count) SELECT s, $1, c FROM unnest($2::text[], $3::bigint[]) AS d(s, c)
                ON CONFLICT (status, shard) DO UPDATE SET count = \(schema).counts.count + excluded.count
                """)
        query.binds.append(shard)
        query.binds.append(counts.map(\.key))
        query.binds.append(counts.map(\.value))
        _ = try await fetch(query, on: connection)
    }
}
