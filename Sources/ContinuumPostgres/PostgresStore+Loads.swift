import Continuum
import NIOCore
import PostgresNIO
import Synchronization

/// Loads that arrive together share one statement.
///
/// A recovery, or a burst of timers, loads many workflows at once; one statement per workflow
/// spent most of the database's time parsing, planning and answering round trips. A load
/// joins a queue; at most ``maxLoaders`` callers at a time lead a batch: the leader reads its own
/// workflow and up to ``maxLoadBatch`` - 1 queued ones in one statement, answers them, and
/// hands the lead to the next queued caller, if any. A load with nothing else queued costs one
/// statement, as before.
extension PostgresStore {
    /// The most workflows one statement loads.
    static let maxLoadBatch = 128

    /// How many batches may run at once: the pool's connections but two, kept for the writer
    /// and everything else.
    var maxLoaders: Int { max(1, configuration.poolSize - 2) }

    /// What a queued load is told: the workflow, or to lead a batch itself.
    enum LoadTurn {
        case loaded(Result<StoredWorkflow?, ContinuumError>)
        case lead
    }

    struct LoadQueue {
        var waiting: [(id: String, continuation: CheckedContinuation<LoadTurn, Never>)] = []
        var leaders = 0
    }

    func coalescedLoad(id: String) async throws(ContinuumError) -> StoredWorkflow? {
        let turn = await withCheckedContinuation { (continuation: CheckedContinuation<LoadTurn, Never>) in
            let lead = loads.withLock { queue -> Bool in
                guard queue.leaders < maxLoaders else {
                    queue.waiting.append((id, continuation))
                    return false
                }
                queue.leaders += 1
                return true
            }
            if lead { continuation.resume(returning: .lead) }
        }
        switch turn {
        case .loaded(let result):
            return try result.get()
        case .lead:
            return try await leadBatch(id).get()
        }
    }

    /// Loads `id` with as many queued loads as fit in one statement, answers them, and passes
    /// the lead on.
    private func leadBatch(_ id: String) async -> Result<StoredWorkflow?, ContinuumError> {
        let others = loads.withLock { queue in
            let taken = Array(queue.waiting.prefix(Self.maxLoadBatch - 1))
            queue.waiting.removeFirst(taken.count)
            return taken
        }
        let results = await loadBatch([id] + others.map(\.id))
        for other in others { other.continuation.resume(returning: .loaded(results[other.id] ?? .success(nil))) }
        // The next queued caller leads the next batch; with none, this lead ends.
        let next = loads.withLock { queue in
            guard !queue.waiting.isEmpty else {
                queue.leaders -= 1
                return nil as CheckedContinuation<LoadTurn, Never>?
            }
            return queue.waiting.removeFirst().continuation
        }
        next?.resume(returning: .lead)
        return results[id] ?? .success(nil)
    }

    /// Every workflow of `ids` with its events, in one statement: each id's own result (a
    /// damaged event fails only its workflow), or the statement's failure for all.
    private func loadBatch(_ ids: [String]) async -> [String: Result<StoredWorkflow?, ContinuumError>] {
        let unique = Array(Set(ids))
        var query = PostgresQuery(
            unsafeSQL: """
                SELECT w.stream, w.id, w.type, w.status, w.created_at, w.updated_at, e.sequence, e.value
                FROM \(schema).workflows w LEFT JOIN \(schema).events e ON e.stream = w.stream
                WHERE w.id = ANY($1::bytea[]) ORDER BY w.stream, e.sequence
                """)
        query.binds.append(unique.map { ByteBuffer(bytes: Array($0.utf8)) })
        let rows: [PostgresRow]
        do {
            rows = try await fetch(query)
        } catch {
            let failure = Self.storeError(error, doing: unique.count == 1 ? "load workflow '\(unique[0])'" : "load \(unique.count) workflows")
            return Dictionary(uniqueKeysWithValues: unique.map { ($0, .failure(failure)) })
        }
        var results = Dictionary(uniqueKeysWithValues: unique.map { ($0, Result<StoredWorkflow?, ContinuumError>.success(nil)) })
        // Rows come workflow by workflow, each one's events in order.
        var currentID: String?
        var summary: ListedWorkflow?
        var events: [HistoryEvent] = []
        var failure: ContinuumError?
        func finish() {
            guard let currentID else { return }
            if let failure {
                results[currentID] = .failure(failure)
            } else if let summary {
                results[currentID] = .success(StoredWorkflow(stream: summary.stream, summary: summary.summary, events: events))
            }
        }
        for row in rows {
            let columns: (Int64, ByteBuffer, ByteBuffer, String, Int64, Int64, Int32?, ByteBuffer?)
            do {
                columns = try row.decode((Int64, ByteBuffer, ByteBuffer, String, Int64, Int64, Int32?, ByteBuffer?).self)
            } catch {
                // Not the shape this build reads: nothing of the batch can be trusted.
                let failure = Self.storeError(error, doing: "load \(unique.count) workflows")
                return Dictionary(uniqueKeysWithValues: unique.map { ($0, .failure(failure)) })
            }
            let (stream, rowID, type, status, created, updated, sequence, value) = columns
            let id = String(decoding: rowID.readableBytesView, as: UTF8.self)
            if id != currentID {
                finish()
                (currentID, summary, events, failure) = (id, nil, [], nil)
                do {
                    summary = try listedWorkflow(stream, rowID, type, status, created, updated)
                } catch {
                    failure = Self.storeError(error, doing: "load workflow '\(id)'", workflowID: id)
                }
            }
            guard failure == nil, let sequence, let value else { continue }
            do {
                events.append(
                    try BinaryCodec.decodeEvent(
                        Array(value.readableBytesView), sequence: UInt32(sequence),
                        location: "workflow '\(id)' event \(sequence) in PostgreSQL \(configuration.displayURL)"))
            } catch {
                // This workflow's value is damaged: it alone fails.
                failure = Self.storeError(error, doing: "load workflow '\(id)'", workflowID: id)
            }
        }
        finish()
        return results
    }
}
