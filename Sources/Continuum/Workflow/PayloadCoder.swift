#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Turns payloads into the bytes stored in history and back (JSON).
enum PayloadCoder {
    static func encode<T: Encodable>(_ value: T, what: @autoclosure () -> String, sortedKeys: Bool = false) throws(ContinuumError) -> [UInt8] {
        do {
            let encoder = JSONEncoder()
            if sortedKeys { encoder.outputFormatting = [.sortedKeys] }
            return Array(try encoder.encode(value))
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
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            throw ContinuumError(
                .payloadCoding,
                "Could not decode \(what()) as \(T.self): \(error). The stored JSON no longer fits the type the code asks for; "
                    + "keep the old shape decodable (optional or defaulted fields) or finish old workflows before changing it.")
        }
    }
}
