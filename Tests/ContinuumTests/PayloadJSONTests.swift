@testable import Continuum
import ContinuumTestSupport
import Foundation
import Testing

/// The struct-payload coders must agree with Foundation's: with `sortedKeys` byte for byte
/// (start inputs are compared by their bytes), otherwise value for value; and decoding must
/// give what `JSONDecoder` gives, or leave the bytes to it.
@Suite("Payload JSON")
struct PayloadJSONTests {
    // MARK: Shapes payloads take

    enum Shape: Codable, Equatable {
        case circle(radius: Double)
        case rect(width: Int, height: Int)
        case point
    }

    enum Color: String, Codable, CaseIterable {
        case red, green, blue
    }

    struct Empty: Codable, Equatable {}

    struct Leaf: Codable, Equatable {
        var name: String
        var count: Int
        var ratio: Double
        var flag: Bool?
        var tags: [String]
        var small: Int8
        var big: UInt64
        var single: Float
        var wide: Int64
    }

    struct Tree: Codable, Equatable {
        var leaves: [Leaf]
        var byName: [String: Int]
        var byID: [Int: String]
        var shape: Shape
        var color: Color
        var when: Date
        var blob: Data
        var link: URL?
        var grid: [[Int]]
        var holes: [Int?]
        var empty: Empty
        var child: [Tree]
        var unsigned: UInt32
    }

    // MARK: Random values

    private static let alphabet: [Character] =
        (0x20..<0x7F).map { Character(UnicodeScalar($0)) } + ["\n", "\t", "\u{08}", "\u{0C}", "\r", "\u{01}", "\u{1F}", "é", "日", "\u{7F}", "\u{1F600}", "e\u{301}"]

    private static func string(_ random: inout SeededGenerator, max: Int = 12) -> String {
        String((0..<Int.random(in: 0...max, using: &random)).map { _ in alphabet.randomElement(using: &random)! })
    }

    /// Keys: mostly identifiers (what the fast path takes), sometimes anything.
    private static func key(_ random: inout SeededGenerator) -> String {
        if Int.random(in: 0..<8, using: &random) == 0 { return string(&random) }
        let letters = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
        return String((0..<Int.random(in: 1...10, using: &random)).map { _ in letters.randomElement(using: &random)! })
    }

    private static func double(_ random: inout SeededGenerator) -> Double {
        switch Int.random(in: 0..<6, using: &random) {
        case 0: Double(Int.random(in: -1000...1000, using: &random))
        case 1: Double.random(in: -1...1, using: &random)
        case 2: Double(bitPattern: UInt64.random(in: 0...UInt64.max, using: &random)).isFinite ? Double(bitPattern: UInt64.random(in: 0...UInt64.max, using: &random)) : 0.5
        case 3: [0.1, 1e21, 1e-7, -0.0, Double.leastNonzeroMagnitude, Double.greatestFiniteMagnitude, 123456789.125].randomElement(using: &random)!
        default: Double.random(in: -1e12...1e12, using: &random)
        }
    }

    private static func leaf(_ random: inout SeededGenerator) -> Leaf {
        let ratio = double(&random)
        return Leaf(
            name: string(&random), count: Int.random(in: .min ... .max, using: &random), ratio: ratio,
            flag: [true, false, nil].randomElement(using: &random)!,
            tags: (0..<Int.random(in: 0...3, using: &random)).map { _ in string(&random) },
            small: Int8.random(in: .min ... .max, using: &random), big: UInt64.random(in: .min ... .max, using: &random),
            single: Float(ratio).isFinite ? Float(ratio) : 1.5, wide: Int64.random(in: .min ... .max, using: &random))
    }

