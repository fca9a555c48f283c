#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// JSON for struct payloads, written and read without building Foundation's intermediate tree
// (a dictionary per object, a string per number): the encoder writes into one byte array as the
// value encodes itself, and the decoder reads a flat index of the document's tokens.
//
// Neither decides anything Foundation would decide differently. Whatever they do not handle
// exactly as `JSONEncoder` and `JSONDecoder` do (with the options `PayloadCoder` uses) makes
// them give up, and the caller then runs Foundation on the same value or bytes: dates and
// numbers outside the plain forms, `Decimal`, keys that need escaping or are not ASCII,
// duplicate keys, containers used out of order, `superEncoder`, `codingPath`, any error. Giving
// up is sticky, so a type that catches an error and tries something else still ends in
// Foundation. Each encoding or decoding is therefore one of Foundation's results: the same bytes
// with `sortedKeys` (without it, Foundation writes keys in a random order per process; these
// are written in the order the value encodes them), the same value or error on decoding.

/// Marks a payload the fast coders leave to Foundation.
private struct GiveUp: Error {}

// MARK: - Encoding

/// The state of one encoding: the bytes written so far and the containers still open.
///
/// Its stored properties skip the runtime's exclusivity checks, which took about a quarter of
/// its CPU: one encoding runs on one task, and no call changes a property while another call
/// holds an access to it.
final class PayloadJSONWriter {
    /// One open container.
    fileprivate struct Frame {
        /// Tells this frame from a later one at the same depth.
        var serial: Int32
        /// The encoder slot the container was asked for in; -1 for a nested container.
        var slot: Int32
        var isObject: Bool
        var count: Int32
        /// Where this object's members start in `members`.
        var membersStart: Int32
        /// Hashes of its keys once it has more than ``PayloadJSONWriter/linearKeys``.
        var seen: Set<Int>?
    }

    /// One member of an open object: where its key starts (its opening quote) and how long it is.
    fileprivate struct Member {
        var start: Int32
        var keyLength: Int32
    }

    fileprivate static let linearKeys = 16
    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
    /// Foundation refuses containers nested 512 deep; well before that, leave them to it.
    fileprivate static let maxDepth = 500

    @exclusivity(unchecked) fileprivate var bytes: [UInt8] = []
    @exclusivity(unchecked) fileprivate var frames: [Frame] = []
    @exclusivity(unchecked) fileprivate var members: [Member] = []
    @exclusivity(unchecked) fileprivate var gaveUp = false
    fileprivate let sortedKeys: Bool
    @exclusivity(unchecked) private var nextSerial: Int32 = 0
    /// The value slot open now: the parent's key or comma was written, its value not yet.
    @exclusivity(unchecked) fileprivate var slot: Int32 = 0
    @exclusivity(unchecked) fileprivate var slotStart = 0
    /// The depth of the value encoding itself now: containers above it are its ancestors'.
    @exclusivity(unchecked) private var floor = 0

    private init(sortedKeys: Bool) {
        self.sortedKeys = sortedKeys
        bytes.reserveCapacity(128)
    }

    /// `value` as JSON, or `nil` to leave it to Foundation.
    static func encode<T: Encodable>(_ value: T, sortedKeys: Bool) -> [UInt8]? {
        let writer = PayloadJSONWriter(sortedKeys: sortedKeys)
        do {
            try writer.encodeValue(value, depth: 0)
        } catch {
            return nil
        }
        guard !writer.gaveUp, !writer.bytes.isEmpty else { return nil }
        writer.close(above: 0)
        guard !writer.gaveUp else { return nil }
        return writer.bytes
    }

    /// Gives up on the whole encoding.
    fileprivate func giveUp() -> GiveUp {
        gaveUp = true
        return GiveUp()
    }

    fileprivate func newSerial() -> Int32 {
        nextSerial &+= 1
        return nextSerial
    }

    /// Opens the slot a value is about to be written into.
    fileprivate func openSlot() -> Int32 {
        slot = newSerial()
        slotStart = bytes.count
        return slot
    }

    /// Writes `value` into the slot just opened at `depth` (the number of frames its parent leaves open).
    fileprivate func encodeValue<T: Encodable>(_ value: T, depth: Int) throws {
        if T.self == Data.self {
            return writeString(unsafeBitCast(value, to: Data.self).base64EncodedString())
        }
        if T.self == URL.self {
            return writeString(unsafeBitCast(value, to: URL.self).absoluteString)
        }
        if T.self == Decimal.self { throw giveUp() }
        let start = bytes.count
        let serial = openSlot()
        // While the value encodes itself, only its own containers (at `depth` and deeper) may be
        // written: a write into an ancestor's would land inside this value's place.
        let outer = floor
        floor = depth
        defer { floor = outer }
        do {
            try value.encode(to: PayloadJSONEncoder(writer: self, depth: Int32(depth), slot: serial))
        } catch {
            // The type's own error too: its caller may catch it and go on, over a key or a
            // comma already written here. Foundation writes nothing for such a value.
            throw giveUp()
        }
        if gaveUp { throw GiveUp() }
        if bytes.count == start && frames.count == depth {
            // Foundation writes an empty object for a value that encodes nothing (and refuses
            // it at the top, which Foundation will say).
            if depth == 0 { throw giveUp() }
            bytes.append(0x7B)
            bytes.append(0x7D)
        }
    }

    /// Closes every container deeper than `depth` frames.
    fileprivate func close(above depth: Int) {
        while frames.count > depth {
            let frame = frames.removeLast()
            if frame.isObject {
                if sortedKeys && frame.count > 1 { sortMembers(from: Int(frame.membersStart)) }
                members.removeSubrange(Int(frame.membersStart)...)
                bytes.append(0x7D)
            } else {
                bytes.append(0x5D)
            }
        }
    }

