/// A map for the handful of entries most workflows hold: its entries in one array, searched in
/// order, with a hash index built once it holds ``indexedFrom`` (16) entries.
///
/// `WorkflowState` keeps several maps per workflow (recorded steps, waits, body calls, claimed
/// keys), and a typical workflow puts one to five entries in each. A `Dictionary` allocates its
/// storage at the first insert and again at each doubling, and hashes the key (a step's name) on
/// every access; an `OrderedDictionary` keeps its keys and values in two arrays. This keeps a
/// small map in one allocation (one entry, then four, then doubling) and compares keys instead
/// of hashing them. Large histories (thousands of steps) get the index and stay O(1).
///
/// Removing an entry moves the last one into its place, so iteration order is not insertion
/// order; equality does not depend on order.
package struct SmallMap<Key: Hashable, Value> {
    package typealias Element = (key: Key, value: Value)

    /// The count at which lookups switch from scanning to a hash index.
    package static var indexedFrom: Int { 16 }

    private var entries: [Element] = []
    /// Each key's position in `entries`, once there are ``indexedFrom`` entries.
    private var positions: [Key: Int]?

    /// An empty map.
    package init() {}

    package var count: Int { entries.count }
    package var isEmpty: Bool { entries.isEmpty }

    private func position(of key: Key) -> Int? {
        if let positions { return positions[key] }
        return entries.firstIndex { $0.key == key }
    }

    /// The value for `key`; setting `nil` removes it.
    package subscript(key: Key) -> Value? {
        get { position(of: key).map { entries[$0].value } }
        set {
            // Consumed: `if let` bound a copy of the new value, retaining its every reference.
            switch consume newValue {
            case .some(let value): updateValue(value, forKey: key)
            case .none: removeValue(forKey: key)
            }
        }
    }

    /// The value for `key`, or `defaultValue` when there is none (setting it adds it).
    package subscript(key: Key, default defaultValue: @autoclosure () -> Value) -> Value {
        get { self[key] ?? defaultValue() }
        set { updateValue(newValue, forKey: key) }
    }

    /// Changes the value for `key` in place (adding `defaultValue` first when there is none),
    /// with one search for the key.
    package mutating func modify<R>(_ key: Key, default defaultValue: @autoclosure () -> Value, _ body: (inout Value) -> R) -> R {
        let position = position(of: key) ?? {
            updateValue(defaultValue(), forKey: key)
            return entries.count - 1
        }()
        return body(&entries[position].value)
    }

    /// Sets the value for `key` and returns the one it replaced.
    @discardableResult
    package mutating func updateValue(_ value: consuming Value, forKey key: Key) -> Value? {
        if let position = position(of: key) {
            // Swapped, not copied out and overwritten: that retained and released the old
            // value's every reference once more (a recorded step's, on every step).
            swap(&entries[position].value, &value)
            return value
        }
        if entries.count == entries.capacity {
            // One entry exactly (a sleeping workflow's maps mostly hold one), then room for four,
            // then doubling: three entries take two allocations, as a `Dictionary`'s do.
            entries.reserveCapacity(entries.isEmpty ? 1 : Swift.max(4, entries.count * 2))
        }
        entries.append((key, value))
        if positions != nil {
            positions?[key] = entries.count - 1
        } else if entries.count >= Self.indexedFrom {
            var index: [Key: Int] = [:]
            index.reserveCapacity(entries.count * 2)
            for (position, entry) in entries.enumerated() { index[entry.key] = position }
            positions = index
        }
        return nil
    }

    /// Removes `key`'s entry and returns its value; the last entry takes its place.
    @discardableResult
    package mutating func removeValue(forKey key: Key) -> Value? {
        guard let position = position(of: key) else { return nil }
        let removed = entries[position].value
        let last = entries.count - 1
        if position != last {
            entries.swapAt(position, last)
            positions?[entries[position].key] = position
        }
        entries.removeLast()
        positions?[key] = nil
        return removed
    }

    /// Removes every entry and gives back the storage.
    package mutating func removeAll() {
        entries = []
        positions = nil
    }

    /// Makes room for `capacity` entries (a snapshot's decoding knows how many it will insert).
    package mutating func reserveCapacity(_ capacity: Int) {
        entries.reserveCapacity(capacity)
    }

    /// The keys, in the map's order.
    package var keys: Keys { Keys(entries: entries) }
    /// The values, in the map's order.
    package var values: Values { Values(entries: entries) }

    /// The keys of a ``SmallMap``.
    package struct Keys: RandomAccessCollection {
        fileprivate let entries: [Element]
        package var startIndex: Int { 0 }
        package var endIndex: Int { entries.count }
        package subscript(position: Int) -> Key { entries[position].key }
    }

    /// The values of a ``SmallMap``.
    package struct Values: RandomAccessCollection {
        fileprivate let entries: [Element]
        package var startIndex: Int { 0 }
        package var endIndex: Int { entries.count }
        package subscript(position: Int) -> Value { entries[position].value }
    }
}

extension SmallMap: Sequence {
    package func makeIterator() -> IndexingIterator<[Element]> { entries.makeIterator() }
    package var underestimatedCount: Int { entries.count }
}

extension SmallMap: Sendable where Key: Sendable, Value: Sendable {}
extension SmallMap.Keys: Sendable where Key: Sendable, Value: Sendable {}
extension SmallMap.Values: Sendable where Key: Sendable, Value: Sendable {}

extension SmallMap: Equatable where Value: Equatable {
    /// Whether both hold the same keys with equal values, in any order.
    package static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.count == rhs.count && lhs.allSatisfy { rhs[$0.key] == $0.value }
    }
}

extension SmallMap: ExpressibleByDictionaryLiteral {
    package init(dictionaryLiteral elements: (Key, Value)...) {
        self.init()
        for (key, value) in elements { updateValue(value, forKey: key) }
    }
}

/// A set for the few elements a workflow's run tracks (the keys it claimed, the steps in
/// flight), kept as a ``SmallMap`` with no values: one allocation, no hashing while small.
package struct SmallSet<Element: Hashable> {
    private var map = SmallMap<Element, Void>()

    /// An empty set.
    package init() {}

    package var count: Int { map.count }
    package var isEmpty: Bool { map.isEmpty }

    package func contains(_ element: Element) -> Bool { map[element] != nil }

    /// Adds `element`; returns whether it was new.
    @discardableResult
    package mutating func insert(_ element: Element) -> Bool { map.updateValue((), forKey: element) == nil }

    /// Removes `element`; returns whether it was there.
    @discardableResult
    package mutating func remove(_ element: Element) -> Bool { map.removeValue(forKey: element) != nil }

    /// Removes every element and gives back the storage.
    package mutating func removeAll() { map.removeAll() }

    /// Makes room for `capacity` elements.
    package mutating func reserveCapacity(_ capacity: Int) { map.reserveCapacity(capacity) }
}

extension SmallSet: Sequence {
    package func makeIterator() -> LazyMapSequence<SmallMap<Element, Void>, Element>.Iterator {
        map.lazy.map(\.key).makeIterator()
    }
    package var underestimatedCount: Int { map.count }
}

extension SmallSet: Sendable where Element: Sendable {}

extension SmallSet: ExpressibleByArrayLiteral {
    package init(arrayLiteral elements: Element...) {
        self.init()
        for element in elements { insert(element) }
    }
}
