#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Turns payloads into the bytes stored in history and back (JSON). `package` for the
/// bench's codec scenario.
package enum PayloadCoder {
    // One of each, shared: their options never change, and each `encode` and `decode` call
    // works on state of its own. Making one per payload cost a lock and an allocation per step.
    private static let encoder = JSONEncoder()
    private static let sortingEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()
    private static let decoder = JSONDecoder()

    package static func encode<T: Encodable>(_ value: T, what: @autoclosure () -> String, sortedKeys: Bool = false) throws(ContinuumError) -> [UInt8] {
        if let bytes = ScalarJSON.encode(value) { return bytes }
        if let bytes = PayloadJSONWriter.encode(value, sortedKeys: sortedKeys) { return bytes }
        do {
            return Array(try (sortedKeys ? sortingEncoder : encoder).encode(value))
        } catch {
            throw ContinuumError(.payloadCoding, "Could not encode \(what()) as JSON: \(error). Make the value encodable (no NaN or infinite numbers).")
        }
    }

    /// Refuses JSON longer than `limit` bytes with ``ContinuumError/Code/payloadTooLarge``.
    static func check(_ bytes: [UInt8], limit: Int, what: @autoclosure () -> String) throws(ContinuumError) {
        guard bytes.count > limit else { return }
        throw ContinuumError(
            .payloadTooLarge,
            "\(what()) is \(bytes.count) bytes of JSON, over the limit of \(limit) (`maxPayloadSize`). "
                + "Keep large data outside the workflow (a blob store, say) and pass a reference to it.")
    }

    package static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: @autoclosure () -> String) throws(ContinuumError) -> T {
        if let value = ScalarJSON.decode(T.self, from: bytes) { return value }
        if let value = PayloadJSONReader.decode(T.self, from: bytes) { return value }
        do {
            return try decoder.decode(T.self, from: Data(bytes))
        } catch {
            throw ContinuumError(
                .payloadCoding,
                "Could not decode \(what()) as \(T.self): \(error). The stored JSON no longer fits the type the code asks for; "
                    + "keep the old shape decodable (optional or defaulted fields) or finish old workflows before changing it.")
        }
    }
}

/// JSON for the payloads most steps return (an `Int`, a `Bool`, a plain ASCII `String`), written
/// and read without `JSONEncoder` and `JSONDecoder`, byte for byte as they write and accept them.
/// Anything else, or any bytes this does not recognise, goes to Foundation.
enum ScalarJSON {
    static func encode<T>(_ value: T) -> [UInt8]? {
        if T.self == Int.self {
            return Array(String(unsafeBitCast(value, to: Int.self)).utf8)
        }
        if T.self == Bool.self {
            return unsafeBitCast(value, to: Bool.self) ? Array("true".utf8) : Array("false".utf8)
        }
        if T.self == String.self {
            var string = unsafeBitCast(value, to: String.self)
            return string.withUTF8 { utf8 -> [UInt8]? in
                // Printable ASCII that JSONEncoder writes as it is (it escapes `"`, `\` and `/`).
                guard utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C && $0 != 0x2F }) else { return nil }
                var bytes: [UInt8] = []
                bytes.reserveCapacity(utf8.count + 2)
                bytes.append(0x22)
                bytes.append(contentsOf: utf8)
                bytes.append(0x22)
                return bytes
            }
        }
        return nil
    }

    static func decode<T>(_ type: T.Type, from bytes: [UInt8]) -> T? {
        if T.self == Int.self {
            guard let value = parseInt(bytes) else { return nil }
            return unsafeBitCast(value, to: T.self)
        }
        if T.self == Bool.self {
            if bytes == Array("true".utf8) { return unsafeBitCast(true, to: T.self) }
            if bytes == Array("false".utf8) { return unsafeBitCast(false, to: T.self) }
            return nil
        }
        if T.self == String.self {
            guard bytes.count >= 2, bytes.first == 0x22, bytes.last == 0x22 else { return nil }
            let inner = bytes[1..<(bytes.count - 1)]
            guard inner.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C }) else { return nil }
            return unsafeBitCast(String(decoding: inner, as: UTF8.self), to: T.self)
        }
        return nil
    }

    /// An optional `-`, then digits with no leading zero: the only form JSONEncoder writes.
    private static func parseInt(_ bytes: [UInt8]) -> Int? {
        var index = 0
        let negative = bytes.first == 0x2D
        if negative { index = 1 }
        guard index < bytes.count, bytes.count - index <= 18 else { return nil }
        if bytes[index] == 0x30 && bytes.count - index > 1 { return nil }
        var value = 0
        while index < bytes.count {
            let digit = bytes[index] &- 0x30
            guard digit < 10 else { return nil }
            value = value * 10 + Int(digit)
            index += 1
        }
        return negative ? -value : value
    }
}