    /// Makes the container at `index` (made with `serial`) the one written to, closing what was
    /// nested in it; gives up when it is closed already. Returns whether it holds a value.
    fileprivate func enter(_ index: Int32, serial: Int32) throws -> Bool {
        let index = Int(index)
        // Offsets are kept in 32 bits: a payload near 2 GiB is left to Foundation.
        guard !gaveUp, index >= floor, index < frames.count, frames[index].serial == serial, bytes.count < Int(Int32.max) else { throw giveUp() }
        close(above: index + 1)
        let filled = frames[index].count > 0
        frames[index].count += 1
        return filled
    }

    /// How many values the container at `index` holds; gives up when it is closed already.
    fileprivate func count(of index: Int32, serial: Int32) -> Int {
        let index = Int(index)
        guard !gaveUp, index >= 0, index < frames.count, frames[index].serial == serial else {
            gaveUp = true
            return 0
        }
        return Int(frames[index].count)
    }

    /// Writes `"key":` as the next member of the object at `index`.
    fileprivate func writeKey(_ key: String, object index: Int32, serial: Int32) throws {
        if try enter(index, serial: serial) { bytes.append(0x2C) }
        let start = bytes.count
        var key = key
        let plain = key.withUTF8 { utf8 -> Bool in
            guard utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C && $0 != 0x2F }) else { return false }
            bytes.append(0x22)
            bytes.append(contentsOf: utf8)
            bytes.append(0x22)
            return true
        }
        // Keys that need escaping, or are not ASCII, compare and sort differently from their
        // bytes here (Foundation compares them as strings): rare enough to leave to it.
        guard plain else { throw giveUp() }
        bytes.append(0x3A)
        try noteMember(start: start, keyLength: bytes.count - start - 3, object: Int(index))
    }

    /// Records a key, giving up on a duplicate: Foundation keeps the last value at a random place.
    private func noteMember(start: Int, keyLength: Int, object index: Int) throws {
        guard bytes.count < Int(Int32.max) else { throw giveUp() }
        let first = Int(frames[index].membersStart)
        let count = members.count - first
        if count < Self.linearKeys {
            for member in members[first...] where Int(member.keyLength) == keyLength {
                if bytes[(Int(member.start) + 1)...].starts(with: bytes[(start + 1)..<(start + 1 + keyLength)]) { throw giveUp() }
            }
        } else {
            if frames[index].seen == nil {
                frames[index].seen = Set(members[first...].map { keyHash(Int($0.start) + 1, Int($0.keyLength)) })
            }
            // A hash that collides is taken for a duplicate: giving up is always safe.
            guard frames[index].seen!.insert(keyHash(start + 1, keyLength)).inserted else { throw giveUp() }
        }
        if members.capacity == 0 { members.reserveCapacity(16) }
        members.append(Member(start: Int32(start), keyLength: Int32(keyLength)))
    }

    private func keyHash(_ start: Int, _ length: Int) -> Int {
        var hasher = Hasher()
        bytes.withUnsafeBytes { hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: $0[start..<(start + length)])) }
        return hasher.finalize()
    }

    /// Puts the members of the object being closed in the order of their keys' UTF-8, as
    /// `JSONEncoder` does with `.sortedKeys`.
    private func sortMembers(from first: Int) {
        let objectMembers = Array(members[first...])
        var ends = objectMembers.dropFirst().map { Int($0.start) - 1 }  // before the comma
        ends.append(bytes.count)
        func key(_ i: Int) -> ArraySlice<UInt8> {
            let start = Int(objectMembers[i].start) + 1
            return bytes[start..<(start + Int(objectMembers[i].keyLength))]
        }
        let order = objectMembers.indices.sorted { key($0).lexicographicallyPrecedes(key($1)) }
        guard order != Array(objectMembers.indices) else { return }
        let regionStart = Int(objectMembers[0].start)
        var region: [UInt8] = []
        region.reserveCapacity(bytes.count - regionStart)
        for (position, i) in order.enumerated() {
            if position > 0 { region.append(0x2C) }
            region.append(contentsOf: bytes[Int(objectMembers[i].start)..<ends[i]])
        }
        bytes.replaceSubrange(regionStart..., with: region)
    }

    /// Pushes a container for the slot `slot` at `depth`, or finds the one it already asked for.
    fileprivate func container(object: Bool, depth: Int32, slot: Int32) -> (index: Int32, serial: Int32)? {
        guard !gaveUp else { return nil }
        let depth = Int(depth)
        if frames.count > depth, frames[depth].slot == slot {
            // Asked again (a subclass and its superclass, say): Foundation writes into the same one.
            guard frames[depth].isObject == object else { gaveUp = true; return nil }
            close(above: depth + 1)
            return (Int32(depth), frames[depth].serial)
        }
        guard frames.count == depth, self.slot == slot, bytes.count == slotStart else { gaveUp = true; return nil }
        return push(object: object, slot: slot)
    }

    /// Opens a container as the value of the slot just written (`slot` when an encoder asked
    /// for it, -1 for a nested container).
    fileprivate func push(object: Bool, slot: Int32) -> (index: Int32, serial: Int32)? {
        guard frames.count < Self.maxDepth else { gaveUp = true; return nil }
        // Room for the nesting and the keys of most payloads at once, not grown an element at a time.
        if frames.capacity == 0 { frames.reserveCapacity(8) }
        let serial = newSerial()
        frames.append(Frame(serial: serial, slot: slot, isObject: object, count: 0, membersStart: Int32(members.count), seen: nil))
        bytes.append(object ? 0x7B : 0x5B)
        return (Int32(frames.count - 1), serial)
    }

    /// Checks that a single value goes into the slot `slot`, still empty, at `depth`.
    fileprivate func single(depth: Int32, slot: Int32) throws {
        guard !gaveUp, frames.count == Int(depth), self.slot == slot, bytes.count == slotStart else { throw giveUp() }
    }

    // MARK: Scalars, as JSONEncoder writes them

    fileprivate func writeInteger(_ value: Int64) {
        if value < 0 { bytes.append(0x2D) }
        writeInteger(value.magnitude)
    }

    fileprivate func writeInteger(_ value: UInt64) {
        var magnitude = value
        // Twenty digits hold UInt64.max.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var index = 20
            repeat {
                index -= 1
                digits[index] = UInt8(truncatingIfNeeded: magnitude % 10) &+ 0x30
                magnitude /= 10
            } while magnitude != 0
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: digits[index...]))
        }
    }

    fileprivate func writeFloat<T: BinaryFloatingPoint & CustomStringConvertible>(_ value: T) throws {
        // JSONEncoder refuses NaN and infinities; let it say so.
        guard value.isFinite else { throw giveUp() }
        var string = value.description
        if string.hasSuffix(".0") { string.removeLast(2) }
        bytes.append(contentsOf: string.utf8)
    }

    fileprivate func writeBool(_ value: Bool) {
        if value {
            bytes.append(contentsOf: [0x74, 0x72, 0x75, 0x65])
        } else {
            bytes.append(contentsOf: [0x66, 0x61, 0x6C, 0x73, 0x65])
        }
    }

    fileprivate func writeNull() {
        bytes.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])
    }

    /// A string, escaped as JSONEncoder escapes it: `"`, `\`, `/` and control characters.
    fileprivate func writeString(_ string: String) {
        var string = string
        bytes.append(0x22)
        string.withUTF8 { utf8 in
            var mark = 0
            for (index, byte) in utf8.enumerated() {
                let escape: (UInt8, UInt8)
                switch byte {
                case 0x22: escape = (0x5C, 0x22)
                case 0x5C: escape = (0x5C, 0x5C)
                case 0x2F: escape = (0x5C, 0x2F)
                case 0x08: escape = (0x5C, 0x62)
                case 0x0C: escape = (0x5C, 0x66)
                case 0x0A: escape = (0x5C, 0x6E)
                case 0x0D: escape = (0x5C, 0x72)
                case 0x09: escape = (0x5C, 0x74)
                case 0x00...0x1F: escape = (0, 0)
                default: continue
                }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[mark..<index]))
                mark = index + 1
                if escape.0 == 0 {
                    let hex = Self.hexDigits
                    bytes.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
                } else {
                    bytes.append(escape.0)
                    bytes.append(escape.1)
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[mark...]))
        }
        bytes.append(0x22)
    }
}

