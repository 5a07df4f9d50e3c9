import LeaseholdTestSupport
import Testing

@testable import LeaseholdCore

@Suite("OrderedMap")
struct OrderedMapTests {
    @Test("matches a sorted-array model on random operations", arguments: TestSeed.seeds(default: [1, 2, 3]))
    func randomOperationsMatchModel(seed: UInt64) async throws {
        // CPU-bound: on a low-priority thread of its own (see RecoveryTests).
        let failures = try await onOwnThread { () -> [String] in
            var checks = OffContextChecks()
            print(TestSeed.replayHint(seed: seed, test: "OrderedMapTests"))
            var random = SeededGenerator(seed: seed)
            var map = OrderedMap<Int, Int>()
            var model: [Int: Int] = [:]
            var snapshots: [(OrderedMap<Int, Int>, [Int: Int])] = []
            for step in 0..<20_000 {
                let key = random.int(0...3_000)
                switch random.int(0...9) {
                case 0...4:
                    let value = random.int(0...1_000_000)
                    checks.check(map.updateValue(value, forKey: key) == model.updateValue(value, forKey: key))
                case 5...7:
                    checks.check(map.removeValue(forKey: key) == model.removeValue(forKey: key))
                case 8:
                    let delta = random.int(1...5)
                    let changed: Void? = map.modifyValue(forKey: key) { $0 += delta }
                    if model[key] != nil {
                        model[key]! += delta
                        checks.check(changed != nil)
                    } else {
                        checks.check(changed == nil)
                    }
                default:
                    if snapshots.count < 8 { snapshots.append((map, model)) }
                }
                checks.check(map.count == model.count)
                if step % 500 == 0 {
                    checks.check(map.structuralProblems() == [])
                    let sortedModel = model.sorted { $0.key < $1.key }
                    checks.check(map.map(\.key) == sortedModel.map(\.key))
                    checks.check(map.map(\.value) == sortedModel.map(\.value))
                }
                guard step % 20 == 0 else { continue }
                let probe = random.int(-5...3_005)
                let keys = model.keys
                checks.check(map.floor(probe)?.key == keys.filter { $0 <= probe }.max())
                checks.check(map.lower(probe)?.key == keys.filter { $0 < probe }.max())
                checks.check(map.ceiling(probe)?.key == keys.filter { $0 >= probe }.min())
                checks.check(map.higher(probe)?.key == keys.filter { $0 > probe }.min())
                checks.check(map[probe] == model[probe])
            }
            // Copies taken along the way were not disturbed by later mutations.
            for (copy, copyModel) in snapshots {
                checks.check(copy.structuralProblems() == [])
                checks.check(copy.map(\.key) == copyModel.keys.sorted())
                checks.check(copy.map(\.value) == copyModel.sorted { $0.key < $1.key }.map(\.value))
            }
            return checks.failures
        }
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test("iterates from a key and survives mutation during iteration")
    func iterationFromKey() {
        var map = OrderedMap<Int, String>()
        for key in stride(from: 0, to: 10_000, by: 2) { map[key] = "v\(key)" }
        #expect(Array(map.elements(from: 101).prefix(3).map(\.key)) == [102, 104, 106])
        #expect(Array(map.elements(from: 9_998).map(\.key)) == [9_998])
        #expect(Array(map.elements(from: 9_999).map(\.key)) == [])
        var seen: [Int] = []
        for (key, _) in map where key < 200 {
            map[key + 1] = "inserted"  // the iterator keeps reading the old version
            seen.append(key)
        }
        #expect(seen == Array(stride(from: 0, to: 200, by: 2)))
        #expect(map.count == 5_000 + 100)
        #expect(map.first?.key == 0)
        #expect(map.last?.key == 9_998)
    }

    @Test("removing every key in random order leaves an empty, well-formed tree")
    func drainInRandomOrder() {
        var random = SeededGenerator(seed: 7)
        var map = OrderedMap<UInt64, UInt64>()
        var keys: [UInt64] = (0..<5_000).map { _ in random.next() }
        for key in keys { map[key] = key }
        keys.shuffle(using: &random)
        for (index, key) in keys.enumerated() {
            #expect(map.removeValue(forKey: key) == key)
            if index % 250 == 0 { #expect(map.structuralProblems() == []) }
        }
        #expect(map.isEmpty)
        #expect(map.first == nil)
        #expect(map.structuralProblems() == [])
    }

    @Test("ascending inserts keep nodes full; removals in any order keep the tree well formed")
    func ascendingInserts() {
        var random = SeededGenerator(seed: 9)
        var map = OrderedMap<Int, Int>()
        for key in 0..<20_000 { map[key] = key }
        #expect(map.structuralProblems() == [])
        // Full leaves: about 20_000 / 62 leaves, so the depth stays small.
        var model = Set(0..<20_000)
        for step in 0..<15_000 {
            let key = random.int(0...19_999)
            #expect((map.removeValue(forKey: key) != nil) == (model.remove(key) != nil))
            if step % 997 == 0 { #expect(map.structuralProblems() == []) }
            if step % 3 == 0 {
                let fresh = 20_000 + step
                map[fresh] = fresh
                model.insert(fresh)
            }
        }
        #expect(map.structuralProblems() == [])
        #expect(map.keys == model.sorted())
    }
}
