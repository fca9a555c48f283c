@testable import Continuum
import ContinuumTestSupport
import Foundation
import Testing

/// The scalar fast path must write exactly what `JSONEncoder` writes and read exactly what
/// `JSONDecoder` reads: stored histories and dedup comparisons depend on the bytes.
@Suite("Scalar JSON")
struct ScalarJSONTests {
    private static func foundation<T: Encodable>(_ value: T) throws -> [UInt8] { Array(try JSONEncoder().encode(value)) }

    @Test("Int, Bool and plain ASCII String encode byte for byte as JSONEncoder does, and decode back", arguments: 0..<20)
    func sameBytes(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        var ints = [0, 1, -1, 9, 10, -10, Int.max, Int.min, Int.max - 1, Int.min + 1, 999_999_999_999_999_999, -999_999_999_999_999_999]
        for _ in 0..<200 { ints.append(Int.random(in: .min ... .max, using: &random)) }
        for _ in 0..<200 { ints.append(Int.random(in: -100_000...100_000, using: &random)) }
        for value in ints {
            let expected = try Self.foundation(value)
            #expect(try PayloadCoder.encode(value, what: "int") == expected, "\(value)")
            #expect(try PayloadCoder.decode(Int.self, from: expected, what: "int") == value, "\(value)")
        }
        for value in [true, false] {
            let expected = try Self.foundation(value)
            #expect(try PayloadCoder.encode(value, what: "bool") == expected)
            #expect(try PayloadCoder.decode(Bool.self, from: expected, what: "bool") == value)
        }
        // Strings from every printable ASCII character and a few others (escaped by JSONEncoder,
        // so taken by Foundation): the result must not depend on which path took them.
        let alphabet = (0x20..<0x7F).map { Character(UnicodeScalar($0)) } + ["\n", "\t", "é", "日", "\u{7F}", "\u{01}"]
        var strings = ["", "a", "/", "\"", "\\", "a/b", "order-42", "\u{1F600}"]
        for _ in 0..<300 {
            strings.append(String((0..<Int.random(in: 0...24, using: &random)).map { _ in alphabet.randomElement(using: &random)! }))
        }
        for value in strings {
            let expected = try Self.foundation(value)
            #expect(try PayloadCoder.encode(value, what: "string") == expected, "\(value.debugDescription)")
            #expect(try PayloadCoder.decode(String.self, from: expected, what: "string") == value, "\(value.debugDescription)")
        }
    }

    @Test("bytes the fast path does not take are decoded, or refused, exactly as JSONDecoder does")
    func sameAnswers() throws {
        let inputs = [
            "42", "-0", "0", "007", "-", "", " 42", "42 ", "4.0", "1e3", "+1", "99999999999999999999", "-9223372036854775808",
            "9223372036854775807", "9223372036854775808", "true", "false", "True", "null", "\"a\"", "\"a\\/b\"", "\"a/b\"",
            "\"\\u0041\"", "\"unterminated", "\"tab\there\"", "\"é\"", "[1]",
        ]
        for input in inputs {
            let bytes = Array(input.utf8)
            for check in [Self.compare(Int.self, bytes), Self.compare(Bool.self, bytes), Self.compare(String.self, bytes)] {
                #expect(check.fast == check.foundation, "\(input.debugDescription): fast path \(check.fast), Foundation \(check.foundation)")
            }
        }
    }

    /// What `PayloadCoder.decode` and `JSONDecoder` each make of `bytes`: the value's description, or "refused".
    private static func compare<T: Decodable & Sendable>(_ type: T.Type, _ bytes: [UInt8]) -> (fast: String, foundation: String) {
        let fast = (try? PayloadCoder.decode(T.self, from: bytes, what: "probe")).map { "\($0)" } ?? "refused"
        let foundation = (try? JSONDecoder().decode(T.self, from: Data(bytes))).map { "\($0)" } ?? "refused"
        return (fast, foundation)
    }
}
