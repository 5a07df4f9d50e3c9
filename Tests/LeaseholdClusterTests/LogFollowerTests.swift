import LeaseholdCluster
import LeaseholdClusterTestSupport
import LeaseholdCore
import LeaseholdEtcd
import LeaseholdJournal
import LeaseholdTestSupport
import Synchronization
import Testing

/// A standby's copy of the log: applying a simulation's batches one by one as they commit,
/// from a catch-up read and then a watch, gives the leader's persisted image, field by
/// field (STYLE.md §7).
@Suite("Log follower", .serialized, .enabled(if: EtcdMembers.isInstalled || requireEtcd()))
struct LogFollowerTests {
    final class Image: Sendable {
        let value = Mutex((state: PersistentState(), position: LogPosition.zero))
        func apply(_ batch: JournalBatch) {
            self.value.withLock { value in
                for changes in batch.changeSets { value.state.apply(changes) }
                value.position = batch.position
            }
        }
    }

    @Test("a log written after the revision the head was read at is not damage; a log without a head at one revision is")
    func headAtOneRevision() async throws {
        let members = try await EtcdMembers.shared()
        let client = EtcdTestCluster.client(members)
        let keys = ClusterKeys(cluster: EtcdTestCluster.freshName())
        let follower = LogFollower(client: client, keys: keys)
        let before = try await follower.head()
        #expect(before.position == nil)
        // A first leader writes its first entry and the head, after that read.
        _ = try await client.txn([], success: [.put(keys.log(1), [1]), .put(keys.head, [])], failure: [])
        let atBefore = try await follower.head(at: before.revision)
        #expect(atBefore.position == nil, "no log yet at that revision; the entry came later")
        // The entry alone, at the revision read: damage.
        try await client.delete(keys.head)
        await #expect(throws: EtcdSinkError.self) { _ = try await follower.head() }
        try await client.delete(keys.all.start, end: keys.all.end)
    }

    @Test("catching up and then following the log gives the leader's image at every head", arguments: TestSeed.seeds(default: [31]))
    func follows(seed: UInt64) async throws {
        print(TestSeed.replayHint(seed: seed, test: "LogFollowerTests"))
        var leader = try await SimulatedLeader.start(seed: seed)
        let (sink, journal) = (leader.sink, leader.journal)
        // Half the run before the follower starts: it catches up on that, then follows.
        try await leader.run(300)

        let follower = LogFollower(client: sink.client, keys: sink.keys)
        let image = Image()
        let caughtUp = try await follower.catchUp(from: nil)
        let caughtState = try #require(caughtUp.state)
        image.value.withLock { $0 = (caughtState.state, caughtState.position) }
        #expect(caughtState.position == journal.position)
        #expect(image.value.withLock { $0.state }.differences(from: leader.expected).isEmpty)
        let following = Task { try await follower.follow(after: caughtState.position, from: caughtUp.revision) { image.apply($0) } }

        for round in 0..<3 {
            try await leader.run(200)
            let head = journal.position
            try await eventually("the follower applies up to \(head)", timeout: .seconds(20)) { image.value.withLock { $0.position } == head }
            let differences = image.value.withLock { $0.state }.differences(from: leader.expected)
            #expect(differences.isEmpty, "seed \(seed) round \(round): \(differences.prefix(3))")
        }
        #expect(leader.simulation.problems.isEmpty, "\(leader.simulation.problems.prefix(3))")
        following.cancel()
        journal.close()
        try await sink.client.delete(sink.keys.all.start, end: sink.keys.all.end)
    }
}
