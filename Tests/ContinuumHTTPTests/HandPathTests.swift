import Continuum
@testable import ContinuumHTTP
import Foundation
import Testing

/// The event route's hand-written paths give what the Foundation calls they stand in for gave.
@Suite("HTTP hand paths")
struct HandPathTests {
    @Test("a control character is exactly general category Cc, over every scalar")
    func controlCharacters() {
        var mismatches: [UInt32] = []
        for value in UInt32(0)...0x10FFFF {
            guard let scalar = Unicode.Scalar(value) else { continue }
            if isControl(scalar) != (scalar.properties.generalCategory == .control) { mismatches.append(value) }
        }
        #expect(mismatches.isEmpty)
    }

    @Test("a receipt is written byte for byte as the API's JSONEncoder writes it", arguments: [
        "po-1", "po/1", "a b", "~!@#$%^&*()_+{}|:<>?`-=[];',.", "quote\"d", "back\\slash", "café", "tab\there", "del\u{7F}", "\u{2028}",
    ])
    func receipt(id: String) throws {
        for (sequence, duplicate) in [(UInt32(0), false), (7, true), (UInt32.max, false)] {
            let receipt = EventReceipt(workflowID: id, sequence: sequence, duplicate: duplicate)
            let expected = try APIJSON.encoder.encode(receipt)
            #expect(try EventReceiptAnswer.json(receipt) == Array(expected), "\(String(decoding: expected, as: UTF8.self))")
        }
    }
}
