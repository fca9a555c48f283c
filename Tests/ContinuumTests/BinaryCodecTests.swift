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
}
