public import Continuum
import NIOCore
import PostgresNIO
import Synchronization

/// The inbox: events and cancellations posted by one process for a workflow another runs.
extension PostgresStore {
    public func post(_ kind: InboxMessage.Kind, to id: String) async throws(ContinuumError) -> UInt64 {
        var query = PostgresQuery(
            unsafeSQL: """
                WITH posted AS (
                    INSERT INTO \(schema).inbox (stream, id, kind, name, payload, dedup_key, requested_by, reason)
                    SELECT stream, id, $2, $3, $4, $5, $6, $7 FROM \(schema).workflows WHERE id = $1
                    RETURNING number
                )
                SELECT number, pg_notify($8, '')::text FROM posted
                """)
        query.binds.append(ByteBuffer(bytes: Array(id.utf8)))
        switch kind {
        case .event(let name, let payload, let dedupKey):
            query.binds.append("event")
            query.binds.append(name)
            query.binds.append(ByteBuffer(bytes: payload))
            query.binds.append(dedupKey)
            query.binds.append(String?.none)
            query.binds.append(String?.none)
        case .cancel(let by, let reason):
            query.binds.append("cancel")
            query.binds.append(String?.none)
            query.binds.append(ByteBuffer?.none)
            query.binds.append(String?.none)
            query.binds.append(by)
            query.binds.append(reason)
        }
        query.binds.append(noticeChannel)
        do {
            for (number, _) in try await fetch(query).decode((Int64, String).self) { return UInt64(number) }
        } catch {
            throw Self.storeError(error, doing: "post to the inbox of workflow '\(id)'", workflowID: id)
        }
        throw ContinuumError(.unknownWorkflow, "No workflow has id '\(id)'.", workflowID: id)
    }

    public func pendingInbox(for owner: OwnerID, limit: Int) async throws(ContinuumError) -> [InboxMessage] {
        var query = PostgresQuery(
            unsafeSQL: """
                SELECT i.number, i.id, i.kind, i.name, i.payload, i.dedup_key, i.requested_by, i.reason
                FROM \(schema).inbox i JOIN \(schema).workflows w ON w.stream = i.stream
                WHERE NOT i.settled AND (w.owner IS NULL OR w.owner = $2 OR w.lease_expiry <= \(nowSQL(1)))
                ORDER BY i.number LIMIT $3
                """)
        query.binds.append(clockNow)
        query.binds.append(owner.rawValue)
        query.binds.append(max(0, limit))
        do {
            var messages: [InboxMessage] = []
            for (number, id, kind, name, payload, dedupKey, by, reason) in try await fetch(query)
                .decode((Int64, ByteBuffer, String, String?, ByteBuffer?, String?, String?, String?).self)
            {
                let workflowID = String(decoding: id.readableBytesView, as: UTF8.self)
                let message: InboxMessage.Kind =
                    kind == "cancel"
                    ? .cancel(by: by, reason: reason ?? "cancelled by request")
                    : .event(name: name ?? "", payload: payload.map { Array($0.readableBytesView) } ?? [], dedupKey: dedupKey)
                messages.append(InboxMessage(number: UInt64(number), workflowID: workflowID, kind: message))
            }
            return messages
        } catch {
            throw Self.storeError(error, doing: "read the inbox")
        }
    }

    public func settle(_ number: UInt64, with outcome: InboxOutcome) async throws(ContinuumError) {
        var query = PostgresQuery(
            unsafeSQL: """
                UPDATE \(schema).inbox SET settled = true, sequence = $2, duplicate = $3, error_code = $4, error_message = $5
                WHERE number = $1 AND NOT settled
                """)
        query.binds.append(Int64(number))
        query.binds.append(outcome.sequence.map { Int32($0) })
        query.binds.append(outcome.duplicate)
        query.binds.append(outcome.errorCode)
        query.binds.append(outcome.errorMessage)
        do {
            _ = try await fetch(query)
        } catch {
            throw Self.storeError(error, doing: "settle inbox message \(number)")
        }
    }

    public func outcome(of number: UInt64) async throws(ContinuumError) -> InboxOutcome? {
        var query = PostgresQuery(
            unsafeSQL: "SELECT settled, sequence, duplicate, error_code, error_message FROM \(schema).inbox WHERE number = $1")
        query.binds.append(Int64(number))
        do {
            for (settled, sequence, duplicate, code, message) in try await fetch(query)
                .decode((Bool, Int32?, Bool?, String?, String?).self)
            {
                guard settled else { return nil }
                return InboxOutcome(sequence: sequence.map { UInt32($0) }, duplicate: duplicate ?? false, errorCode: code, errorMessage: message)
            }
        } catch {
            throw Self.storeError(error, doing: "read inbox message \(number)")
        }
        throw ContinuumError(.invalidArgument, "No inbox message has number \(number).")
    }

    // MARK: Notices

    /// The `LISTEN` channel of this store's schema.
    var noticeChannel: String { "continuum_\(configuration.schema)" }

    public func inboxNotices() -> AsyncStream<Void> {
        inboxSubscribers.subscribe(buffering: 1)
    }

    /// How a queue's notice starts, before the queue's name.
    static let queueNoticePrefix = "queue:"

    public func queueNotices() -> AsyncStream<QueueNotice> {
        queueSubscribers.subscribe(buffering: 64)
    }

    /// Holds a connection listening on ``noticeChannel`` and passes each notice on, until
    /// cancelled; after a dropped connection it listens again a second later.
    func listen() async {
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: self.noticeChannel) { notices in
                        for try await notice in notices {
                            // An inbox notice has no payload; a queue's names the queue.
                            if notice.payload.hasPrefix(Self.queueNoticePrefix) {
                                // "queue:<name>\t<owner>"
                                let parts = notice.payload.dropFirst(Self.queueNoticePrefix.count).split(separator: "\t", maxSplits: 1)
                                guard parts.count == 2 else { continue }
                                let queueNotice = QueueNotice(queue: String(parts[0]), owner: OwnerID(String(parts[1])))
                                self.queueSubscribers.yield(queueNotice)
                            } else {
                                self.inboxSubscribers.yield(())
                            }
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.debug("Listening for inbox notices failed; listening again in a second", metadata: ["continuum.error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}

/// The streams handed out for one kind of notice (inbox or queue), fed by the listener.
final class NoticeSubscribers<Notice: Sendable>: Sendable {
    private let state = Mutex<(streams: [UInt64: AsyncStream<Notice>.Continuation], next: UInt64)>(([:], 0))

    /// A new stream of the notices, keeping the newest `buffering` while its reader is busy.
    func subscribe(buffering: Int) -> AsyncStream<Notice> {
        let (stream, continuation) = AsyncStream.makeStream(of: Notice.self, bufferingPolicy: .bufferingNewest(buffering))
        let key = state.withLock { state in
            state.next += 1
            state.streams[state.next] = continuation
            return state.next
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.streams.removeValue(forKey: key) }
        }
        return stream
    }

    func yield(_ notice: Notice) {
        for stream in state.withLock({ Array($0.streams.values) }) { stream.yield(notice) }
    }

    /// Ends every stream (the store closes).
    func finishAll() {
        for stream in state.withLock({ state in
            defer { state.streams = [:] }
            return Array(state.streams.values)
        }) { stream.finish() }
    }
}
