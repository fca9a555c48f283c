/// The compact binary form of stored values.
///
/// Every value is `[format: UInt8][crc32c(body): UInt32 LE][body]`. The format byte lets a
/// later release change the body while still reading old values; the checksum turns a flipped
/// or truncated byte into ``ContinuumError/Code/corruptedData`` instead of wrong data.
package enum BinaryCodec {
    /// The format byte written by this release.
    package static let currentFormat: UInt8 = 1
    static let headerSize = 5

    // MARK: Envelope

    /// Wraps `body` in the envelope: format byte and checksum.
    package static func seal(_ body: (inout ByteWriter) -> Void) -> [UInt8] {
        var writer = ByteWriter()
        writer.bytes.reserveCapacity(64)
        seal(into: &writer, body)
        return writer.bytes
    }

    /// ``seal(_:)`` into `writer`, emptied first: a caller that encodes value after value (the
    /// store's writer thread) reuses one buffer instead of allocating one per value.
    package static func seal(into writer: inout ByteWriter, _ body: (inout ByteWriter) -> Void) {
        openSeal(&writer)
        body(&writer)
        closeSeal(&writer)
    }

    /// Empties `writer` and writes the envelope's header, its checksum left blank.
    private static func openSeal(_ writer: inout ByteWriter) {
        writer.bytes.removeAll(keepingCapacity: true)
        writer.write(currentFormat)
        writer.write(UInt32(0))
    }

    /// Fills in the checksum of the body written after ``openSeal(_:)``.
    private static func closeSeal(_ writer: inout ByteWriter) {
        let crc = writer.bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[headerSize...])) }
        writer.bytes.withUnsafeMutableBytes { $0.storeBytes(of: crc.littleEndian, toByteOffset: 1, as: UInt32.self) }
    }

    /// Checks the envelope of `value` and reads its body with `body`.
    ///
    /// `location` is built only when the value is damaged: it names a value by its workflow and
    /// sequence, and every event a wake or a recovery reads passes here.
    ///
    /// - Parameter location: where the value was read from, for the error message.
    /// - Throws: ``ContinuumError/Code/corruptedData`` when the format is unknown, the checksum
    ///   fails or `body` finds the bytes damaged; what `body` throws otherwise.
    package static func read<T>(
        _ value: UnsafeRawBufferPointer, location: @autoclosure () -> String, _ body: (inout ByteReader) throws -> T
    ) throws -> T {
        do {
            var reader = try open(value)
            return try body(&reader)
        } catch let damage as ByteReader.Damage {
            throw corrupted(damage.what, location())
        }
    }

    private static func open(_ value: UnsafeRawBufferPointer) throws(ByteReader.Damage) -> ByteReader {
        guard value.count >= headerSize else {
            throw ByteReader.Damage("value is \(value.count) bytes, shorter than its header")
        }
        guard value[0] == currentFormat else {
            throw ByteReader.Damage("unknown format byte \(value[0]) (this release reads format \(currentFormat))")
        }
        let stored = UInt32(littleEndian: value.loadUnaligned(fromByteOffset: 1, as: UInt32.self))
        let body = UnsafeRawBufferPointer(rebasing: value[headerSize...])
        let actual = CRC32C.checksum(body)
        guard stored == actual else {
            throw ByteReader.Damage("checksum mismatch (stored \(hex(stored)), computed \(hex(actual)))")
        }
        return ByteReader(body)
    }

    static func corrupted(_ what: String, _ location: String) -> ContinuumError {
        ContinuumError(
            .corruptedData,
            "Stored value at \(location) is damaged: \(what). The workflow it belongs to is suspended; "
                + "restore the data directory from a backup or remove the workflow.")
    }

    private static func hex(_ value: UInt32) -> String { "0x" + String(value, radix: 16) }

    // MARK: Events

    /// Encodes an event's value (its sequence number lives in the key).
    package static func encode(_ event: HistoryEvent) -> [UInt8] {
        seal { writeBody(of: event.kind, at: event.timestamp, to: &$0) }
    }

    /// Encodes an event's value into `writer` (emptied first).
    package static func encode(_ event: HistoryEvent, into writer: inout ByteWriter) {
        // Without a closure: one that captured the event copied it, retaining its kind's
        // references, for every event the store's writer encodes. And the kind is handed to
        // `writeBody` on its own: switched over inside a function that took the whole event, it
        // was copied out first.
        openSeal(&writer)
        writeBody(of: event.kind, at: event.timestamp, to: &writer)
        closeSeal(&writer)
    }

    private static func writeBody(of kind: HistoryEvent.Kind, at timestamp: Int64, to writer: inout ByteWriter) {
        switch kind {
        case .workflowStarted(let type, let input, let traceContext):
            writer.write(UInt8(1))
            writer.write(timestamp)
            writer.write(string: type)
            writer.write(bytes: input)
            // Appended only when present, so values written before tracing existed still decode.
            if !traceContext.isEmpty {
                writer.write(UInt32(traceContext.count))
                for (key, value) in traceContext.sorted(by: { $0.key < $1.key }) {
                    writer.write(string: key)
                    writer.write(string: value)
                }
            }
        case .stepCompleted(let step, let result):
            writer.write(UInt8(2))
            writer.write(timestamp)
            writer.write(step)
            writer.write(bytes: result)
        case .stepFailed(let step, let failure):
            writer.write(UInt8(3))
            writer.write(timestamp)
            writer.write(step)
            writer.write(failure)
        case .workflowCompleted(let output):
            writer.write(UInt8(4))
            writer.write(timestamp)
            writer.write(bytes: output)
        case .workflowFailed(let failure):
            writer.write(UInt8(5))
            writer.write(timestamp)
            writer.write(failure)
        case .waitStarted(let step, let wait, let due):
            writer.write(UInt8(6))
            writer.write(timestamp)
            writer.write(step)
            writer.write(wait)
            writer.write(UInt8(due == nil ? 0 : 1))
            writer.write(due ?? 0)
        case .waitEnded(let key, let outcome):
            writer.write(UInt8(7))
            writer.write(timestamp)
            writer.write(string: key.name)
            writer.write(key.occurrence)
            writer.write(outcome)
        case .cancelRequested(let reason, let by):
            writer.write(UInt8(10))
            writer.write(timestamp)
            writer.write(string: reason)
            // Appended only when known, so values written before it existed still decode.
            if let by { writer.write(string: by) }
        case .workflowCancelled(let reason):
            writer.write(UInt8(11))
            writer.write(timestamp)
            writer.write(string: reason)
        case .stepRetrying(let step, let attempt, let failure, let next):
            writer.write(UInt8(9))
            writer.write(timestamp)
            writer.write(step)
            writer.write(attempt)
            writer.write(failure)
            writer.write(next)
        case .eventReceived(let name, let payload, let dedupKey):
            writer.write(UInt8(8))
            writer.write(timestamp)
            writer.write(string: name)
            writer.write(bytes: payload)
            writer.write(UInt8(dedupKey == nil ? 0 : 1))
            writer.write(string: dedupKey ?? "")
        case .workflowSuspended(let record):
            writer.write(UInt8(12))
            writer.write(timestamp)
            writer.write(record)
        case .workflowResumed(let action):
            writer.write(UInt8(13))
            writer.write(timestamp)
            writer.write(action)
        case .workflowReset(let toSequence, let generation, let action):
            writer.write(UInt8(14))
            writer.write(timestamp)
            writer.write(toSequence)
            writer.write(generation)
            writer.write(action)
        case .workflowForked(let from, let sequence, let action):
            writer.write(UInt8(15))
            writer.write(timestamp)
            writer.write(string: from)
            writer.write(sequence)
            writer.write(action)
        case .markerRecorded(let id):
            writer.write(UInt8(16))
            writer.write(timestamp)
            writer.write(string: id)
        case .startedAsChild(let parent, let key):
            writer.write(UInt8(17))
            writer.write(timestamp)
            writer.write(string: parent)
            writer.write(string: key)
        case .deadlineSet(let due):
            writer.write(UInt8(18))
            writer.write(timestamp)
            writer.write(due)
        case .deadlinePassed:
            writer.write(UInt8(19))
            writer.write(timestamp)
        case .continuedAsNew(let input):
            writer.write(UInt8(20))
            writer.write(timestamp)
            writer.write(bytes: input)
        case .enqueued(let entry):
            writer.write(UInt8(21))
            writer.write(timestamp)
            writer.write(string: entry.name)
            writer.write(optional: entry.partition)
            writer.write(Int64(entry.priority))
        }
    }

    /// Decodes an event's value.
    ///
    /// - Throws: ``ContinuumError/Code/corruptedData`` with `location` in its message.
    package static func decodeEvent(
        _ value: UnsafeRawBufferPointer, sequence: UInt32, location: @autoclosure () -> String
    ) throws -> HistoryEvent {
        try read(value, location: location()) { reader in try readEvent(&reader, sequence: sequence) }
    }

    private static func readEvent(_ reader: inout ByteReader, sequence: UInt32) throws -> HistoryEvent {
        let tag: UInt8 = try reader.read()
        let timestamp: Int64 = try reader.read()
        let kind: HistoryEvent.Kind
        switch tag {
        case 1:
            let type = try reader.readString()
            let input = try reader.readBytes()
            var traceContext: [String: String] = [:]
            if !reader.isAtEnd {
                let count: UInt32 = try reader.read()
                for _ in 0..<count {
                    let key = try reader.readString()
                    traceContext[key] = try reader.readString()
                }
            }
            kind = .workflowStarted(type: type, input: input, traceContext: traceContext)
        case 2: kind = .stepCompleted(try reader.readStep(), result: try reader.readBytes())
        case 3: kind = .stepFailed(try reader.readStep(), failure: try reader.readFailure())
        case 4: kind = .workflowCompleted(output: try reader.readBytes())
        case 5: kind = .workflowFailed(try reader.readFailure())
        case 6:
            let step = try reader.readStep()
            let wait = try reader.readWaitKind()
            let hasDue: UInt8 = try reader.read()
            let due: Int64 = try reader.read()
            kind = .waitStarted(step, wait: wait, due: hasDue == 1 ? due : nil)
        case 7:
            let key = StepKey(name: try reader.readString(), occurrence: try reader.read())
            kind = .waitEnded(key, outcome: try reader.readWaitOutcome())
        case 10: kind = .cancelRequested(reason: try reader.readString(), by: reader.isAtEnd ? nil : try reader.readString())
        case 11: kind = .workflowCancelled(reason: try reader.readString())
        case 9:
            kind = .stepRetrying(
                try reader.readStep(), attempt: try reader.read(), failure: try reader.readFailure(), nextAttemptAt: try reader.read())
        case 8:
            let name = try reader.readString()
            let payload = try reader.readBytes()
            let hasKey: UInt8 = try reader.read()
            let key = try reader.readString()
            kind = .eventReceived(name: name, payload: payload, dedupKey: hasKey == 1 ? key : nil)
        case 12: kind = .workflowSuspended(try reader.readSuspension())
        case 13: kind = .workflowResumed(try reader.readAction())
        case 14: kind = .workflowReset(toSequence: try reader.read(), generation: try reader.read(), try reader.readAction())
        case 15: kind = .workflowForked(from: try reader.readString(), sequence: try reader.read(), try reader.readAction())
        case 16: kind = .markerRecorded(try reader.readString())
        case 17: kind = .startedAsChild(parent: try reader.readString(), key: try reader.readString())
        case 18: kind = .deadlineSet(due: try reader.read())
        case 19: kind = .deadlinePassed
        case 20: kind = .continuedAsNew(input: try reader.readBytes())
        case 21:
            kind = .enqueued(
                QueueEntry(try reader.readString(), partition: try reader.readOptionalString(), priority: Int(try reader.read() as Int64)))
        default: throw ByteReader.Damage("unknown event tag \(tag)")
        }
        try reader.expectEnd()
        return HistoryEvent(sequence: sequence, timestamp: timestamp, kind: kind)
    }

    /// Decodes an event from an array (convenience for tests and tools).
    package static func decodeEvent(_ value: [UInt8], sequence: UInt32, location: String = "memory") throws -> HistoryEvent {
        try value.withUnsafeBytes { try decodeEvent($0, sequence: sequence, location: location) }
    }

    // MARK: Workflow records

    /// Encodes a workflow's summary record.
    package static func encode(_ summary: WorkflowSummary) -> [UInt8] {
        var writer = ByteWriter()
        encode(summary, into: &writer)
        return writer.bytes
    }

    /// Encodes a workflow's summary record into `writer` (emptied first).
    package static func encode(_ summary: WorkflowSummary, into writer: inout ByteWriter) {
        openSeal(&writer)
        writer.write(UInt8(0x80))
        writer.write(string: summary.id)
        writer.write(string: summary.type)
        writer.write(summary.status.storedByte)
        writer.write(summary.createdAt)
        writer.write(summary.updatedAt)
        closeSeal(&writer)
    }

    /// Decodes a workflow's summary record.
    package static func decodeSummary(_ value: UnsafeRawBufferPointer, location: @autoclosure () -> String) throws -> WorkflowSummary {
        try read(value, location: location(), readSummary)
    }

    private static func readSummary(_ reader: inout ByteReader) throws -> WorkflowSummary {
        guard try reader.read() as UInt8 == 0x80 else { throw ByteReader.Damage("not a workflow record") }
        let id = try reader.readString()
        let type = try reader.readString()
        let status = try readStatus(&reader)
        let createdAt: Int64 = try reader.read()
        let updatedAt: Int64 = try reader.read()
        try reader.expectEnd()
        return WorkflowSummary(id: id, type: type, status: status, createdAt: createdAt, updatedAt: updatedAt)
    }

    private static func readStatus(_ reader: inout ByteReader) throws -> WorkflowStatus {
        let rawStatus: UInt8 = try reader.read()
        guard let status = WorkflowStatus(storedByte: rawStatus) else {
            throw ByteReader.Damage("unknown workflow status \(rawStatus)")
        }
        return status
    }

    /// Reads a summary record up to its status, skipping its id and type without copying them
    /// out: the reader is left at its times.
    private static func readToStatus(_ reader: inout ByteReader) throws -> WorkflowStatus {
        guard try reader.read() as UInt8 == 0x80 else { throw ByteReader.Damage("not a workflow record") }
        try reader.skipString()
        try reader.skipString()
        return try readStatus(&reader)
    }

    /// A workflow's summary record read in place, its id and type not copied out: what the
    /// store's writer needs to change its status, on every workflow's last append.
    ///
    /// - Throws: ``ContinuumError/Code/corruptedData`` with `location` in its message.
    package static func decodeSummaryHead(_ value: UnsafeRawBufferPointer, location: @autoclosure () -> String) throws -> SummaryHead {
        try read(value, location: location()) { reader in
            let status = try readToStatus(&reader)
            let prefix = reader.consumed.count - 1  // the marker, the id and the type
            let createdAt: Int64 = try reader.read()
            let updatedAt: Int64 = try reader.read()
            try reader.expectEnd()
            return SummaryHead(status: status, prefix: prefix, createdAt: createdAt, updatedAt: updatedAt)
        }
    }

    /// Encodes into `writer` (emptied first) the summary record `value`, which
    /// ``decodeSummaryHead(_:location:)`` read as `head`, with `status`, and `updatedAt` when
    /// given: its id and type are copied as bytes.
    package static func encodeSummary(
        _ value: UnsafeRawBufferPointer, _ head: SummaryHead, status: WorkflowStatus, updatedAt: Int64?, into writer: inout ByteWriter
    ) {
        openSeal(&writer)
        writer.bytes.append(contentsOf: value[headerSize..<headerSize + head.prefix])
        writer.write(status.storedByte)
        writer.write(head.createdAt)
        writer.write(updatedAt ?? head.updatedAt)
        closeSeal(&writer)
    }
}