    private static func tree(_ random: inout SeededGenerator, depth: Int = 0) -> Tree {
        var byName: [String: Int] = [:]
        for _ in 0..<Int.random(in: 0...(Int.random(in: 0..<4, using: &random) == 0 ? 40 : 5), using: &random) {
            byName[key(&random)] = Int.random(in: -99...99, using: &random)
        }
        var byID: [Int: String] = [:]
        for _ in 0..<Int.random(in: 0...3, using: &random) { byID[Int.random(in: -50...50, using: &random)] = string(&random) }
        let shapes: [Shape] = [.circle(radius: double(&random)), .rect(width: Int.random(in: 0...9, using: &random), height: -3), .point]
        return Tree(
            leaves: (0..<Int.random(in: 0...3, using: &random)).map { _ in leaf(&random) },
            byName: byName, byID: byID, shape: shapes.randomElement(using: &random)!, color: Color.allCases.randomElement(using: &random)!,
            when: Date(timeIntervalSince1970: Double(Int.random(in: 0...2_000_000_000, using: &random)) + 0.25),
            blob: Data((0..<Int.random(in: 0...9, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }),
            link: Bool.random(using: &random) ? URL(string: "https://example.com/orders/\(Int.random(in: 0...999, using: &random))?q=a%20b") : nil,
            grid: (0..<Int.random(in: 0...3, using: &random)).map { _ in (0..<Int.random(in: 0...3, using: &random)).map { _ in Int.random(in: -9...9, using: &random) } },
            holes: [1, nil, 3], empty: Empty(),
            child: depth < 2 && Bool.random(using: &random) ? [tree(&random, depth: depth + 1)] : [],
            unsigned: UInt32.random(in: .min ... .max, using: &random))
    }

    private static func foundation<T: Encodable>(_ value: T, sorted: Bool) throws -> [UInt8] {
        let encoder = JSONEncoder()
        if sorted { encoder.outputFormatting = [.sortedKeys] }
        return Array(try encoder.encode(value))
    }

    // MARK: Tests

    @Test("with sortedKeys, values encode byte for byte as JSONEncoder writes them", arguments: 0..<8)
    func sortedBytes(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        var fast = 0
        for _ in 0..<60 {
            let value = Self.tree(&random)
            let expected = try Self.foundation(value, sorted: true)
            if let bytes = PayloadJSONWriter.encode(value, sortedKeys: true) {
                fast += 1
                #expect(bytes == expected, "\(String(decoding: bytes, as: UTF8.self))\n\(String(decoding: expected, as: UTF8.self))")
            }
            #expect(try PayloadCoder.encode(value, what: "tree", sortedKeys: true) == expected)
        }
        // Keys that need escaping send some trees to Foundation; most must take the fast path.
        #expect(fast >= 20, "only \(fast) of 60 trees took the fast path")
    }

    @Test("without sortedKeys, the JSON holds the same value as Foundation's and decodes back", arguments: 0..<8)
    func unsortedValues(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        for _ in 0..<60 {
            let value = Self.tree(&random)
            let bytes = try PayloadCoder.encode(value, what: "tree")
            #expect(try JSONDecoder().decode(Tree.self, from: Data(bytes)) == value)
            let ours = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) as? NSObject
            let theirs = try JSONSerialization.jsonObject(with: Data(try Self.foundation(value, sorted: false)), options: [.fragmentsAllowed]) as? NSObject
            #expect(ours == theirs)
        }
    }

    @Test("Foundation's JSON decodes to the same values, and the fast path takes it", arguments: 0..<8)
    func decodesFoundation(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        var fast = 0
        for _ in 0..<60 {
            let value = Self.tree(&random)
            for sorted in [false, true] {
                let bytes = try Self.foundation(value, sorted: sorted)
                if let decoded = PayloadJSONReader.decode(Tree.self, from: bytes) {
                    fast += 1
                    #expect(decoded == value)
                }
                #expect(try PayloadCoder.decode(Tree.self, from: bytes, what: "tree") == value)
            }
        }
        #expect(fast >= 60, "only \(fast) of 120 documents took the fast path")
    }

