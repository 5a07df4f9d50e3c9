import LeaseholdCore
import LeaseholdTestSupport
import Testing

/// `ChangeSet.coalescing`: one change set with the net effect of consecutive ones (a
/// replicated log entry). Over seeded simulations, applying it to the image before a run
/// of steps gives the image after them, for runs of every length, and it never has more
/// rows than the run.
@Suite("Change set coalescing")
struct CoalescingTests {
    struct Outcome: Sendable {
        var mismatches: [String] = []
        var rowsBefore = 0
        var rowsAfter = 0
        var dropsMerged = false
        var moreThanOneDrop = false
        var problems: [String] = []
    }

    /// Runs of 1 to 40 steps of a seeded simulation, each compared both ways (on a thread
    /// of its own at low priority: CPU-bound, it must not starve timing tests beside it).
    static func compare(seed: UInt64, runs: Int) async throws -> Outcome {
        try await onOwnThread {
            var outcome = Outcome()
            var simulation = Simulation(seed: seed)
            simulation.keepsChanges = true
            var image = simulation.harness.persisted
            _ = simulation.takeChanges()
            var random = SeededGenerator(seed: seed)
            for run in 0..<runs {
                let length = random.int(1...40)
                for _ in 0..<length { simulation.step() }
                let sets = simulation.takeChanges()
                var sequential = image
                for set in sets { sequential.apply(set) }
                let coalesced = ChangeSet.coalescing(sets)
                var merged = image
                merged.apply(coalesced)
                if merged != sequential { outcome.mismatches.append("run \(run) (\(length) steps): \(merged.differences(from: sequential).prefix(3))") }
                let counted = sets.reduce(0) { $0 + $1.rows.count }
                if coalesced.rows.count > counted { outcome.mismatches.append("run \(run): \(coalesced.rows.count) rows from \(counted)") }
                outcome.rowsBefore += counted
                outcome.rowsAfter += coalesced.rows.count
                func drops(_ rows: [ChangeSet.Row]) -> Int { rows.filter { if case .eventsDropped = $0 { true } else { false } }.count }
                if drops(coalesced.rows) > 1 { outcome.moreThanOneDrop = true }
                if drops(sets.flatMap(\.rows)) > 1 { outcome.dropsMerged = true }
                image = sequential
            }
            outcome.problems = simulation.problems
            return outcome
        }
    }

    @Test("the net effect of any run of consecutive steps equals applying them in order", arguments: [UInt64(3), 20261202])
    func netEffect(seed: UInt64) async throws {
        print("coalescing seed \(seed) (replay: this argument)")
        let outcome = try await Self.compare(seed: seed, runs: 60)
        #expect(outcome.mismatches.isEmpty, "\(outcome.mismatches.prefix(3))")
        #expect(outcome.problems.isEmpty, "\(outcome.problems.prefix(3))")
        #expect(!outcome.moreThanOneDrop, "one eventsDropped row per coalesced set")
        #expect(outcome.dropsMerged, "the runs merged several drops of the history at least once")
        #expect(outcome.rowsAfter < outcome.rowsBefore, "coalescing removed rows: \(outcome.rowsBefore) → \(outcome.rowsAfter)")
        print("coalescing seed \(seed): \(outcome.rowsBefore) rows → \(outcome.rowsAfter)")
    }

    @Test("a single change set and an empty run pass through unchanged")
    func trivial() {
        let one = ChangeSet(rows: [.counters(Counters()), .counters(Counters())])
        #expect(ChangeSet.coalescing([one]) == one)
        #expect(ChangeSet.coalescing([]).isEmpty)
    }
}
