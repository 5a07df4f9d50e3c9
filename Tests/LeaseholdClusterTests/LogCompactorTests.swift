import Foundation
import LeaseholdCluster
import LeaseholdClusterTestSupport
import LeaseholdCore
import LeaseholdEtcd
import LeaseholdJournal
import LeaseholdMessages
import LeaseholdTestSupport
import Testing

/// Compaction (docs/cluster.md): a checkpoint replaces the entries before it, in one
/// guarded transaction, and etcd's history is compacted; the state loads the same from the
/// checkpoint and the entries after it, a standby behind the checkpoint catches up from it,
/// and a deposed leader compacts nothing.
@Suite("Log compaction", .serialized, .enabled(if: EtcdMembers.isInstalled || requireEtcd()))
struct LogCompactorTests {
    @Test("the tail the policy bounds is measured in etcd: entries, bytes of the entries since the checkpoint, the age of the oldest; a fresh compactor sees the same")
    func tailMeasures() async throws {
        var leader = try await SimulatedLeader.start(seed: 23, compacting: true)
        let sink = leader.sink
        try await leader.run(30, batchEach: true)
        func tail(_ compactor: LogCompactor, now: Int64 = Int64(Date().timeIntervalSince1970 * 1_000)) async throws -> CompactionPolicy.Tail {
            var seen: CompactionPolicy.Tail?
            _ = try await compactor.compact(now: now) { tail in
                seen = tail
                return false
            }
            return try #require(seen)
        }
        func logBytes() async throws -> UInt64 {
            let log = try await sink.client.range(sink.keys.log(0), end: sink.keys.logEnd)
            return log.kvs.reduce(0) { $0 + UInt64($1.value.count) }
        }
        func logEntries() async throws -> UInt64 { UInt64(try await sink.client.range(sink.keys.log(0), end: sink.keys.logEnd, keysOnly: true).kvs.count) }
        let compactor = LogCompactor(client: sink.client, keys: sink.keys, leadership: sink.leadership!)
        var measured = try await tail(compactor)
        #expect(measured.entries == (try await logEntries()) && measured.entries > 1, "every entry (steps that changed nothing wrote none)")
        #expect(measured.bytes == (try await logBytes()), "the head's log bytes are what the entries hold")
        let age = try #require(measured.age)
        #expect(age < .seconds(120))
        let later = try await tail(compactor, now: Int64(Date().timeIntervalSince1970 * 1_000) + 3_600_000)
        #expect(try #require(later.age) >= .seconds(3_600))
        var policy = CompactionPolicy()
        policy.age = .seconds(600)
        #expect(policy.due(later) == .age(try #require(later.age)))

        // After a checkpoint the bytes count from it; another compactor reads the same.
        #expect(try await compactor.compact(minimumEntries: 1) != nil)
        try await leader.run(5, batchEach: true)
        measured = try await tail(LogCompactor(client: sink.client, keys: sink.keys, leadership: sink.leadership!))
        #expect(measured.entries == (try await logEntries()) && measured.entries > 0)
        #expect(measured.bytes == (try await logBytes()) && measured.bytes > 0)
        leader.journal.close()
        #expect(leader.simulation.problems.isEmpty)
        try await sink.client.delete(sink.keys.all.start, end: sink.keys.all.end)
    }

    @Test("a checkpoint replaces the entries before it; loading, and catching up from behind it, give the same state; etcd's history below it is gone")
    func compacts() async throws {
        var leader = try await SimulatedLeader.start(seed: 17, compacting: true)
        let (sink, journal) = (leader.sink, leader.journal)
        try await leader.run(60, batchEach: true)
        let follower = LogFollower(client: sink.client, keys: sink.keys)
        let behind = try #require(try await follower.catchUp(from: nil).state)
        let oldRevision = try await sink.client.status().revision

        try await leader.run(60, batchEach: true)
        let compactor = LogCompactor(client: sink.client, keys: sink.keys, leadership: sink.leadership!)
        #expect(try await compactor.compact(minimumEntries: 1_000_000) == nil, "too few entries: nothing done")
        let checkpoint = try #require(try await compactor.compact(minimumEntries: 10))
        #expect(checkpoint == journal.position)
        let left = try await sink.client.range(sink.keys.log(0), end: sink.keys.logEnd, keysOnly: true)
        #expect(left.kvs.isEmpty, "entries up to the checkpoint are deleted: \(left.kvs.count) left")
        do {
            _ = try await sink.client.range(sink.keys.head, revision: oldRevision)
            Issue.record("a read below the compacted revision succeeded")
        } catch let error as EtcdError {
            #expect(error.isCompacted, "\(error)")
        }

        // More entries after the checkpoint; every way of reading gives the live state.
        try await leader.run(60, batchEach: true)
        let expected = leader.expected
        let loaded = try #require(try await EtcdSink(client: sink.client, keys: sink.keys, leadership: nil).load())
        #expect(loaded.position == journal.position)
        #expect(loaded.state.differences(from: expected).isEmpty, "\(loaded.state.differences(from: expected).prefix(3))")
        let caught = try #require(try await follower.catchUp(from: behind).state)
        #expect(caught.state.differences(from: expected).isEmpty, "a standby behind the checkpoint catches up from it")

        // A second checkpoint replaces the first one's parts too.
        #expect(try await compactor.compact(minimumEntries: 10) == journal.position)
        let pieces = try await sink.client.range(sink.keys.checkpointPartsAll.start, end: sink.keys.checkpointPartsAll.end, keysOnly: true)
        let written = try Leasehold_Cluster_V1_Checkpoint(serializedBytes: try #require(try await sink.client.range(sink.keys.checkpoint).kvs.first).value)
        #expect(written.writer.count == 16, "the parts are under a writer token: '\(written.writer)'")
        #expect(!pieces.kvs.isEmpty && pieces.kvs.allSatisfy { $0.key.hasPrefix(sink.keys.checkpointParts(journal.position.index, writer: written.writer)) })

        // Deposed: the lease ends; compaction refuses.
        try await leader.run(20, batchEach: true)
        journal.close()
        let leaderKey = try #require(try await sink.client.range(sink.leadership!.key).kvs.first)
        try await sink.client.revoke(lease: leaderKey.lease)
        await #expect(throws: LeaderElectionError.self) { try await compactor.compact(minimumEntries: 1) }
        #expect(leader.simulation.problems.isEmpty)
        try await sink.client.delete(sink.keys.all.start, end: sink.keys.all.end)
    }
}
