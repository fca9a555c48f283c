/// A hierarchical timer wheel: a pure value type with no clock and no I/O.
///
/// Time is cut into ticks of `resolution` nanoseconds. Level 0 has one slot per tick for the
/// next 256 ticks; each higher level has 256 slots that each cover a whole turn of the level
/// below (with 1 ms ticks: 256 ms, 65 s, 4.7 h, 50 days). A timer goes into the lowest level
/// whose turn contains its tick; when time reaches the start of a higher-level slot, that slot
/// *cascades*: its timers move down to the level where they now belong. Timers beyond the top
/// level wait in an overflow list that is sorted in again once per top-level turn.
///
/// Inserting and removing cost O(1); ``advance(to:)`` costs O(ticks passed + timers fired).
/// A jump further than one level-1 turn (after the process slept, or the clock stepped) sorts
/// every timer in again rather than walking each tick.
///
/// A timer never fires early: ``advance(to:)`` returns exactly the timers whose `due <= now`,
/// in due order (ties in insertion order). Timers of the current tick that are not yet due stay.
struct TimerWheel<Payload> {
    /// A timer in the wheel.
    struct Entry {
        /// Given by ``insert(due:payload:)``; used to remove it.
        var id: UInt64
        /// When it fires, in nanoseconds since 1970.
        var due: Int64
        var payload: Payload
    }

    static var levels: Int { 4 }
    static var slotBits: Int { 8 }
    static var slotCount: Int { 1 << slotBits }

    /// The length of one tick, in nanoseconds.
    let resolution: Int64
    /// The tick being processed: every timer due before it has fired.
    private(set) var current: Int64
    /// `slots[level][slot]` holds ids; an id whose entry was removed is skipped lazily.
    private var slots: [[[UInt64]]]
    /// How many live entries each level holds (index `levels` is the overflow list).
    private var counts: [Int]
    private var overflow: [UInt64] = []
    /// Live entries, and the level each one sits at.
    private var entries: [UInt64: (entry: Entry, level: Int)] = [:]
    private var nextID: UInt64 = 1

    /// Creates an empty wheel whose time starts at `now`.
    init(resolution: Duration = .milliseconds(1), now: Int64) {
        precondition(resolution > .zero, "A timer wheel needs a positive resolution.")
        self.resolution = max(1, resolution.wholeNanoseconds)
        self.current = Self.tick(of: now, resolution: self.resolution)
        slots = Array(repeating: Array(repeating: [], count: Self.slotCount), count: Self.levels)
        counts = Array(repeating: 0, count: Self.levels + 1)
    }

    /// How many timers wait.
    var count: Int { entries.count }

    /// Whether no timer waits.
    var isEmpty: Bool { entries.isEmpty }

    /// How many timers wait at `level` (0 ..< 4), or in the overflow list (4). For tests.
    func count(atLevel level: Int) -> Int { counts[level] }

    /// The due time of a waiting timer.
    func due(of id: UInt64) -> Int64? { entries[id]?.entry.due }

    /// Adds a timer; returns its id.
    @discardableResult
    mutating func insert(due: Int64, payload: Payload) -> UInt64 {
        let id = nextID
        nextID += 1
        place(Entry(id: id, due: due, payload: payload))
        return id
    }

    /// Removes a timer that has not fired; returns it, or `nil` when it is not waiting.
    @discardableResult
    mutating func remove(_ id: UInt64) -> Entry? {
        guard let (entry, level) = entries.removeValue(forKey: id) else { return nil }
        counts[level] -= 1
        // The id stays in its slot and is skipped when that slot is read.
        return entry
    }

    /// Moves time forward to `now` and returns every timer due at or before it, in due order.
    /// Time never moves back: an earlier `now` fires only what is due by then.
    mutating func advance(to now: Int64) -> [Entry] {
        let target = Self.tick(of: now, resolution: resolution)
        var fired: [Entry] = []
        if target - current > Int64(Self.slotCount * Self.slotCount) {
            // A long jump: sort everything in again from the new time.
            let all = entries.values.map(\.entry)
            entries.removeAll(keepingCapacity: true)
            for level in 0..<Self.levels { for slot in 0..<Self.slotCount { slots[level][slot].removeAll() } }
            overflow.removeAll()
            counts = Array(repeating: 0, count: Self.levels + 1)
            current = target
            for entry in all.sorted(by: Self.firesBefore) {
                if entry.due <= now { fired.append(entry) } else { place(entry) }
            }
            return fired
        }
        while current < target {
            if counts[0] > 0 {
                // Every timer in this tick's slot is due before the next tick starts, so before `now`.
                fired.append(contentsOf: takeSlot(level: 0, slot: Self.digit(current, level: 0)))
                current += 1
            } else {
                // Nothing at level 0: nothing can happen before the next slot of the lowest
                // non-empty level cascades, so skip to that boundary.
                var level = 1
                while level < Self.levels, counts[level] == 0 { level += 1 }
                let span = Self.span(of: level)
                let boundary = Self.floorDiv(current, span) * span + span
                if boundary > target {
                    current = target
                    break
                }
                current = boundary
            }
            cascade()
        }
        // The current tick: only what is due by `now`; the rest stays.
        let slot = Self.digit(current, level: 0)
        var stay: [UInt64] = []
        for id in slots[0][slot] {
            guard let (entry, _) = entries[id] else { continue }
            if entry.due <= now {
                entries[id] = nil
                counts[0] -= 1
                fired.append(entry)
            } else {
                stay.append(id)
            }
        }
        slots[0][slot] = stay
        fired.sort(by: Self.firesBefore)
        return fired
    }

