import LeaseholdTestSupport
import Testing

@testable import LeaseholdCore

/// The seeded randomized simulation: every step is followed by the invariant checker and
/// a comparison of the persisted image. A failure prints its seed; replay it with
/// `LEASEHOLD_SEED=<seed> swift test --filter SimulationTests`.
@Suite("Randomized simulation")
struct SimulationTests {
    @Test("random sessions and operations keep every invariant", arguments: TestSeed.seeds(default: [101, 202, 303, 404]))
    func simulation(seed: UInt64) async throws {
        let steps = TestSeed.steps(default: 25_000)
        print(TestSeed.replayHint(seed: seed, test: "SimulationTests"))
        let simulation = try await onOwnThread {
            var simulation = Simulation(seed: seed)
            simulation.run(steps: steps)
            return simulation
        }
        print("seed \(seed) outcomes: \(simulation.outcomes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
        #expect(
            simulation.problems.isEmpty,
            "seed \(seed): \(simulation.problems.prefix(5).joined(separator: "\n"))\nlast steps:\n\(simulation.trail.joined(separator: "\n"))"
        )
        #expect(simulation.harness.steps >= steps)
    }
}
