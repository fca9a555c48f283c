import CLMDB
import Continuum

/// What ``LMDBStore/verify()`` found.
public struct VerificationReport: Sendable {
    /// One value that failed its check.
    public struct Problem: Sendable, Hashable, CustomStringConvertible {
        /// The database (`workflows`, `events`, `timers`, `ids`).
        public var database: String
        /// Where: the workflow's id when known, and the stream and sequence.
        public var location: String
        /// What is wrong.
        public var message: String

        public var description: String { "\(database) \(location): \(message)" }
    }

    /// How many values were checked, per database.
    public var checked: [String: Int] = [:]
    /// Every value that failed.
    public var problems: [Problem] = []
    /// The workflows whose history holds a damaged value.
    public var damagedWorkflows: Set<String> = []

    /// Whether every value passed.
    public var isClean: Bool { problems.isEmpty }
}

extension LMDBStore {
    /// Reads every stored value and checks its format byte and CRC-32C, and that it decodes:
    /// workflow records, every history event, timer index entries and ids. Runs in one read
    /// transaction, so it sees one consistent snapshot while writers go on.
    ///
    /// ```sh
    /// continuum verify --path ./state
    /// ```
    public func verify() throws(ContinuumError) -> VerificationReport {
        try named {
            try environment.read { txn in
                var report = VerificationReport()
                var names: [UInt64: String] = [:]
                try each(environment.workflows, txn) { key, value in
                    report.checked["workflows", default: 0] += 1
                    let stream = Key.readUInt64(key)
                    do {
                        names[stream] = try BinaryCodec.decodeSummary(value, location: "workflows/\(stream)").id
                    } catch {
                        report.problems.append(.init(database: "workflows", location: "stream \(stream)", message: "\(error)"))
                    }
                }
                try each(environment.events, txn) { key, value in
                    report.checked["events", default: 0] += 1
                    let stream = Key.readUInt64(key)
                    let sequence = key.count >= 12 ? Key.readUInt32(key, at: 8) : 0
                    do {
                        _ = try BinaryCodec.decodeEvent(value, sequence: sequence, location: "events/\(stream)/\(sequence)")
                    } catch {
                        let id = names[stream] ?? "?"
                        report.damagedWorkflows.insert(id)
                        report.problems.append(
                            .init(database: "events", location: "workflow '\(id)' (stream \(stream)), event \(sequence)", message: "\(error)"))
                    }
                }
                try each(environment.timers, txn) { key, value in
                    report.checked["timers", default: 0] += 1
                    do {
                        var reader = try BinaryCodec.open(value, location: "timers")
                        _ = try reader.readString()
                    } catch {
                        report.problems.append(.init(database: "timers", location: "due \(Key.readDue(key))", message: "\(error)"))
                    }
                }
                try each(environment.ids, txn) { key, value in
                    report.checked["ids", default: 0] += 1
                    if value.count != 8 {
                        report.problems.append(
                            .init(database: "ids", location: String(decoding: key, as: UTF8.self), message: "a stream number is 8 bytes, not \(value.count)"))
                    }
                }
                return report
            }
        }
    }

    /// Calls `body` with every key and value of `dbi`.
    private func each(_ dbi: MDB_dbi, _ txn: OpaquePointer, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void) throws {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, dbi, &cursor), "opening a cursor", path: path)
        defer { mdb_cursor_close(cursor) }
        var key = MDB_val()
        var value = MDB_val()
        var rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST)
        while rc == 0 {
            try body(key.buffer, value.buffer)
            rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
        }
        if rc != MDB_NOTFOUND { try check(rc, "verifying", path: path) }
    }
}
