@_spi(Testing) import Continuum
import ContinuumTestSupport
import Testing

@Suite("SmallMap")
struct SmallMapTests {
    @Test("seeded random inserts, updates and removals agree with a Dictionary, across the switch to a hash index", arguments: 0..<50)
    func agreesWithDictionary(seed: UInt64) {
        var random = SeededGenerator(seed: seed)
        var map = SmallMap<String, Int>()
        var set = SmallSet<String>()
        var model: [String: Int] = [:]
        var setModel = Set<String>()
        // Keys from a pool larger than the index threshold, so maps grow past it and shrink back.
        let pool = (0..<(SmallMap<String, Int>.indexedFrom * 3)).map { "step-\($0)" }
        for round in 0..<600 {
            let key = pool[Int.random(in: 0..<pool.count, using: &random)]
            switch Int.random(in: 0..<10, using: &random) {
            case 0..<6:
                let value = Int.random(in: 0..<1000, using: &random)
                let replaced = model.updateValue(value, forKey: key)
                let mapReplaced = map.updateValue(value, forKey: key)
                #expect(mapReplaced == replaced, "seed \(seed) round \(round)")
                let inserted = setModel.insert(key).inserted
                let setInserted = set.insert(key)
                #expect(setInserted == inserted, "seed \(seed) round \(round)")
            case 6..<9:
                let removed = model.removeValue(forKey: key)
                let mapRemoved = map.removeValue(forKey: key)
                #expect(mapRemoved == removed, "seed \(seed) round \(round)")
                let wasThere = setModel.remove(key) != nil
                let setRemoved = set.remove(key)
                #expect(setRemoved == wasThere, "seed \(seed) round \(round)")
            default:
                map[key, default: 0] += 1
                model[key, default: 0] += 1
            }
            #expect(map.count == model.count)
            #expect(set.count == setModel.count)
            for probe in pool {
                #expect(map[probe] == model[probe], "seed \(seed) round \(round) key \(probe)")
                #expect(set.contains(probe) == setModel.contains(probe), "seed \(seed) round \(round) key \(probe)")
            }
        }
        #expect(Dictionary(uniqueKeysWithValues: map.map { ($0.key, $0.value) }) == model)
        #expect(Set(map.keys) == Set(model.keys))
        #expect(map.values.sorted() == model.values.sorted())
    }

    @Test("a set answers membership as a Set does, small and indexed")
    func setMembership() {
        var set = SmallSet<Int>()
        var model = Set<Int>()
        for value in 0..<40 where value % 3 != 0 {
            let inserted = model.insert(value).inserted
            let setInserted = set.insert(value)
            let again = set.insert(value)
            #expect(setInserted == inserted && !again)
        }
        for value in stride(from: 0, to: 40, by: 4) {
            let wasThere = model.remove(value) != nil
            let setRemoved = set.remove(value)
            #expect(setRemoved == wasThere)
        }
        #expect(set.count == model.count)
        #expect(Set(set) == model)
        for value in 0..<45 { #expect(set.contains(value) == model.contains(value)) }
        set.removeAll()
        #expect(set.isEmpty && !set.contains(1))
    }

    @Test("equality ignores order: maps built in different orders, or reordered by a removal, are equal")
    func equalityIgnoresOrder() {
        var forward = SmallMap<Int, String>()
        var backward = SmallMap<Int, String>()
        for key in 0..<5 { forward[key] = "v\(key)" }
        for key in (0..<5).reversed() { backward[key] = "v\(key)" }
        #expect(forward == backward)
        forward[0] = nil
        backward[0] = nil
        #expect(forward == backward)
        backward[4] = "changed"
        #expect(forward != backward)
        backward[4] = nil
        #expect(forward != backward)
    }
}