    /// What the fast decoder and `JSONDecoder` each make of a document: the value's description or the error's.
    private static func answers<T: Decodable>(_ type: T.Type, _ json: String) -> (fast: String, foundation: String) {
        let bytes = Array(json.utf8)
        let fast: String
        do { fast = "\(try PayloadCoder.decode(T.self, from: bytes, what: "probe"))" } catch { fast = "refused" }
        let foundation = (try? JSONDecoder().decode(T.self, from: Data(bytes))).map { "\($0)" } ?? "refused"
        return (fast, foundation)
    }

    struct Pair: Codable, Equatable {
        var a: Int
        var b: String?
    }

    struct Held<T: Codable>: Codable {
        var held: T
    }

    struct Numbers: Codable {
        var i: Int
        var d: Double
        var f: Float
        var u: UInt8
    }

    @Test("unusual documents decode, or are refused, exactly as JSONDecoder does")
    func unusualDocuments() {
        let pairs = [
            #"{"a":1,"b":"x"}"#, #" { "a" : 1 , "b" : null } "#, #"{"a":1}"#, #"{"b":"x"}"#, #"{"a":1,"a":2}"#, #"{"a":"1"}"#,
            #"{"a":1.0}"#, #"{"a":1e2}"#, #"{"a":-0}"#, #"{"a":01}"#, #"{"a":9223372036854775808}"#, #"{"a":-9223372036854775808}"#,
            #"{"a":1,"b":"\u00e9\ud83d\ude00\n\/"}"#, #"{"a":1,"b":"\ud83d"}"#, #"{"a":1,"b":"\udc00x"}"#, #"{"\u0061":1}"#,
            "{\"a\":1,\"b\":\"tab\tin\"}", #"{"a":1,}"#, #"{"a":1}x"#, #"[{"a":1}]"#, #"{"a":true}"#, #"{"a":1,"b":"é"}"#,
            #"{"a":1,"b":2}"#, #"{"a":1,"b":"x","c":[1,{"d":null}]}"#, "", "{", #"{"a":1"#, "\u{FEFF}{\"a\":1}",
        ]
        for json in pairs {
            let (fast, foundation) = Self.answers(Pair.self, json)
            #expect(fast == foundation, "\(json): fast \(fast), Foundation \(foundation)")
        }
        let numbers = [
            #"{"i":1,"d":0.1,"f":0.1,"u":255}"#, #"{"i":1,"d":1e400,"f":1,"u":1}"#, #"{"i":1,"d":1e-400,"f":1,"u":1}"#,
            #"{"i":1,"d":0e5,"f":1e39,"u":1}"#, #"{"i":1,"d":-0.0,"f":3.4028235e38,"u":256}"#, #"{"i":1,"d":2.5E-3,"f":1.17549435E-38,"u":0}"#,
            #"{"i":-1,"d":123456789012345678901234567890,"f":16777217,"u":1}"#,
        ]
        for json in numbers {
            let (fast, foundation) = Self.answers(Numbers.self, json)
            #expect(fast == foundation, "\(json): fast \(fast), Foundation \(foundation)")
        }
        for json in [#"{"red":1}"#, #""green""#, #""purple""#, #"{"circle":{"radius":2}}"#, #"{"point":{}}"#, #"{"point":{},"rect":{"width":1,"height":2}}"#] {
            let (fast, foundation) = Self.answers(Color.self, json)
            #expect(fast == foundation, "\(json): fast \(fast), Foundation \(foundation)")
            let shapes = Self.answers(Shape.self, json)
            #expect(shapes.fast == shapes.foundation, "\(json): fast \(shapes.fast), Foundation \(shapes.foundation)")
        }
        for json in [#"{"held":170141183460469231731687303715884105727}"#, #"{"held":-5}"#, #"{"held":1.5}"#] {
            let (fast, foundation) = Self.answers(Held<Int128>.self, json)
            #expect(fast == foundation, "\(json): fast \(fast), Foundation \(foundation)")
        }
        for json in [#"{"held":"aGVsbG8="}"#, #"{"held":"aGVsbG8"}"#, #"{"held":"not base64!"}"#, #"{"held":[104,105]}"#] {
            let (fast, foundation) = Self.answers(Held<Data>.self, json)
            #expect(fast == foundation, "\(json): fast \(fast), Foundation \(foundation)")
        }
        for json in [#"{"held":"https:\/\/example.com\/a?b=c"}"#, #"{"held":""}"#, #"{"held":{"relative":"x"}}"#] {
            let (fast, foundation) = Self.answers(Held<URL>.self, json)
            #expect(fast == foundation, "\(json): fast \(fast), Foundation \(foundation)")
        }
        for json in [#"{"held":12.50}"#, #"{"held":"1"}"#] {
            let (fast, foundation) = Self.answers(Held<Decimal>.self, json)
            #expect(fast == foundation, "\(json): fast \(fast), Foundation \(foundation)")
        }
        let maps = [#"{"b":1,"a":2}"#, #"{"é":1,"e\u0301":2}"#, #"{"K":1}"#, #"{"\u212a":1}"#, #"{}"#, #"{"a":1,"a":2}"#]
        for json in maps {
            // Dictionaries print in no fixed order: compare them as values.
            let bytes = Array(json.utf8)
            let fast = try? PayloadCoder.decode([String: Int].self, from: bytes, what: "map")
            let foundation = try? JSONDecoder().decode([String: Int].self, from: Data(bytes))
            #expect(fast == foundation, "\(json): fast \(String(describing: fast)), Foundation \(String(describing: foundation))")
        }
    }

    /// Decodes `a` as an Int, or else as a String, catching the first error: a type that tries
    /// one shape after another.
    struct Lenient: Decodable, Equatable {
        var a: Int
        enum CodingKeys: String, CodingKey { case a }
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            if let number = try? container.decode(Int.self, forKey: .a) {
                a = number
            } else {
                a = Int(try container.decode(String.self, forKey: .a)) ?? -1
            }
        }
    }

