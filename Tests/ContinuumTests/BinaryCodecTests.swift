@_spi(Testing) import Continuum
import ContinuumTesting
import ContinuumTestSupport
import Testing

@Suite("Binary codec")
struct BinaryCodecTests {
    static let samples: [HistoryEvent] = [
        HistoryEvent(sequence: 0, timestamp: 1_700_000_000_000_000_000, kind: .workflowStarted(type: "onboard", input: Array("{\"id\":1}".utf8))),
        HistoryEvent(sequence: 1, timestamp: -5, kind: .stepCompleted(StepRecord(name: "créer ✓", occurrence: 3, index: 9, concurrent: true), result: [])),
        HistoryEvent(sequence: 2, timestamp: 0, kind: .stepFailed(StepRecord(name: "s", occurrence: 0, index: 0, concurrent: false), failure: FailureRecord(type: "T", message: "m"))),
        HistoryEvent(sequence: 3, timestamp: .max, kind: .workflowCompleted(output: [0, 255])),
        HistoryEvent(sequence: 4, timestamp: .min, kind: .workflowFailed(FailureRecord(type: "", message: String(repeating: "x", count: 10_000)))),
    ]

    @Test("every kind of event round-trips")
    func roundTrip() throws {
        for event in Self.samples {
            #expect(try BinaryCodec.decodeEvent(BinaryCodec.encode(event), sequence: event.sequence) == event)
        }
        let summary = WorkflowSummary(id: "w", type: "t", status: .failed, createdAt: 1, updatedAt: 2)
        #expect(try BinaryCodec.encode(summary).withUnsafeBytes { try BinaryCodec.decodeSummary($0, location: "test") } == summary)
    }

    @Test("CRC-32C matches the standard check value")
    func checkValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
    }

    @Test("every single flipped bit and every truncation is rejected as corruptedData", arguments: 0..<Self.samples.count)
    func corruption(sample: Int) throws {
        let encoded = BinaryCodec.encode(Self.samples[sample])
        for byte in 0..<min(encoded.count, 200) {
            for bit in 0..<8 {
                var damaged = encoded
                damaged[byte] ^= UInt8(1 << bit)
                let error = #expect(throws: ContinuumError.self) { try BinaryCodec.decodeEvent(damaged, sequence: 0, location: "w/0") }
                #expect(error?.code == .corruptedData)
                #expect(error?.message.contains("w/0") == true)
            }
        }
        for length in 0..<encoded.count {
            let error = #expect(throws: ContinuumError.self) { try BinaryCodec.decodeEvent(Array(encoded[0..<length]), sequence: 0) }
            #expect(error?.code == .corruptedData)
        }
    }

    @Test("seeded random payloads round-trip", arguments: 0..<50)
    func randomPayloads(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        let bytes = (0..<Int.random(in: 0...512, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
        let name = String((0..<Int.random(in: 1...40, using: &random)).map { _ in Character(Unicode.Scalar(UInt8.random(in: 32...126, using: &random))) })
        let event = HistoryEvent(
            sequence: UInt32.random(in: 0 ... .max, using: &random), timestamp: Int64.random(in: .min ... .max, using: &random),
            kind: .stepCompleted(
                StepRecord(
                    name: name, occurrence: UInt32.random(in: 0...9, using: &random), index: UInt32.random(in: 0...999, using: &random),
                    concurrent: Bool.random(using: &random)), result: bytes))
        #expect(try BinaryCodec.decodeEvent(BinaryCodec.encode(event), sequence: event.sequence) == event)
    }

    @Test("a summary record's status is read and changed in place: the bytes are those of the whole record re-encoded")
    func summaryInPlace() throws {
        for id in ["w", "a-workflow-id-longer-than-fifteen-bytes", "ünïcødé-id"] {
            let summary = WorkflowSummary(id: id, type: "order.fulfilment", status: .running, createdAt: 1_700_000_000_123, updatedAt: 1_700_000_000_456)
            let stored = BinaryCodec.encode(summary)
            #expect(try stored.withUnsafeBytes { try BinaryCodec.decodeSummaryHead($0, location: "w") }.status == .running)
            for (status, updatedAt) in [(WorkflowStatus.completed, Int64?.some(1_700_000_009_999)), (.suspended, nil)] {
                var writer = ByteWriter()
                try stored.withUnsafeBytes {
                    let head = try BinaryCodec.decodeSummaryHead($0, location: "w")
                    BinaryCodec.encodeSummary($0, head, status: status, updatedAt: updatedAt, into: &writer)
                }
                var expected = summary
                expected.status = status
                expected.updatedAt = updatedAt ?? summary.updatedAt
                #expect(writer.bytes == BinaryCodec.encode(expected))
                #expect(try writer.bytes.withUnsafeBytes { try BinaryCodec.decodeSummary($0, location: "w") } == expected)
            }
        }
    }

    @Test("a damaged summary record, in its envelope or in a body whose checksum holds, is corruptedData naming where it was read")
    func damagedSummary() throws {
        let stored = BinaryCodec.encode(WorkflowSummary(id: "w-1", type: "t", status: .running, createdAt: 1, updatedAt: 2))
        var flipped = stored
        flipped[stored.count - 1] ^= 0x10
        // A status byte no release writes, sealed with a good checksum: only the body's read finds it.
        let badStatus = BinaryCodec.seal { writer in
            writer.write(UInt8(0x80))
            writer.write(string: "w-1")
            writer.write(string: "t")
            writer.write(UInt8(0xEE))
            writer.write(Int64(1))
            writer.write(Int64(2))
        }
        let cut = BinaryCodec.seal { writer in
            writer.write(UInt8(0x80))
            writer.write(UInt32(1000))  // a string said to be longer than the record
        }
        for (value, why) in [(flipped, "checksum mismatch"), (badStatus, "unknown workflow status 238"), (cut, "truncated")] {
            let read = #expect(throws: ContinuumError.self) {
                try value.withUnsafeBytes { try BinaryCodec.decodeSummaryHead($0, location: "store workflows/7") }
            }
            let decoded = #expect(throws: ContinuumError.self) {
                try value.withUnsafeBytes { try BinaryCodec.decodeSummary($0, location: "store workflows/7") }
            }
            for error in [read, decoded] {
                #expect(error?.code == .corruptedData)
                #expect(error?.message.contains("store workflows/7") == true && error?.message.contains(why) == true, "\(error?.message ?? "")")
            }
        }
    }
}