    /// When ``advance(to:)`` should next be called: the earliest due time among level 0's
    /// next non-empty slot, or the start of the next slot that cascades. `nil` when empty.
    var nextWake: Int64? {
        if entries.isEmpty { return nil }
        if counts[0] > 0 {
            let base = Self.digit(current, level: 0)
            for offset in 0..<Self.slotCount {
                let slot = (base + offset) % Self.slotCount
                let dues = slots[0][slot].compactMap { entries[$0]?.entry.due }
                if let earliest = dues.min() { return earliest }
            }
        }
        for level in 1..<Self.levels where counts[level] > 0 {
            let span = Self.span(of: level)
            let base = Self.digit(current, level: level)
            for offset in 1...Self.slotCount {
                let slot = (base + offset) % Self.slotCount
                if slots[level][slot].contains(where: { entries[$0] != nil }) {
                    // The slot cascades when time reaches its first tick.
                    let turnStart = Self.floorDiv(current, span * Int64(Self.slotCount)) * span * Int64(Self.slotCount)
                    var start = turnStart + Int64(slot) * span
                    if start <= current { start += span * Int64(Self.slotCount) }
                    return start * resolution
                }
            }
        }
        let topTurn = Self.span(of: Self.levels)
        return (Self.floorDiv(current, topTurn) + 1) * topTurn * resolution
    }

    // MARK: Placement

    /// Comparing by due time, then by insertion order.
    private static func firesBefore(_ a: Entry, _ b: Entry) -> Bool {
        (a.due, a.id) < (b.due, b.id)
    }

    private static func tick(of time: Int64, resolution: Int64) -> Int64 {
        floorDiv(time, resolution)
    }

    /// Division rounding down, so times before 1970 land in the right tick and turn too.
    private static func floorDiv(_ value: Int64, _ divisor: Int64) -> Int64 {
        let (quotient, remainder) = value.quotientAndRemainder(dividingBy: divisor)
        return remainder < 0 ? quotient - 1 : quotient
    }

    /// How many ticks one slot of `level` covers.
    private static func span(of level: Int) -> Int64 { Int64(1) << (slotBits * level) }

    private static func digit(_ tick: Int64, level: Int) -> Int {
        Int((tick >> (slotBits * level)) & Int64(slotCount - 1))
    }

    /// Puts an entry at the lowest level whose current turn contains its tick.
    private mutating func place(_ entry: Entry) {
        let tick = max(Self.tick(of: entry.due, resolution: resolution), current)
        var level = 0
        while level < Self.levels, tick >> (Self.slotBits * (level + 1)) != current >> (Self.slotBits * (level + 1)) {
            level += 1
        }
        entries[entry.id] = (entry, level)
        counts[level] += 1
        if level == Self.levels {
            overflow.append(entry.id)
        } else {
            slots[level][Self.digit(tick, level: level)].append(entry.id)
        }
    }

    /// Takes the live entries out of a slot.
    private mutating func takeSlot(level: Int, slot: Int) -> [Entry] {
        let ids = slots[level][slot]
        slots[level][slot] = []
        var taken: [Entry] = []
        for id in ids {
            guard let (entry, _) = entries.removeValue(forKey: id) else { continue }
            counts[level] -= 1
            taken.append(entry)
        }
        return taken
    }

    /// After `current` moved to a new tick: every higher-level slot that starts at this tick
    /// moves its timers down, highest level first.
    private mutating func cascade() {
        if current % Self.span(of: Self.levels) == 0 {
            let ids = overflow
            overflow = []
            for id in ids {
                guard let (entry, _) = entries.removeValue(forKey: id) else { continue }
                counts[Self.levels] -= 1
                place(entry)
            }
        }
        for level in stride(from: Self.levels - 1, through: 1, by: -1) where current % Self.span(of: level) == 0 {
            for entry in takeSlot(level: level, slot: Self.digit(current, level: level)) { place(entry) }
        }
    }
}