    @Test("a type that catches an error the fast path raised still gets Foundation's answer")
    func caughtErrors() throws {
        // JSONDecoder reads 7.0 as the Int 7; the fast path leaves it to Foundation, and must
        // not let the type's fallback read it as a string instead.
        for json in [#"{"a":7.0}"#, #"{"a":"12"}"#, #"{"a":5}"#] {
            let bytes = Array(json.utf8)
            #expect(try PayloadCoder.decode(Lenient.self, from: bytes, what: "lenient") == JSONDecoder().decode(Lenient.self, from: Data(bytes)))
        }
        #expect(PayloadJSONReader.decode(Lenient.self, from: Array(#"{"a":7.0}"#.utf8)) == nil)
    }

    /// A class and its superclass encode into one container, as `JSONEncoder` merges them.
    class Base: Codable {
        var id = 1
    }

    final class Derived: Base {
        var extra = "x"
        enum CodingKeys: String, CodingKey { case extra }
        override init() { super.init() }
        required init(from decoder: any Decoder) throws {
            extra = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .extra)
            try super.init(from: decoder)
        }
        override func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(extra, forKey: .extra)
            try super.encode(to: encoder)
        }
    }

    /// Writes into a nested container after its parent went on: JSONEncoder allows it.
    struct OutOfOrder: Encodable {
        enum Keys: String, CodingKey { case inner, after, value }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            var inner = container.nestedContainer(keyedBy: Keys.self, forKey: .inner)
            try container.encode(1, forKey: .after)
            try inner.encode(2, forKey: .value)
        }
    }

    /// Encodes one key twice: JSONEncoder keeps the last value.
    struct Twice: Encodable {
        enum Keys: String, CodingKey { case a }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(1, forKey: .a)
            try container.encode(2, forKey: .a)
        }
    }

    struct Nothing: Encodable {
        func encode(to encoder: any Encoder) throws {}
    }

    struct Holder<T: Encodable>: Encodable {
        var held: T
    }

    @Test("encodings that use containers unusually match JSONEncoder's, through the fast path or around it")
    func unusualEncodings() throws {
        #expect(try PayloadCoder.encode(Derived(), what: "derived", sortedKeys: true) == Self.foundation(Derived(), sorted: true))
        #expect(PayloadJSONWriter.encode(Derived(), sortedKeys: true) != nil)
        let outOfOrder = try PayloadCoder.encode(OutOfOrder(), what: "out of order", sortedKeys: true)
        #expect(outOfOrder == (try Self.foundation(OutOfOrder(), sorted: true)))
        #expect(PayloadJSONWriter.encode(OutOfOrder(), sortedKeys: true) == nil)
        #expect(try PayloadCoder.encode(Twice(), what: "twice") == Self.foundation(Twice(), sorted: false))
        #expect(try PayloadCoder.encode(Holder(held: Nothing()), what: "nothing", sortedKeys: true) == Self.foundation(Holder(held: Nothing()), sorted: true))
        #expect(throws: ContinuumError.self) { try PayloadCoder.encode(Nothing(), what: "nothing") }
        #expect(throws: ContinuumError.self) { try PayloadCoder.encode(Holder(held: Double.nan), what: "nan") }
        #expect(try PayloadCoder.encode(Holder(held: Decimal(string: "12.5")!), what: "decimal") == Self.foundation(Holder(held: Decimal(string: "12.5")!), sorted: false))
        let big: Int128 = -170_141_183_460_469_231_731_687_303_715_884_105_728
        #expect(try PayloadCoder.encode(Holder(held: big), what: "int128") == Self.foundation(Holder(held: big), sorted: false))
        #expect(try PayloadCoder.encode([Holder(held: UInt128.max)], what: "uint128") == Self.foundation([Holder(held: UInt128.max)], sorted: false))
        // Nested deeper than JSONEncoder allows (512): both refuse it.
        let deep = (0..<600).reduce(Nest(inner: [])) { nest, _ in Nest(inner: [nest]) }
        #expect(throws: ContinuumError.self) { try PayloadCoder.encode(deep, what: "deep") }
        #expect(throws: (any Error).self) { try JSONEncoder().encode(deep) }
        let shallow = (0..<100).reduce(Nest(inner: [])) { nest, _ in Nest(inner: [nest]) }
        let bytes = try PayloadCoder.encode(shallow, what: "shallow", sortedKeys: true)
        #expect(bytes == (try Self.foundation(shallow, sorted: true)))
        #expect(PayloadJSONReader.decode(Nest.self, from: bytes) == shallow)
    }

    struct Nest: Codable, Equatable {
        var inner: [Nest]
    }
    struct Bad: Encodable {
        struct Refused: Error {}
        func encode(to encoder: any Encoder) throws { throw Refused() }
    }

    /// Writes one key, then throws.
    struct HalfBad: Encodable {
        enum Keys: String, CodingKey { case x }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(1, forKey: .x)
            throw Bad.Refused()
        }
    }

    /// Catches the errors of the values it holds and goes on, as Foundation lets it.
    struct Forgiving: Encodable {
        enum Keys: String, CodingKey { case a, b, c, list }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(1, forKey: .a)
            try? container.encode(HalfBad(), forKey: .b)
            try container.encode(2, forKey: .c)
            var list = container.nestedUnkeyedContainer(forKey: .list)
            try list.encode(1)
            try? list.encode(Bad())
            try list.encode(2)
        }
    }

    /// Writes into its parent's container while it encodes itself.
    struct Intruder: Encodable {
        enum Keys: String, CodingKey { case a, z }
        struct Child: Encodable {
            let parent: KeyedEncodingContainer<Keys>
            func encode(to encoder: any Encoder) throws {
                var parent = parent
                try parent.encode(5, forKey: .z)
            }
        }
        func encode(to encoder: any Encoder) throws {
            let container = encoder.container(keyedBy: Keys.self)
            var writable = container
            try writable.encode(Child(parent: container), forKey: .a)
        }
    }

    /// Asks for its unkeyed container twice and writes how many values it holds.
    struct Counted: Encodable {
        func encode(to encoder: any Encoder) throws {
            var first = encoder.unkeyedContainer()
            try first.encode(1)
            try first.encode(2)
            var second = encoder.unkeyedContainer()
            try second.encode(second.count)
        }
    }

    @Test("types that catch their own encoding errors, write into their parent, or count their elements get JSONEncoder's bytes")
    func reviewedEncodings() throws {
        #expect(try PayloadCoder.encode(Forgiving(), what: "forgiving", sortedKeys: true) == Self.foundation(Forgiving(), sorted: true))
        #expect(try PayloadCoder.encode(Intruder(), what: "intruder", sortedKeys: true) == Self.foundation(Intruder(), sorted: true))
        #expect(try PayloadCoder.encode(Counted(), what: "counted") == Self.foundation(Counted(), sorted: false))
    }

    /// Decodes what it can of an array of positive numbers, skipping the rest.
    struct Lossy: Decodable, Equatable {
        struct Positive: Decodable {
            struct NotPositive: Error {}
            var value: Int
            init(from decoder: any Decoder) throws {
                value = try decoder.singleValueContainer().decode(Int.self)
                guard value > 0 else { throw NotPositive() }
            }
        }
        /// Takes any value, to pass over it.
        struct Skip: Decodable {
            init(from decoder: any Decoder) throws {}
        }
        var values: [Int] = []
        init(from decoder: any Decoder) throws {
            var container = try decoder.unkeyedContainer()
            while !container.isAtEnd {
                if let positive = try? container.decode(Positive.self) {
                    values.append(positive.value)
                } else {
                    _ = try container.decode(Skip.self)
                }
            }
        }
    }

    /// Reads optionals until past the end, and reports where its container ended.
    struct PastTheEnd: Decodable, Equatable {
        var values: [Int?] = []
        var index = 0
        init(from decoder: any Decoder) throws {
            var container = try decoder.unkeyedContainer()
            for _ in 0..<3 { values.append(try container.decodeIfPresent(Int.self)) }
            index = container.currentIndex
        }
    }

    /// Keeps its decoder and reads from it after the decoding ended.
    final class Keeper: Decodable {
        let decoder: any Decoder
        init(from decoder: any Decoder) throws { self.decoder = decoder }
    }

    @Test("types that skip what they cannot decode, read past the end, or keep their decoder get JSONDecoder's answers, memory-safely")
    func reviewedDecodings() throws {
        for json in ["[1,-2,3,4]", "[-1]", "[]", "[1,\"x\",2]"] {
            let bytes = Array(json.utf8)
            #expect(try PayloadCoder.decode(Lossy.self, from: bytes, what: "lossy") == JSONDecoder().decode(Lossy.self, from: Data(bytes)), "\(json)")
        }
        for json in ["[1,null]", "[1,null,3,4]", "[]"] {
            let bytes = Array(json.utf8)
            #expect(try PayloadCoder.decode(PastTheEnd.self, from: bytes, what: "past") == JSONDecoder().decode(PastTheEnd.self, from: Data(bytes)), "\(json)")
        }
        for json in ["0e2", "0E1", "0.00e1", "0.000e5", "0e0", "0.0e5", "0e12", "-0e3", "1e-400"] {
            let (fast, foundation) = Self.answers(Double.self, json)
            #expect(fast == foundation, "\(json): fast \(fast), Foundation \(foundation)")
            let floats = Self.answers(Float.self, json)
            #expect(floats.fast == floats.foundation, "\(json): fast \(floats.fast), Foundation \(floats.foundation)")
        }
        // The bytes the decoder read are gone once decoding returned; its reader holds its own.
        let kept = try PayloadCoder.decode(Keeper.self, from: Array(#""kept value""#.utf8), what: "keeper")
        #expect(try kept.decoder.singleValueContainer().decode(String.self) == "kept value")
    }

}
