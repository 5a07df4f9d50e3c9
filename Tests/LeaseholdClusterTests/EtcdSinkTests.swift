import LeaseholdCluster
import LeaseholdClusterTestSupport
import LeaseholdCore
import LeaseholdEtcd
import LeaseholdJournal
import LeaseholdMessages
import LeaseholdTestSupport
import Synchronization
import Testing

/// What only the etcd sink does, each step of docs/cluster.md "Writing the log" with the
/// fault that tests it: a deposed writer gets nothing durable, large entries travel as
/// parts, queued batches share transactions, a lost answer settles by reading, an
/// unreachable etcd writes nothing. The conformance suite (LeaseholdJournalTests) checks
/// the rest of the contract.
@Suite("etcd journal sink", .serialized, .enabled(if: EtcdMembers.isInstalled || requireEtcd()))
struct EtcdSinkTests {
    static func outcome(_ sink: EtcdSink, _ batch: JournalBatch) async -> BatchOutcome {
        await withCheckedContinuation { continuation in sink.apply(batch) { continuation.resume(returning: $0) } }
    }

    /// `count` batches after `position`, each freeing one block far beyond the volume.
    static func batches(after position: LogPosition, term: UInt64, count: Int, base: UInt64 = 1 << 40) -> [JournalBatch] {
        (0..<count).map { i in
            JournalBatch(
                position: LogPosition(term: term, index: position.index + 1 + UInt64(i)),
                changeSets: [ChangeSet(rows: [.freeExtent(base + UInt64(i) * 8, count: 1)])]
            )
        }
    }

    final class Completions: Sendable {
        let outcomes = Mutex<[(UInt64, BatchOutcome)]>([])
    }

