public import Continuum
import NIOCore
import PostgresNIO

extension PostgresStore {
    /// How many workflows ``verify()`` reads the events of at a time.
    static let verificationPage = 500

    /// Reads every stored event and checks that it decodes (its format byte and CRC-32C, as
    /// ``load(id:)`` checks them), that each workflow's record counts the events its stream
    /// holds, that no event belongs to a workflow that has no record, and that the kept status
    /// counts match the workflows table.
    ///
    /// Runs in one read-only `REPEATABLE READ` transaction, so it sees one consistent snapshot
    /// while other processes go on writing. Damaged events are reported as problems naming the
    /// workflow and the event's sequence; their workflows are in
    /// ``VerificationReport/damagedWorkflows``.
    ///
    /// ```sh
    /// continuum verify --postgres "$CONTINUUM_POSTGRES_URL"
    /// ```
    ///
    /// - Throws: ``ContinuumError/Code/storeUnavailable`` or ``ContinuumError/Code/storageFailure``
    ///   when the database cannot be read (a damaged value is a problem in the report, not an error).
    public func verify() async throws(ContinuumError) -> VerificationReport {
        do {
            return try await client.withConnection { connection in
                _ = try await self.fetch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", on: connection)
                do {
                    let report = try await self.verify(on: connection)
                    _ = try await self.fetch("COMMIT", on: connection)
                    return report
                } catch {
                    // As the writer does: the server rolls back what a closed connection began,
                    // and a ROLLBACK on a dead connection could wait forever.
                    try? await connection.close()
                    throw error
                }
            }
        } catch {
            throw Self.storeError(error, doing: "verify \(configuration.displayURL)")
        }
    }

    /// The checks of ``verify()``, inside its transaction on `connection`.
    private func verify(on connection: PostgresConnection) async throws -> VerificationReport {
        var report = VerificationReport()
        var after: Int64 = 0
        while true {
            // A page of workflow records, then the events of every stream in their range: the
            // last page's range is open-ended, so that events past the last record are read too.
            var records = PostgresQuery(unsafeSQL: "SELECT stream, id, event_count FROM \(schema).workflows WHERE stream > $1 ORDER BY stream LIMIT $2")
            records.binds.append(after)
            records.binds.append(Self.verificationPage)
            var page: [(stream: Int64, id: String, eventCount: Int)] = []
            for (stream, id, eventCount) in try await fetch(records, on: connection).decode((Int64, ByteBuffer, Int32).self) {
                page.append((stream, String(decoding: id.readableBytesView, as: UTF8.self), Int(eventCount)))
            }
            report.checked["workflows", default: 0] += page.count
            let through = page.count == Self.verificationPage ? page[page.count - 1].stream : .max
            let ids = Dictionary(page.map { ($0.stream, $0.id) }, uniquingKeysWith: { first, _ in first })

            var events = PostgresQuery(
                unsafeSQL: "SELECT stream, sequence, value FROM \(schema).events WHERE stream > $1 AND stream <= $2 ORDER BY stream, sequence")
            events.binds.append(after)
            events.binds.append(through)
            var held: [Int64: Int] = [:]
            for (stream, sequence, value) in try await fetch(events, on: connection).decode((Int64, Int32, ByteBuffer).self) {
                report.checked["events", default: 0] += 1
                held[stream, default: 0] += 1
                let id = ids[stream] ?? "?"
                do {
                    _ = try BinaryCodec.decodeEvent(
                        Array(value.readableBytesView), sequence: UInt32(bitPattern: sequence),
                        location: "workflow '\(id)' event \(sequence) in PostgreSQL \(configuration.displayURL)")
                } catch {
                    report.damagedWorkflows.insert(id)
                    report.problems.append(.init(database: "events", location: "workflow '\(id)' (stream \(stream)), event \(sequence)", message: "\(error)"))
                }
            }
            for record in page where held[record.stream, default: 0] != record.eventCount {
                report.damagedWorkflows.insert(record.id)
                report.problems.append(
                    .init(
                        database: "workflows", location: "workflow '\(record.id)' (stream \(record.stream))",
                        message: "its record counts \(record.eventCount) events; its stream holds \(held[record.stream, default: 0])"))
            }
            for (stream, count) in held.sorted(by: { $0.key < $1.key }) where ids[stream] == nil {
                report.problems.append(.init(database: "events", location: "stream \(stream)", message: "\(count) event(s) belong to no workflow record"))
            }
            guard through != .max else { break }
            after = through
        }

        // The kept counts (summed over their shards) must match the records they count.
        var kept: [String: Int64] = [:]
        let keptQuery = PostgresQuery(unsafeSQL: "SELECT status, sum(count)::bigint FROM \(schema).counts GROUP BY status")
        for (status, count) in try await fetch(keptQuery, on: connection).decode((String, Int64).self) where count != 0 {
            kept[status] = count
        }
        var counted: [String: Int64] = [:]
        let countedQuery = PostgresQuery(
            unsafeSQL: """
                SELECT status, count(*) FROM \(schema).workflows GROUP BY status
                UNION ALL SELECT 'parked', count(*) FROM \(schema).workflows WHERE parked
                """)
        for (status, count) in try await fetch(countedQuery, on: connection).decode((String, Int64).self) where count != 0 {
            counted[status] = count
        }
        report.checked["counts", default: 0] += 1
        if kept != counted {
            func text(_ counts: [String: Int64]) -> String {
                counts.isEmpty ? "none" : counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            }
            report.problems.append(
                .init(database: "counts", location: "status counts", message: "the kept counts (\(text(kept))) differ from the workflows table's (\(text(counted)))"))
        }
        return report
    }
}