/// The `Encoder` a value encodes itself into: a slot of ``PayloadJSONWriter``.
private struct PayloadJSONEncoder: Encoder {
    let writer: PayloadJSONWriter
    /// How many containers are open around the slot.
    let depth: Int32
    let slot: Int32

    var codingPath: [any CodingKey] {
        // Asked only to build an error, which Foundation builds better.
        writer.gaveUp = true
        return []
    }

    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let opened = writer.container(object: true, depth: depth, slot: slot)
        return KeyedEncodingContainer(KeyedPayloadEncoder<Key>(writer: writer, index: opened?.index ?? -1, serial: opened?.serial ?? -1))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let opened = writer.container(object: false, depth: depth, slot: slot)
        return UnkeyedPayloadEncoder(writer: writer, index: opened?.index ?? -1, serial: opened?.serial ?? -1)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SinglePayloadEncoder(writer: writer, depth: depth, slot: slot)
    }
}

private struct KeyedPayloadEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let writer: PayloadJSONWriter
    let index: Int32
    let serial: Int32

    var codingPath: [any CodingKey] {
        writer.gaveUp = true
        return []
    }

    private func key(_ key: Key) throws {
        try writer.writeKey(key.stringValue, object: index, serial: serial)
    }

    mutating func encodeNil(forKey key: Key) throws {
        try self.key(key)
        writer.writeNull()
    }
    mutating func encode(_ value: Bool, forKey key: Key) throws {
        try self.key(key)
        writer.writeBool(value)
    }
    mutating func encode(_ value: String, forKey key: Key) throws {
        try self.key(key)
        writer.writeString(value)
    }
    mutating func encode(_ value: Double, forKey key: Key) throws {
        try self.key(key)
        try writer.writeFloat(value)
    }
    mutating func encode(_ value: Float, forKey key: Key) throws {
        try self.key(key)
        try writer.writeFloat(value)
    }
    mutating func encode(_ value: Int, forKey key: Key) throws { try signed(Int64(value), key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try signed(Int64(value), key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try signed(Int64(value), key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try signed(Int64(value), key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try signed(value, key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try unsigned(UInt64(value), key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try unsigned(UInt64(value), key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try unsigned(UInt64(value), key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try unsigned(UInt64(value), key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try unsigned(value, key) }

    // Not generic over the integer type: this container runs unspecialized, and generic
    // integer code would then call through witness tables for every digit.
    private func signed(_ value: Int64, _ key: Key) throws {
        try self.key(key)
        writer.writeInteger(value)
    }

    private func unsigned(_ value: UInt64, _ key: Key) throws {
        try self.key(key)
        writer.writeInteger(value)
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try self.key(key)
        try writer.encodeValue(value, depth: Int(index) + 1)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let opened = (try? self.key(key)).flatMap { writer.push(object: true, slot: -1) }
        return KeyedEncodingContainer(KeyedPayloadEncoder<NestedKey>(writer: writer, index: opened?.index ?? -1, serial: opened?.serial ?? -1))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let opened = (try? self.key(key)).flatMap { writer.push(object: false, slot: -1) }
        return UnkeyedPayloadEncoder(writer: writer, index: opened?.index ?? -1, serial: opened?.serial ?? -1)
    }

    mutating func superEncoder() -> any Encoder {
        writer.gaveUp = true
        return PayloadJSONEncoder(writer: writer, depth: -1, slot: -1)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        writer.gaveUp = true
        return PayloadJSONEncoder(writer: writer, depth: -1, slot: -1)
    }
}

private struct UnkeyedPayloadEncoder: UnkeyedEncodingContainer {
    let writer: PayloadJSONWriter
    let index: Int32
    let serial: Int32

    /// The elements in the array so far, by every container value for it (as Foundation counts).
    var count: Int { writer.count(of: index, serial: serial) }

    var codingPath: [any CodingKey] {
        writer.gaveUp = true
        return []
    }

    private mutating func next() throws {
        if try writer.enter(index, serial: serial) { writer.bytes.append(0x2C) }
    }

    mutating func encodeNil() throws {
        try next()
        writer.writeNull()
    }
    mutating func encode(_ value: Bool) throws {
        try next()
        writer.writeBool(value)
    }
    mutating func encode(_ value: String) throws {
        try next()
        writer.writeString(value)
    }
    mutating func encode(_ value: Double) throws {
        try next()
        try writer.writeFloat(value)
    }
    mutating func encode(_ value: Float) throws {
        try next()
        try writer.writeFloat(value)
    }
    mutating func encode(_ value: Int) throws { try signed(Int64(value)) }
    mutating func encode(_ value: Int8) throws { try signed(Int64(value)) }
    mutating func encode(_ value: Int16) throws { try signed(Int64(value)) }
    mutating func encode(_ value: Int32) throws { try signed(Int64(value)) }
    mutating func encode(_ value: Int64) throws { try signed(value) }
    mutating func encode(_ value: UInt) throws { try unsigned(UInt64(value)) }
    mutating func encode(_ value: UInt8) throws { try unsigned(UInt64(value)) }
    mutating func encode(_ value: UInt16) throws { try unsigned(UInt64(value)) }
    mutating func encode(_ value: UInt32) throws { try unsigned(UInt64(value)) }
    mutating func encode(_ value: UInt64) throws { try unsigned(value) }

    private mutating func signed(_ value: Int64) throws {
        try next()
        writer.writeInteger(value)
    }

    private mutating func unsigned(_ value: UInt64) throws {
        try next()
        writer.writeInteger(value)
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try next()
        try writer.encodeValue(value, depth: Int(index) + 1)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let opened = (try? next()).flatMap { writer.push(object: true, slot: -1) }
        return KeyedEncodingContainer(KeyedPayloadEncoder<NestedKey>(writer: writer, index: opened?.index ?? -1, serial: opened?.serial ?? -1))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let opened = (try? next()).flatMap { writer.push(object: false, slot: -1) }
        return UnkeyedPayloadEncoder(writer: writer, index: opened?.index ?? -1, serial: opened?.serial ?? -1)
    }

    mutating func superEncoder() -> any Encoder {
        writer.gaveUp = true
        return PayloadJSONEncoder(writer: writer, depth: -1, slot: -1)
    }
}

private struct SinglePayloadEncoder: SingleValueEncodingContainer {
    let writer: PayloadJSONWriter
    let depth: Int32
    let slot: Int32

    var codingPath: [any CodingKey] {
        writer.gaveUp = true
        return []
    }

    mutating func encodeNil() throws {
        try writer.single(depth: depth, slot: slot)
        writer.writeNull()
    }
    mutating func encode(_ value: Bool) throws {
        try writer.single(depth: depth, slot: slot)
        writer.writeBool(value)
    }
    mutating func encode(_ value: String) throws {
        try writer.single(depth: depth, slot: slot)
        writer.writeString(value)
    }
    mutating func encode(_ value: Double) throws {
        try writer.single(depth: depth, slot: slot)
        try writer.writeFloat(value)
    }
    mutating func encode(_ value: Float) throws {
        try writer.single(depth: depth, slot: slot)
        try writer.writeFloat(value)
    }
    mutating func encode(_ value: Int) throws { try signed(Int64(value)) }
    mutating func encode(_ value: Int8) throws { try signed(Int64(value)) }
    mutating func encode(_ value: Int16) throws { try signed(Int64(value)) }
    mutating func encode(_ value: Int32) throws { try signed(Int64(value)) }
    mutating func encode(_ value: Int64) throws { try signed(value) }
    mutating func encode(_ value: UInt) throws { try unsigned(UInt64(value)) }
    mutating func encode(_ value: UInt8) throws { try unsigned(UInt64(value)) }
    mutating func encode(_ value: UInt16) throws { try unsigned(UInt64(value)) }
    mutating func encode(_ value: UInt32) throws { try unsigned(UInt64(value)) }
    mutating func encode(_ value: UInt64) throws { try unsigned(value) }

    private func signed(_ value: Int64) throws {
        try writer.single(depth: depth, slot: slot)
        writer.writeInteger(value)
    }

    private func unsigned(_ value: UInt64) throws {
        try writer.single(depth: depth, slot: slot)
        writer.writeInteger(value)
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try writer.single(depth: depth, slot: slot)
        // The value takes this slot's place: its own containers open at the same depth.
        try writer.encodeValue(value, depth: Int(depth))
    }
}

// MARK: - Decoding

/// One decoding: the document's bytes and a flat index of its values.
///
/// Like ``PayloadJSONWriter``, its stored properties skip the runtime's exclusivity checks.
final class PayloadJSONReader {
    fileprivate enum Kind: UInt8 { case object, array, string, number, `true`, `false`, null }

    /// One value of the document, in document order; an object's members are its key (a string
    /// token) then its value.
    fileprivate struct Token {
        var kind: Kind
        /// Strings: 1 when escaped, 2 when not ASCII. Numbers: 1 with a fraction or an exponent.
        var flags: UInt8
        /// Strings and numbers: their bytes (a string's within its quotes). Containers: `start`
        /// is the number of members.
        var start: Int32
        var end: Int32
        /// The token after this value and everything in it.
        var next: Int32
    }

    fileprivate static let escaped: UInt8 = 1
    fileprivate static let nonASCII: UInt8 = 2
    fileprivate static let fractional: UInt8 = 1
    /// Objects with more members than this get a dictionary of their keys.
    fileprivate static let linearKeys = 16
    fileprivate static let maxDepth = 500

    /// The document. Held, not borrowed: a type may keep its decoder past the decoding.
    fileprivate let bytes: [UInt8]
    fileprivate let tokens: [Token]
    @exclusivity(unchecked) fileprivate var gaveUp = false

    private init(_ bytes: [UInt8], tokens: [Token]) {
        self.bytes = bytes
        self.tokens = tokens
    }

    /// The value `bytes` holds, or `nil` to leave them to Foundation.
    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) -> T? {
        guard bytes.count < Int(Int32.max) else { return nil }
        let tokens = bytes.withUnsafeBufferPointer { buffer -> [Token]? in
            var scanner = PayloadJSONScanner(buffer)
            return scanner.parse() ? scanner.tokens : nil
        }
        guard let tokens else { return nil }
        let reader = PayloadJSONReader(bytes, tokens: tokens)
        do {
            let value = try reader.value(T.self, at: 0)
            return reader.gaveUp ? nil : value
        } catch {
            return nil
        }
    }

    fileprivate func giveUp() -> GiveUp {
        gaveUp = true
        return GiveUp()
    }

    // MARK: Values, as JSONDecoder reads them

    fileprivate func token(_ index: Int32) -> Token { tokens[Int(index)] }

    /// Calls `body` with the bytes of a string or number token (a string's within its quotes).
    fileprivate func withBytes<R>(of token: Token, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try bytes.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[Int(token.start)..<Int(token.end)])) }
    }

    fileprivate func value<T: Decodable>(_ type: T.Type, at index: Int32) throws -> T {
        if T.self == String.self { return unsafeBitCast(try string(at: index), to: T.self) }
        if T.self == Int.self { return unsafeBitCast(try integer(Int.self, at: index), to: T.self) }
        if T.self == Bool.self { return unsafeBitCast(try bool(at: index), to: T.self) }
        if T.self == Double.self { return unsafeBitCast(try floating(Double.self, at: index), to: T.self) }
        if T.self == Data.self {
            // JSONDecoder reads Data as Base64.
            guard let data = Data(base64Encoded: try string(at: index)) else { throw giveUp() }
            return unsafeBitCast(data, to: T.self)
        }
        if T.self == URL.self {
            guard let url = URL(string: try string(at: index)) else { throw giveUp() }
            return unsafeBitCast(url, to: T.self)
        }
        if T.self == Decimal.self { throw giveUp() }
        do {
            return try T(from: PayloadJSONDecoder(reader: self, index: index))
        } catch {
            // The type's own error too: its caller may catch it and go on, where Foundation and
            // this reader would not be at the same place (an unkeyed container moves on only
            // past a value it decoded).
            throw giveUp()
        }
    }

    /// The members of the object at `object` in document order: each key's token and its value's.
    fileprivate func forEachMember(of object: Int32, _ body: (Int32, Int32) throws -> Void) rethrows {
        var member = object + 1
        for _ in 0..<token(object).start {
            try body(member, member + 1)
            member = token(member + 1).next
        }
    }

    fileprivate func isNull(_ index: Int32) -> Bool { token(index).kind == .null }

    fileprivate func bool(at index: Int32) throws -> Bool {
        switch token(index).kind {
        case .true: return true
        case .false: return false
        default: throw giveUp()
        }
    }

    fileprivate func string(at index: Int32) throws -> String {
        let token = token(index)
        guard token.kind == .string else { throw giveUp() }
        let string = withBytes(of: token) { utf8 -> String? in
            if token.flags == 0 { return String(decoding: utf8, as: UTF8.self) }
            if token.flags & Self.escaped == 0 { return String(validating: utf8, as: UTF8.self) }
            return unescape(utf8).flatMap { String(validating: $0, as: UTF8.self) }
        }
        guard let string else { throw giveUp() }
        return string
    }

    /// The bytes of an escaped string, or `nil` for a lone surrogate.
    private func unescape(_ utf8: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count)
        var index = 0
        func code(at index: Int) -> UInt32 {
            (1...4).reduce(0) { $0 << 4 | PayloadJSONScanner.hex(utf8[index + $1])! }
        }
        while index < utf8.count {
            let byte = utf8[index]
            guard byte == 0x5C else {
                out.append(byte)
                index += 1
                continue
            }
            let escape = utf8[index + 1]
            index += 2
            switch escape {
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x74: out.append(0x09)
            case 0x75:
                var scalar = code(at: index - 1)
                index += 4
                if (0xD800...0xDBFF).contains(scalar) {
                    guard index + 5 < utf8.count + 0, utf8[index] == 0x5C, utf8[index + 1] == 0x75 else { return nil }
                    let low = code(at: index + 1)
                    guard (0xDC00...0xDFFF).contains(low) else { return nil }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    index += 6
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    return nil
                }
                guard let unicode = Unicode.Scalar(scalar) else { return nil }
                out.append(contentsOf: UTF8.encode(unicode)!)
            default: out.append(escape)  // ", \ and /
            }
        }
        return out
    }

    fileprivate func integer<T: FixedWidthInteger>(_ type: T.Type, at index: Int32) throws -> T {
        let token = token(index)
        // JSONDecoder also reads `34.0` or `1e2` as integers: those are left to it.
        guard token.kind == .number, token.flags == 0, T.bitWidth <= 64 else { throw giveUp() }
        let (negative, parsed) = withBytes(of: token) { utf8 -> (Bool, UInt64?) in
            let negative = utf8[0] == 0x2D
            var magnitude: UInt64 = 0
            for byte in utf8.dropFirst(negative ? 1 : 0) {
                let (times10, overflow) = magnitude.multipliedReportingOverflow(by: 10)
                let (sum, carry) = times10.addingReportingOverflow(UInt64(byte - 0x30))
                guard !overflow, !carry else { return (negative, nil) }
                magnitude = sum
            }
            return (negative, magnitude)
        }
        guard let magnitude = parsed else { throw giveUp() }
        let value: T?
        if negative {
            guard magnitude != 0, magnitude <= UInt64(Int64.max) + 1 else { throw giveUp() }
            value = T(exactly: magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude))
        } else {
            value = T(exactly: magnitude)
        }
        guard let value else { throw giveUp() }
        return value
    }

    fileprivate func floating<T: BinaryFloatingPoint & LosslessStringConvertible>(_ type: T.Type, at index: Int32) throws -> T {
        let token = token(index)
        guard token.kind == .number else { throw giveUp() }
        // The same strtod/strtof JSONDecoder calls; it refuses what overflows, or what rounds to
        // zero from a non-zero number, by a check of its own that also refuses some zeros with an
        // exponent (`0e2`): every zero with an exponent is left to it.
        let value = withBytes(of: token) { utf8 -> T? in
            guard let value = T(String(decoding: utf8, as: UTF8.self)), value.isFinite else { return nil }
            if value == 0, utf8.contains(where: { $0 == 0x65 || $0 == 0x45 || ($0 >= 0x31 && $0 <= 0x39) }) { return nil }
            return value
        }
        guard let value else { throw giveUp() }
        return value
    }
}

/// The `Decoder` a value decodes itself from: one value of a ``PayloadJSONReader``.
private struct PayloadJSONDecoder: Decoder {
    let reader: PayloadJSONReader
    let index: Int32

    var codingPath: [any CodingKey] {
        reader.gaveUp = true
        return []
    }

    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(try KeyedPayloadDecoder<Key>(reader: reader, object: index))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try UnkeyedPayloadDecoder(reader: reader, array: index)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SinglePayloadDecoder(reader: reader, index: index)
    }
}

private struct KeyedPayloadDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let reader: PayloadJSONReader
    let object: Int32
    /// For objects with many members, or keys that are escaped or not ASCII: each key's first
    /// value, as JSONDecoder keeps it.
    private let keys: [String: Int32]?

    init(reader: PayloadJSONReader, object: Int32) throws {
        let token = reader.token(object)
        guard token.kind == .object else { throw reader.giveUp() }
        self.reader = reader
        self.object = object
        var plain = Int(token.start) <= PayloadJSONReader.linearKeys
        if plain {
            reader.forEachMember(of: object) { key, _ in
                if reader.token(key).flags != 0 { plain = false }
            }
        }
        guard !plain else {
            keys = nil
            return
        }
        var keys: [String: Int32] = [:]
        keys.reserveCapacity(Int(token.start))
        try reader.forEachMember(of: object) { key, value in
            let name = try reader.string(at: key)
            if keys[name] == nil { keys[name] = value }
        }
        self.keys = keys
    }

    var codingPath: [any CodingKey] {
        reader.gaveUp = true
        return []
    }

    private func forEachMember(_ body: (Int32, Int32) throws -> Void) rethrows {
        try reader.forEachMember(of: object, body)
    }

    var allKeys: [Key] {
        var result: [Key] = []
        if let keys {
            forEachMember { key, value in
                // A repeated key is listed once, as JSONDecoder lists it.
                if let string = try? reader.string(at: key), keys[string] == value, let key = Key(stringValue: string) { result.append(key) }
            }
            return result
        }
        var seen: [String] = []
        forEachMember { key, _ in
            let name = reader.withBytes(of: reader.token(key)) { String(decoding: $0, as: UTF8.self) }
            // Plain ASCII keys: equal as strings exactly when their bytes are.
            if seen.contains(name) { reader.gaveUp = true }
            seen.append(name)
            if let key = Key(stringValue: name) { result.append(key) }
        }
        return result
    }

    /// The value's token for `key`, the first when the key repeats, as JSONDecoder finds it.
    private func find(_ key: Key) throws -> Int32? {
        if let keys { return keys[key.stringValue] }
        var name = key.stringValue
        let found = name.withUTF8 { utf8 -> Int32? in
            var found: Int32?
            forEachMember { key, value in
                guard found == nil, reader.withBytes(of: reader.token(key), { $0.elementsEqual(utf8) }) else { return }
                found = value
            }
            return found
        }
        // Not ASCII, it may equal a key whose bytes differ (Swift compares strings canonically).
        if found == nil, !name.utf8.allSatisfy({ $0 < 0x80 }) { throw reader.giveUp() }
        return found
    }

    private func require(_ key: Key) throws -> Int32 {
        guard let index = try find(key) else { throw reader.giveUp() }
        return index
    }

    func contains(_ key: Key) -> Bool {
        (try? find(key)) != nil
    }

    func decodeNil(forKey key: Key) throws -> Bool { reader.isNull(try require(key)) }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try reader.bool(at: require(key)) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try reader.string(at: require(key)) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try reader.floating(type, at: require(key)) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try reader.floating(type, at: require(key)) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try reader.integer(type, at: require(key)) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try reader.integer(type, at: require(key)) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try reader.integer(type, at: require(key)) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try reader.integer(type, at: require(key)) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try reader.integer(type, at: require(key)) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try reader.integer(type, at: require(key)) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try reader.integer(type, at: require(key)) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try reader.integer(type, at: require(key)) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try reader.integer(type, at: require(key)) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try reader.integer(type, at: require(key)) }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try reader.value(type, at: require(key)) }

    /// The value's token for `key` unless the key is missing or its value is `null`.
    private func present(_ key: Key) throws -> Int32? {
        guard let index = try find(key), !reader.isNull(index) else { return nil }
        return index
    }

    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try present(key).map { try reader.bool(at: $0) } }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try present(key).map { try reader.string(at: $0) } }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try present(key).map { try reader.floating(type, at: $0) } }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try present(key).map { try reader.integer(type, at: $0) } }
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? { try present(key).map { try reader.value(type, at: $0) } }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        KeyedDecodingContainer(try KeyedPayloadDecoder<NestedKey>(reader: reader, object: require(key)))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try UnkeyedPayloadDecoder(reader: reader, array: require(key))
    }

    func superDecoder() throws -> any Decoder { throw reader.giveUp() }
    func superDecoder(forKey key: Key) throws -> any Decoder { throw reader.giveUp() }
}

