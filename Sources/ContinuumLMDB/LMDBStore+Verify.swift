import CLMDB
public import Continuum

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
                        _ = try BinaryCodec.read(value, location: "timers") { try $0.readString() }
                    } catch {
                        report.problems.append(.init(database: "timers", location: "due \(Key.readDue(key))", message: "\(error)"))
                    }
                }
                // A damaged snapshot costs nothing but speed (a wake folds the events instead),
                // yet it is damage on disk: reported, without marking the workflow damaged.
                if let snapshots = environment.snapshots {
                    try each(snapshots, txn) { key, value in
                        report.checked["snapshots", default: 0] += 1
                        let stream = Key.readUInt64(key)
                        do {
                            guard let snapshot = Key.readSnapshot(value) else { throw ContinuumError(.corruptedData, "shorter than its header") }
                            _ = try WorkflowState(snapshot: snapshot)
                        } catch {
                            report.problems.append(
                                .init(database: "snapshots", location: "workflow '\(names[stream] ?? "?")' (stream \(stream))", message: "\(error)"))
                        }
                    }
                }
                // The kept counts must match the status index they count.
                var indexed = StatusIndexCounts()
                try each(environment.byStatus, txn) { key, _ in
                    if key.count == 9 { indexed[key[0]] += 1 }
                }
                let kept = try StatusIndexCounts.read(environment, txn: txn)
                report.checked["counts", default: 0] += 1
                if kept.statusCounts != indexed.statusCounts {
                    report.problems.append(
                        .init(database: "meta", location: "counts", message: "kept counts \(kept.statusCounts.byStatus) differ from the index's \(indexed.statusCounts.byStatus)"))
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

extension LMDBStore {
    /// Flips one bit in the stored value of event `sequence` of workflow `id`, as a failing disk
    /// would, without touching its checksum: the next read reports `corruptedData`.
    @_spi(Testing)
    public func damage(id: String, sequence: UInt32) async throws(ContinuumError) {
        try await withCheckedContinuation { continuation in
            writer.submit(
                .raw(
                    { environment, txn in
                        var streamValue = MDB_val()
                        let found = withVal(Array(id.utf8)) { key in mdb_get(txn, environment.ids, &key, &streamValue) }
                        guard found == 0 else { throw ContinuumError(.unknownWorkflow, "No workflow has id '\(id)'.") }
                        let key = Key.event(Key.readUInt64(streamValue.buffer), sequence)
                        var bytes: [UInt8] = try withVal(key) { key in
                            var value = MDB_val()
                            guard mdb_get(txn, environment.events, &key, &value) == 0 else {
                                throw ContinuumError(.invalidArgument, "Workflow '\(id)' has no event \(sequence).")
                            }
                            return Array(value.buffer)
                        }
                        bytes[bytes.count - 1] ^= 0x40
                        let rc = withVal(key) { key in withVal(bytes) { value in mdb_put(txn, environment.events, &key, &value, 0) } }
                        try check(rc, "damaging an event", path: environment.path)
                    }, { continuation.resume(returning: $0) }))
        }.get()
    }
}