/// A workflow's summary record as ``BinaryCodec/decodeSummaryHead(_:location:)`` read it in place.
package struct SummaryHead {
    /// The record's status.
    package var status: WorkflowStatus
    /// How many bytes of the body come before the status.
    fileprivate var prefix: Int
    fileprivate var createdAt: Int64
    fileprivate var updatedAt: Int64
}

/// Appends fixed-width little-endian integers and length-prefixed strings to a byte array.
package struct ByteWriter {
    /// The bytes written so far.
    package var bytes: [UInt8] = []

    /// Creates an empty writer.
    package init() {}

    /// Appends `value` in little-endian order.
    package mutating func write<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends a length-prefixed byte string.
    package mutating func write(bytes value: [UInt8]) {
        write(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    /// Appends a length-prefixed UTF-8 string.
    package mutating func write(string value: String) {
        // A native string's bytes are read where they lie: the copy `withUTF8` needs (it may
        // make a bridged string contiguous) retained it, for every string of every value.
        let written: Void? = value.utf8.withContiguousStorageIfAvailable { utf8 in
            write(UInt32(utf8.count))
            bytes.append(contentsOf: utf8)
        }
        guard written == nil else { return }
        var value = value
        value.withUTF8 { utf8 in
            write(UInt32(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    mutating func write(_ step: StepRecord) {
        write(string: step.name)
        write(step.occurrence)
        write(step.index)
        // Bit 0: concurrent; bit 1: a fingerprint follows (values written before fingerprints had none).
        write(UInt8((step.concurrent ? 1 : 0) | (step.fingerprint == nil ? 0 : 2)))
        if let fingerprint = step.fingerprint { write(string: fingerprint) }
    }

    mutating func write(_ failure: FailureRecord) {
        write(string: failure.type)
        write(string: failure.message)
    }

    mutating func write(_ action: ActionRecord) {
        write(string: action.by)
        write(string: action.reason)
    }

    mutating func write(optional value: UInt32?) {
        write(UInt8(value == nil ? 0 : 1))
        if let value { write(value) }
    }

    mutating func write(optional key: StepKey?) {
        write(UInt8(key == nil ? 0 : 1))
        if let key {
            write(string: key.name)
            write(key.occurrence)
        }
    }

    mutating func write(optional string: String?) {
        write(UInt8(string == nil ? 0 : 1))
        if let string { write(string: string) }
    }

    mutating func write(_ wait: WaitKind) {
        switch wait {
        case .timer:
            write(UInt8(1))
        case .event(let name):
            write(UInt8(2))
            write(string: name)
        }
    }

    mutating func write(_ outcome: WaitOutcome) {
        switch outcome {
        case .fired(let lateness):
            write(UInt8(1))
            write(lateness)
        case .received(let sequence):
            write(UInt8(2))
            write(sequence)
        case .timedOut:
            write(UInt8(3))
        case .cancelled:
            write(UInt8(4))
        }
    }

    mutating func write(_ record: SuspensionRecord) {
        write(string: record.code)
        write(string: record.message)
        write(optional: record.index)
        write(optional: record.recorded)
        write(optional: record.requested)
        write(optional: record.build)
    }
}

/// Reads what a ``ByteWriter`` wrote, refusing to read past the end.
///
/// Made only by ``BinaryCodec/read(_:location:_:)``, which turns the ``Damage`` its reads throw
/// into ``ContinuumError/Code/corruptedData`` naming where the value was read from.
package struct ByteReader {
    /// What is wrong with the bytes being read; never seen outside ``BinaryCodec/read(_:location:_:)``.
    package struct Damage: Error {
        package var what: String
        package init(_ what: String) { self.what = what }
    }

    private let buffer: UnsafeRawBufferPointer
    private var offset = 0

    fileprivate init(_ buffer: UnsafeRawBufferPointer) {
        self.buffer = buffer
    }

    private func need(_ count: Int) throws(Damage) {
        guard count >= 0, buffer.count - offset >= count else {
            throw Damage("truncated: needed \(count) bytes at offset \(offset) of \(buffer.count)")
        }
    }

    /// Whether every byte has been read.
    package var isAtEnd: Bool { offset == buffer.count }

    /// Reads a little-endian integer.
    package mutating func read<T: FixedWidthInteger>() throws -> T {
        try need(MemoryLayout<T>.size)
        let value = T(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += MemoryLayout<T>.size
        return value
    }

    /// Reads a length-prefixed byte string.
    package mutating func readBytes() throws -> [UInt8] {
        let count = Int(try read() as UInt32)
        try need(count)
        defer { offset += count }
        return Array(UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + count]))
    }

    /// Skips a length-prefixed string.
    package mutating func skipString() throws {
        let count = Int(try read() as UInt32)
        try need(count)
        offset += count
    }

    /// The bytes read so far.
    package var consumed: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: buffer[..<offset]) }

    /// Reads a length-prefixed UTF-8 string.
    package mutating func readString() throws -> String {
        let count = Int(try read() as UInt32)
        try need(count)
        defer { offset += count }
        let slice = UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + count])
        guard let string = String(validating: slice.assumingMemoryBound(to: UInt8.self), as: UTF8.self) else {
            throw Damage("invalid UTF-8 in a string")
        }
        return string
    }

    mutating func readStep() throws -> StepRecord {
        let name = try readString()
        let occurrence: UInt32 = try read()
        let index: UInt32 = try read()
        let flags: UInt8 = try read()
        let fingerprint = flags & 2 != 0 ? try readString() : nil
        return StepRecord(name: name, occurrence: occurrence, index: index, concurrent: flags & 1 != 0, fingerprint: fingerprint)
    }

    mutating func readAction() throws -> ActionRecord {
        ActionRecord(by: try readString(), reason: try readString())
    }

    mutating func readOptional() throws -> UInt32? {
        try read() as UInt8 == 0 ? nil : try read()
    }

    mutating func readOptionalKey() throws -> StepKey? {
        try read() as UInt8 == 0 ? nil : StepKey(name: try readString(), occurrence: try read())
    }

    mutating func readOptionalString() throws -> String? {
        try read() as UInt8 == 0 ? nil : try readString()
    }

    mutating func readFailure() throws -> FailureRecord {
        FailureRecord(type: try readString(), message: try readString())
    }

    mutating func readWaitKind() throws -> WaitKind {
        switch try read() as UInt8 {
        case 1: return .timer
        case 2: return .event(try readString())
        case let other: throw Damage("unknown wait kind \(other)")
        }
    }

    mutating func readWaitOutcome() throws -> WaitOutcome {
        switch try read() as UInt8 {
        case 1: return .fired(latenessNanoseconds: try read())
        case 2: return .received(sequence: try read())
        case 3: return .timedOut
        case 4: return .cancelled
        case let other: throw Damage("unknown wait outcome \(other)")
        }
    }

    mutating func readSuspension() throws -> SuspensionRecord {
        SuspensionRecord(
            code: try readString(), message: try readString(), index: try readOptional(), recorded: try readOptionalKey(),
            requested: try readOptionalKey(), build: try readOptionalString())
    }

    /// Throws unless every byte has been read.
    package func expectEnd() throws {
        guard offset == buffer.count else {
            throw Damage("\(buffer.count - offset) unexpected trailing bytes")
        }
    }
}

extension WorkflowStatus {
    /// The byte that stands for the status in stored records and status indexes.
    package var storedByte: UInt8 {
        switch self {
        case .running: 1
        case .completed: 2
        case .failed: 3
        case .suspended: 4
        case .cancelled: 5
        }
    }

    /// The status a stored byte stands for, or `nil` for an unknown byte.
    package init?(storedByte: UInt8) {
        switch storedByte {
        case 1: self = .running
        case 2: self = .completed
        case 3: self = .failed
        case 4: self = .suspended
        case 5: self = .cancelled
        default: return nil
        }
    }
}