private struct UnkeyedPayloadDecoder: UnkeyedDecodingContainer {
    let reader: PayloadJSONReader
    private var cursor: Int32
    private let total: Int
    private(set) var currentIndex = 0

    init(reader: PayloadJSONReader, array: Int32) throws {
        let token = reader.token(array)
        guard token.kind == .array else { throw reader.giveUp() }
        self.reader = reader
        cursor = array + 1
        total = Int(token.start)
    }

    var codingPath: [any CodingKey] {
        reader.gaveUp = true
        return []
    }

    var count: Int? { total }
    var isAtEnd: Bool { currentIndex >= total }

    private mutating func next() throws -> Int32 {
        guard !isAtEnd else { throw reader.giveUp() }
        let index = cursor
        cursor = reader.token(index).next
        currentIndex += 1
        return index
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { throw reader.giveUp() }
        guard reader.isNull(cursor) else { return false }
        _ = try next()
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try reader.bool(at: next()) }
    mutating func decode(_ type: String.Type) throws -> String { try reader.string(at: next()) }
    mutating func decode(_ type: Double.Type) throws -> Double { try reader.floating(type, at: next()) }
    mutating func decode(_ type: Float.Type) throws -> Float { try reader.floating(type, at: next()) }
    mutating func decode(_ type: Int.Type) throws -> Int { try reader.integer(type, at: next()) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try reader.integer(type, at: next()) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try reader.integer(type, at: next()) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try reader.integer(type, at: next()) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try reader.integer(type, at: next()) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try reader.integer(type, at: next()) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try reader.integer(type, at: next()) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try reader.integer(type, at: next()) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try reader.integer(type, at: next()) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try reader.integer(type, at: next()) }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try reader.value(type, at: next()) }

    /// The next value's token unless it is `null` (passed over); at the end Foundation and the
    /// standard library's default differ on where the container is left, so it is left to Foundation.
    private mutating func present() throws -> Int32? {
        guard !isAtEnd else { throw reader.giveUp() }
        if reader.isNull(cursor) {
            _ = try next()
            return nil
        }
        return try next()
    }

    mutating func decodeIfPresent(_ type: Bool.Type) throws -> Bool? { try present().map { try reader.bool(at: $0) } }
    mutating func decodeIfPresent(_ type: String.Type) throws -> String? { try present().map { try reader.string(at: $0) } }
    mutating func decodeIfPresent(_ type: Double.Type) throws -> Double? { try present().map { try reader.floating(type, at: $0) } }
    mutating func decodeIfPresent(_ type: Float.Type) throws -> Float? { try present().map { try reader.floating(type, at: $0) } }
    mutating func decodeIfPresent(_ type: Int.Type) throws -> Int? { try present().map { try reader.integer(type, at: $0) } }
    mutating func decodeIfPresent(_ type: Int8.Type) throws -> Int8? { try present().map { try reader.integer(type, at: $0) } }
    mutating func decodeIfPresent(_ type: Int16.Type) throws -> Int16? { try present().map { try reader.integer(type, at: $0) } }
    mutating func decodeIfPresent(_ type: Int32.Type) throws -> Int32? { try present().map { try reader.integer(type, at: $0) } }
    mutating func decodeIfPresent(_ type: Int64.Type) throws -> Int64? { try present().map { try reader.integer(type, at: $0) } }
    mutating func decodeIfPresent(_ type: UInt.Type) throws -> UInt? { try present().map { try reader.integer(type, at: $0) } }
    mutating func decodeIfPresent(_ type: UInt8.Type) throws -> UInt8? { try present().map { try reader.integer(type, at: $0) } }
    mutating func decodeIfPresent(_ type: UInt16.Type) throws -> UInt16? { try present().map { try reader.integer(type, at: $0) } }
    mutating func decodeIfPresent(_ type: UInt32.Type) throws -> UInt32? { try present().map { try reader.integer(type, at: $0) } }
    mutating func decodeIfPresent(_ type: UInt64.Type) throws -> UInt64? { try present().map { try reader.integer(type, at: $0) } }
    mutating func decodeIfPresent<T: Decodable>(_ type: T.Type) throws -> T? { try present().map { try reader.value(type, at: $0) } }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        KeyedDecodingContainer(try KeyedPayloadDecoder<NestedKey>(reader: reader, object: next()))
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try UnkeyedPayloadDecoder(reader: reader, array: next())
    }

    mutating func superDecoder() throws -> any Decoder { throw reader.giveUp() }
}

