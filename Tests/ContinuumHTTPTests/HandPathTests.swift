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

    @Test("a body the quick JSON check passes, JSONSerialization accepts; the check refuses what it is unsure of")
    func plainJSON() {
        let plain = [
            #"{"note": "load"}"#, "null", "true", "false", "0", "-0", "12.5", "-3.25", "123456789012345", #""""#, #""a\"b\\c\/d\b\f\n\r\t""#,
            "[]", "{}", " [ 1 , 2 ] ", "\t{\"a\":\r\n[true,false,null,{}]}\n", #"{"a":1,"a":2}"#, #"[[[[[[[[[[1]]]]]]]]]]"#,
            String(repeating: "[", count: 64) + String(repeating: "]", count: 64),
        ]
        for text in plain {
            #expect(JSONText.isPlainlyValid(Array(text.utf8)), "\(text)")
            #expect((try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) != nil, "\(text)")
        }
        // Not plainly valid: invalid, or left to JSONSerialization (exponents, long numbers, \u, beyond ASCII, deep).
        let unsure = [
            "", " ", "{", "}", "[1,]", "{\"a\"}", "{\"a\":}", "{a:1}", "[1 2]", "01", "1.", ".5", "-", "+1", "1e5", "1E-2", "1234567890123456",
            "0.1234567890123456", #""\u0041""#, #""\x""#, "\"a", "\"tab\there\"", "\"café\"", "tru", "nul", "truex", "1 2", "{\"a\":1}}",
            "[\0]", String(repeating: "[", count: 65) + String(repeating: "]", count: 65), "'a'", "NaN", "Infinity",
        ]
        for text in unsure {
            #expect(!JSONText.isPlainlyValid(Array(text.utf8)), "\(text)")
        }
        // And the full check still decides those.
        #expect(JSONText.isValid(Array("1e5".utf8)))
        #expect(JSONText.isValid(Array(#""\u0041""#.utf8)))
        #expect(JSONText.isValid(Array("\"café\"".utf8)))
        #expect(!JSONText.isValid(Array("{".utf8)))
        #expect(!JSONText.isValid(Array("tru".utf8)))
        #expect(!JSONText.isValid(Array("[\0]".utf8)))
    }
}
