import LeaseholdClusterTestSupport
import LeaseholdCluster
import LeaseholdCore
import LeaseholdJournal
import LeaseholdTestSupport
import Testing

/// A seeded simulation writing through a journal into an etcd sink that leads a fresh
/// cluster: the leader side of the follower and compaction tests.
struct SimulatedLeader {
    let sink: EtcdSink
    let journal: Journal
    var simulation: Simulation

    /// The sink leads; the simulation's initial image is the first durable batch.
    static func start(seed: UInt64, compacting: Bool = false) async throws -> SimulatedLeader {
        let sink = try await EtcdTestCluster.leaderSink(compacting: compacting)
        var simulation = Simulation(seed: seed)
        simulation.keepsChanges = true
        var options = Journal.Options()
        options.term = sink.leadership!.term
        options.onFailure = { Issue.record("journal stopped: \($0)") }
        let journal = Journal(sink: sink, after: .zero, options: options)
        await journal.commit(simulation.harness.persisted.changeSet)
        return SimulatedLeader(sink: sink, journal: journal, simulation: simulation)
    }

    /// Runs `steps` steps on a thread of its own (CPU-bound) and returns once all their
    /// change sets are durable: group-committed, or each in a batch of its own
    /// (`batchEach`, one log entry per change set).
    mutating func run(_ steps: Int, batchEach: Bool = false) async throws {
        let start = self.simulation
        let (after, changes) = try await onOwnThread { () -> (Simulation, [ChangeSet]) in
            var simulation = start
            var changes: [ChangeSet] = []
            for _ in 0..<steps {
                simulation.step()
                changes += simulation.takeChanges()
            }
            return (simulation, changes)
        }
        self.simulation = after
        if batchEach {
            for changes in changes { await self.journal.commit(changes) }
            return
        }
        var last: UInt64?
        for changes in changes { last = self.journal.enqueue(changes) }
        if let last { await self.journal.waitUntilDurable(last) }
    }

    /// The image the Coordinator persisted so far.
    var expected: PersistentState { self.simulation.harness.coordinator.persistentState() }
}