private struct SinglePayloadDecoder: SingleValueDecodingContainer {
    let reader: PayloadJSONReader
    let index: Int32

    var codingPath: [any CodingKey] {
        reader.gaveUp = true
        return []
    }

    func decodeNil() -> Bool { reader.isNull(index) }
    func decode(_ type: Bool.Type) throws -> Bool { try reader.bool(at: index) }
    func decode(_ type: String.Type) throws -> String { try reader.string(at: index) }
    func decode(_ type: Double.Type) throws -> Double { try reader.floating(type, at: index) }
    func decode(_ type: Float.Type) throws -> Float { try reader.floating(type, at: index) }
    func decode(_ type: Int.Type) throws -> Int { try reader.integer(type, at: index) }
    func decode(_ type: Int8.Type) throws -> Int8 { try reader.integer(type, at: index) }
    func decode(_ type: Int16.Type) throws -> Int16 { try reader.integer(type, at: index) }
    func decode(_ type: Int32.Type) throws -> Int32 { try reader.integer(type, at: index) }
    func decode(_ type: Int64.Type) throws -> Int64 { try reader.integer(type, at: index) }
    func decode(_ type: UInt.Type) throws -> UInt { try reader.integer(type, at: index) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try reader.integer(type, at: index) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try reader.integer(type, at: index) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try reader.integer(type, at: index) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try reader.integer(type, at: index) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try reader.value(type, at: index) }
}

