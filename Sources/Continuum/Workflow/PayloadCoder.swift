#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Turns payloads into the bytes stored in history and back (JSON).
enum PayloadCoder {
    // One of each, shared: their options never change, and each `encode` and `decode` call
    // works on state of its own. Making one per payload cost a lock and an allocation per step.
    private static let encoder = JSONEncoder()
    private static let sortingEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()
    private static let decoder = JSONDecoder()

    static func encode<T: Encodable>(_ value: T, what: @autoclosure () -> String, sortedKeys: Bool = false) throws(ContinuumError) -> [UInt8] {
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

    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: @autoclosure () -> String) throws(ContinuumError) -> T {
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
