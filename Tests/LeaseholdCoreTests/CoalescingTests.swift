import LeaseholdCore
import LeaseholdTestSupport
import Testing

/// `ChangeSet.coalescing`: one change set with the net effect of consecutive ones (a
/// replicated log entry). Over seeded simulations, applying it to the image before a run
/// of steps gives the image after them, for runs of every length, and it never has more
/// rows than the run.
@Suite("Change set coalescing")
struct CoalescingTests {
    @Test("the net effect of any run of consecutive steps equals applying them in order", arguments: [UInt64(3), 41, 20261202])
    func netEffect(seed: UInt64) {
        print("coalescing seed \(seed) (replay: this argument)")
        var simulation = Simulation(seed: seed)
        simulation.keepsChanges = true
        var image = simulation.harness.persisted
        _ = simulation.takeChanges()
        var random = SeededGenerator(seed: seed)
        var rowsBefore = 0
        var rowsAfter = 0
        var dropsMerged = false
        for _ in 0..<150 {
            let length = random.int(1...40)
            for _ in 0..<length { simulation.step() }
            let sets = simulation.takeChanges()
            var sequential = image
            for set in sets { sequential.apply(set) }
            let coalesced = ChangeSet.coalescing(sets)
            var merged = image
            merged.apply(coalesced)
            #expect(merged.differences(from: sequential).isEmpty, "\(merged.differences(from: sequential).prefix(3))")
            #expect(merged == sequential)
            let counted = sets.reduce(0) { $0 + $1.rows.count }
            #expect(coalesced.rows.count <= counted)
            rowsBefore += counted
            rowsAfter += coalesced.rows.count
            let drops = coalesced.rows.filter { if case .eventsDropped = $0 { true } else { false } }.count
            #expect(drops <= 1, "one eventsDropped row per coalesced set")
            if sets.flatMap(\.rows).filter({ if case .eventsDropped = $0 { true } else { false } }).count > 1 { dropsMerged = true }
            image = sequential
        }
        #expect(simulation.problems.isEmpty, "\(simulation.problems.prefix(3))")
        #expect(dropsMerged, "the runs merged several drops of the history at least once")
        #expect(rowsAfter < rowsBefore, "coalescing removed rows: \(rowsBefore) → \(rowsAfter)")
        print("coalescing seed \(seed): \(rowsBefore) rows → \(rowsAfter)")
    }

    @Test("a single change set and an empty run pass through unchanged")
    func trivial() {
        let one = ChangeSet(rows: [.counters(Counters()), .counters(Counters())])
        #expect(ChangeSet.coalescing([one]) == one)
        #expect(ChangeSet.coalescing([]).isEmpty)
    }
}