/// Reads a document into ``PayloadJSONReader``'s tokens, validating it as JSON: `false` for
/// anything that is not, which Foundation then reports.
private struct PayloadJSONScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var tokens: [PayloadJSONReader.Token] = []

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    mutating func parse() -> Bool {
        tokens.reserveCapacity(bytes.count / 4 + 4)
        var index = skipSpace(0)
        guard parseValue(&index, depth: 0) else { return false }
        return skipSpace(index) == bytes.count
    }

    private func skipSpace(_ index: Int) -> Int {
        var index = index
        while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D || bytes[index] == 0x09 { index += 1 }
        return index
    }

    private mutating func parseValue(_ index: inout Int, depth: Int) -> Bool {
        guard index < bytes.count else { return false }
        switch bytes[index] {
        case 0x7B, 0x5B:
            return parseContainer(&index, object: bytes[index] == 0x7B, depth: depth + 1)
        case 0x22:
            return parseString(&index)
        case 0x74: return literal(&index, "true", .true)
        case 0x66: return literal(&index, "false", .false)
        case 0x6E: return literal(&index, "null", .null)
        case 0x2D, 0x30...0x39:
            return parseNumber(&index)
        default:
            return false
        }
    }

    private mutating func parseContainer(_ index: inout Int, object: Bool, depth: Int) -> Bool {
        guard depth < PayloadJSONReader.maxDepth else { return false }
        let me = tokens.count
        tokens.append(PayloadJSONReader.Token(kind: object ? .object : .array, flags: 0, start: 0, end: 0, next: 0))
        let close: UInt8 = object ? 0x7D : 0x5D
        index = skipSpace(index + 1)
        var count: Int32 = 0
        if index < bytes.count, bytes[index] == close {
            index += 1
        } else {
            while true {
                if object {
                    guard index < bytes.count, bytes[index] == 0x22, parseString(&index) else { return false }
                    index = skipSpace(index)
                    guard index < bytes.count, bytes[index] == 0x3A else { return false }
                    index = skipSpace(index + 1)
                }
                guard parseValue(&index, depth: depth) else { return false }
                count += 1
                index = skipSpace(index)
                guard index < bytes.count else { return false }
                if bytes[index] == 0x2C {
                    index = skipSpace(index + 1)
                } else if bytes[index] == close {
                    index += 1
                    break
                } else {
                    return false
                }
            }
        }
        tokens[me].start = count
        tokens[me].next = Int32(tokens.count)
        return true
    }

    private mutating func parseString(_ index: inout Int) -> Bool {
        var cursor = index + 1
        var flags: UInt8 = 0
        while true {
            guard cursor < bytes.count else { return false }
            let byte = bytes[cursor]
            if byte == 0x22 { break }
            if byte < 0x20 { return false }
            if byte >= 0x80 { flags |= PayloadJSONReader.nonASCII }
            if byte == 0x5C {
                flags |= PayloadJSONReader.escaped
                guard cursor + 1 < bytes.count else { return false }
                switch bytes[cursor + 1] {
                case 0x22, 0x5C, 0x2F, 0x62, 0x66, 0x6E, 0x72, 0x74:
                    cursor += 2
                case 0x75:
                    guard cursor + 5 < bytes.count, (2...5).allSatisfy({ Self.hex(bytes[cursor + $0]) != nil }) else { return false }
                    cursor += 6
                default:
                    return false
                }
                continue
            }
            cursor += 1
        }
        tokens.append(PayloadJSONReader.Token(kind: .string, flags: flags, start: Int32(index + 1), end: Int32(cursor), next: Int32(tokens.count + 1)))
        index = cursor + 1
        return true
    }

    private mutating func literal(_ index: inout Int, _ word: StaticString, _ kind: PayloadJSONReader.Kind) -> Bool {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count,
            UnsafeBufferPointer(start: word.utf8Start, count: count).elementsEqual(UnsafeBufferPointer(rebasing: bytes[index..<(index + count)]))
        else { return false }
        tokens.append(PayloadJSONReader.Token(kind: kind, flags: 0, start: Int32(index), end: Int32(index + count), next: Int32(tokens.count + 1)))
        index += count
        return true
    }

    /// JSON's number grammar: `-`, then `0` or digits not starting with `0`, then an optional
    /// fraction and exponent.
    private mutating func parseNumber(_ index: inout Int) -> Bool {
        let start = index
        var cursor = index
        var flags: UInt8 = 0
        func digits() -> Bool {
            let first = cursor
            while cursor < bytes.count, bytes[cursor] >= 0x30, bytes[cursor] <= 0x39 { cursor += 1 }
            return cursor > first
        }
        if bytes[cursor] == 0x2D { cursor += 1 }
        guard cursor < bytes.count else { return false }
        if bytes[cursor] == 0x30 {
            cursor += 1
        } else {
            guard digits() else { return false }
        }
        if cursor < bytes.count, bytes[cursor] == 0x2E {
            flags = PayloadJSONReader.fractional
            cursor += 1
            guard digits() else { return false }
        }
        if cursor < bytes.count, bytes[cursor] == 0x65 || bytes[cursor] == 0x45 {
            flags = PayloadJSONReader.fractional
            cursor += 1
            if cursor < bytes.count, bytes[cursor] == 0x2B || bytes[cursor] == 0x2D { cursor += 1 }
            guard digits() else { return false }
        }
        tokens.append(PayloadJSONReader.Token(kind: .number, flags: flags, start: Int32(start), end: Int32(cursor), next: Int32(tokens.count + 1)))
        index = cursor
        return true
    }

    static func hex(_ byte: UInt8) -> UInt32? {
        switch byte {
        case 0x30...0x39: UInt32(byte - 0x30)
        case 0x41...0x46: UInt32(byte - 0x41 + 10)
        case 0x61...0x66: UInt32(byte - 0x61 + 10)
        default: nil
        }
    }
}