    /// Hands every batch to the sink at once (queued behind each other) and returns the
    /// outcomes in the order the completions came.
    static func applyAll(_ sink: EtcdSink, _ batches: [JournalBatch]) async -> [(UInt64, BatchOutcome)] {
        let completions = Completions()
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            for batch in batches {
                sink.apply(batch) { outcome in
                    let count = completions.outcomes.withLock { outcomes in
                        outcomes.append((batch.position.index, outcome))
                        return outcomes.count
                    }
                    if count == batches.count { done.resume() }
                }
            }
        }
        return completions.outcomes.withLock { $0 }
    }

    /// A sink that leads a fresh cluster through a TCP relay to the shared member (which a
    /// test then cuts or silences), with its first batch durable.
    static func leadThroughProxy(_ members: EtcdMembers) async throws -> (FaultProxy, EtcdSink) {
        let proxy = try await FaultProxy.start(to: members.members[0].clientPort)
        let client = EtcdClient(EtcdConfiguration(endpoints: ["http://127.0.0.1:\(proxy.port)"], requestTimeout: .seconds(2)))
        let keys = ClusterKeys(cluster: EtcdTestCluster.freshName())
        let (_, leadership) = try await EtcdTestCluster.lead(keys, client: client)
        let sink = EtcdSink(client: client, keys: keys, leadership: leadership)
        #expect(await Self.outcome(sink, Self.initial(term: leadership.term)).isDurable)
        return (proxy, sink)
    }

    static func initial(term: UInt64) -> JournalBatch {
        JournalBatch(position: LogPosition(term: term, index: 1), changeSets: [Simulation(seed: 5).harness.persisted.changeSet])
    }

    @Test("a writer whose leader key is gone is deposed, writes nothing more, and a newer term's log is what loads")
    func deposed() async throws {
        let members = try await EtcdMembers.shared()
        let client = EtcdTestCluster.client(members)
        let keys = ClusterKeys(cluster: EtcdTestCluster.freshName())
        let (oldLease, oldLeadership) = try await EtcdTestCluster.lead(keys, client: client)
        let old = EtcdSink(client: client, keys: keys, leadership: oldLeadership)
        #expect(try await old.load() == nil)
        #expect(await Self.outcome(old, Self.initial(term: oldLeadership.term)).isDurable)

        // The lease ends (as when it expires): the key is gone, and with it the term.
        try await client.revoke(lease: oldLease.id)
        let (_, newLeadership) = try await EtcdTestCluster.lead(keys, client: client)
        #expect(newLeadership.term > oldLeadership.term)
        let new = EtcdSink(client: client, keys: keys, leadership: newLeadership)
        let loaded = try #require(try await new.load())
        #expect(loaded.position == LogPosition(term: oldLeadership.term, index: 1))

        // Several batches queued by the old writer: every one is deposed, none written.
        let stale = Self.batches(after: loaded.position, term: oldLeadership.term, count: 4)
        let outcomes = await Self.applyAll(old, stale)
        #expect(outcomes.count == stale.count)
        for (index, outcome) in outcomes {
            guard case .deposed(let reason) = outcome else {
                Issue.record("batch \(index) of the old term came back \(outcome)")
                continue
            }
            #expect(reason.contains(oldLeadership.key))
        }
        // The new term writes after the old term's last durable batch.
        let next = Self.batches(after: loaded.position, term: newLeadership.term, count: 2, base: 1 << 41)
        for batch in next { #expect(await Self.outcome(new, batch).isDurable) }
        let after = try #require(try await EtcdSink(client: client, keys: keys, leadership: nil).load())
        #expect(after.position == LogPosition(term: newLeadership.term, index: 3))
        #expect(after.state.freeExtents.keys.contains(1 << 41) && !after.state.freeExtents.keys.contains(1 << 40))
        // And a batch of the new term that is not right after the head is out of order.
        let gap = Self.batches(after: LogPosition(term: newLeadership.term, index: 5), term: newLeadership.term, count: 1)[0]
        guard case .outOfOrder(let expected) = await Self.outcome(new, gap) else {
            Issue.record("a batch two past the head was not out of order")
            return
        }
        #expect(expected == LogPosition(term: newLeadership.term, index: 4))
        try await client.delete(keys.all.start, end: keys.all.end)
    }

    @Test("an entry larger than one request is written as parts, loads back whole, and a damaged part stops the load naming it")
    func parts() async throws {
        var limits = EtcdSink.Limits()
        limits.partBytes = 2_048
        limits.bytes = 8_192
        let sink = try await EtcdTestCluster.leaderSink(limits: limits)
        let term = sink.leadership!.term
        var simulation = Simulation(seed: 91)
        simulation.keepsChanges = true
        let initial = JournalBatch(position: LogPosition(term: term, index: 1), changeSets: [simulation.harness.persisted.changeSet])
        #expect(await Self.outcome(sink, initial).isDurable)
        simulation.run(steps: 1_200)
        let big = JournalBatch(position: LogPosition(term: term, index: 2), changeSets: simulation.takeChanges())
        // The sink writes the batch's net effect (one coalesced change set).
        let size = (try JournalBatch(position: big.position, changeSets: [ChangeSet.coalescing(big.changeSets)]).message.serializedBytes() as [UInt8]).count
        #expect(size > 4 * limits.partBytes, "the batch under test is \(size) bytes")
        #expect(await Self.outcome(sink, big).isDurable)
        let parts = try await sink.client.range(sink.keys.parts(2, term: term), end: etcdPrefixEnd(sink.keys.parts(2, term: term)), keysOnly: true)
        #expect(parts.kvs.count == (size + limits.partBytes - 1) / limits.partBytes)

        let loaded = try #require(try await sink.load())
        #expect(loaded.position == big.position)
        let differences = loaded.state.differences(from: simulation.harness.coordinator.persistentState())
        #expect(differences.isEmpty, "\(differences.prefix(3))")

        try await sink.client.put(sink.keys.part(2, term: term, 1), Array(repeating: 0, count: 16))
        do {
            _ = try await sink.load()
            Issue.record("a log with a damaged part loaded")
        } catch let error as EtcdSinkError {
            #expect(error.description.contains("log entry 2"), "\(error)")
        }
        try await sink.client.delete(sink.keys.all.start, end: sink.keys.all.end)
    }

    @Test("batches queued behind one in flight share transactions and complete in order")
    func merging() async throws {
        let sink = try await EtcdTestCluster.leaderSink(maxBatchesInFlight: 64)
        let term = sink.leadership!.term
        #expect(await Self.outcome(sink, Self.initial(term: term)).isDurable)
        let before = try await sink.client.status().revision
        let batches = Self.batches(after: LogPosition(term: term, index: 1), term: term, count: 60)
        let outcomes = await Self.applyAll(sink, batches)
        for (index, outcome) in outcomes { #expect(outcome.isDurable, "batch \(index): \(outcome)") }
        #expect(outcomes.map(\.0) == batches.map(\.position.index), "completions in batch order")
        // Every transaction moves the store revision by one.
        let transactions = try await sink.client.status().revision - before
        #expect(transactions < Int64(batches.count), "\(batches.count) batches took \(transactions) transactions")
        let loaded = try #require(try await sink.load())
        #expect(loaded.position == batches.last!.position)
        #expect(loaded.state.freeExtents.keys.contains((1 << 40) + 59 * 8))
        try await sink.client.delete(sink.keys.all.start, end: sink.keys.all.end)
    }

    @Test("a write whose answer is lost is unknown; sent again it settles as durable by reading, written once")
    func lostAnswer() async throws {
        let members = try await EtcdMembers.shared()
        let (proxy, sink) = try await Self.leadThroughProxy(members)
        let (client, keys, leadership) = (sink.client, sink.keys, sink.leadership!)
        let batches = Self.batches(after: LogPosition(term: leadership.term, index: 1), term: leadership.term, count: 2)

        proxy.swallowReplies(true)
        let lost = await Self.outcome(sink, batches[0])
        guard case .unknown = lost else {
            Issue.record("a write with its answer swallowed came back \(lost)")
            return
        }
        proxy.swallowReplies(false)
        proxy.cutAll()
        // It was written: etcd's head is at batch 2 although the sink never heard so.
        let direct = EtcdTestCluster.client(members)
        let head = try Leasehold_Cluster_V1_LogHead(serializedBytes: try #require(try await direct.range(keys.head).kvs.first).value)
        #expect(head.index == 2)
        // This cluster's keys, not the shared member's revision: other tests write there.
        let written = try await direct.range(keys.prefix, end: etcdPrefixEnd(keys.prefix)).kvs.map { "\($0.key)@\($0.modRevision)" }
        #expect(await Self.outcome(sink, batches[0]).isDurable, "the resend settles by reading")
        let after = try await direct.range(keys.prefix, end: etcdPrefixEnd(keys.prefix)).kvs.map { "\($0.key)@\($0.modRevision)" }
        #expect(after == written, "the resend wrote nothing")
        #expect(await Self.outcome(sink, batches[1]).isDurable)
        let loaded = try #require(try await sink.load())
        #expect(loaded.position == batches[1].position)
        try await direct.delete(keys.all.start, end: keys.all.end)
        try await client.shutdown()
        try await proxy.stop()
    }

    @Test("while etcd cannot be reached a batch is unavailable and nothing is written; it goes through once etcd is back")
    func unreachable() async throws {
        let members = try await EtcdMembers.shared()
        let (proxy, sink) = try await Self.leadThroughProxy(members)
        let (client, keys, leadership) = (sink.client, sink.keys, sink.leadership!)
        let batch = Self.batches(after: LogPosition(term: leadership.term, index: 1), term: leadership.term, count: 1)[0]
        proxy.refuse(true)
        proxy.cutAll()
        let outcome = await Self.outcome(sink, batch)
        #expect(outcome.isRetryable && !outcome.isDurable, "\(outcome)")
        let direct = EtcdTestCluster.client(members)
        if case .unavailable = outcome {
            #expect(try await direct.range(keys.log(2)).kvs.isEmpty, "unavailable: nothing was written")
        }
        // (An `unknown` outcome, a connection the relay cut after the request left, may
        // have written: the resend below settles it either way.)
        proxy.refuse(false)
        #expect(await Self.outcome(sink, batch).isDurable)
        #expect(try await sink.load()?.position == batch.position)
        #expect(try await direct.range(keys.log(0), end: keys.logEnd, keysOnly: true).kvs.count == 2, "each batch written once")
        try await direct.delete(keys.all.start, end: keys.all.end)
        try await client.shutdown()
        try await proxy.stop()
    }
}
