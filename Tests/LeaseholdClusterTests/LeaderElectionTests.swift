import LeaseholdCluster
import LeaseholdClusterTestSupport
import LeaseholdCore
import LeaseholdEtcd
import LeaseholdJournal
import LeaseholdTestSupport
import NIOPosix
import Synchronization
import Testing

/// The election, step by step of docs/cluster.md's safety argument: the lowest live key
/// leads and its create revision is the term; a candidate waits for every lower key to
/// go; a node whose keepalives stop is fenced by its own deadline while its key still
/// exists, then loses; the next term is higher and the old one is deposed in the log.
@Suite("Leader election", .serialized, .enabled(if: EtcdMembers.isInstalled || requireEtcd()))
struct LeaderElectionTests {
    final class Lost: Sendable {
        let reason = Mutex<String?>(nil)
        func set(_ text: String) { self.reason.withLock { $0 = text } }
        var value: String? { self.reason.withLock { $0 } }
    }

    static func election(_ keys: ClusterKeys, _ name: String, client: EtcdClient, keepalive: EtcdClient, ttl: Duration = .seconds(5), lost: Lost = Lost()) -> LeaderElection {
        LeaderElection(
            configuration: LeaderElection.Configuration(keys: keys, name: name, endpoint: "127.0.0.1:\(name.count)", ttl: ttl),
            client: client, keepaliveClient: keepalive, onLost: { lost.set($0) }
        )
    }

    @Test("the first candidate leads; the second waits until the first resigns and then leads in a higher term")
    func handover() async throws {
        let members = try await EtcdMembers.shared()
        let client = EtcdTestCluster.client(members)
        let keepalive = EtcdClient(EtcdConfiguration(endpoints: members.endpoints), eventLoopGroup: MultiThreadedEventLoopGroup(numberOfThreads: 1))
        let keys = ClusterKeys(cluster: EtcdTestCluster.freshName())
        let a = Self.election(keys, "a", client: client, keepalive: keepalive)
        let b = Self.election(keys, "b", client: client, keepalive: keepalive)
        try await a.start()
        try await b.start()
        let termA = try await a.campaign()
        #expect(a.term == termA && a.isWithinDeadline)
        let campaignB = Task { try await b.campaign() }
        try await Task.sleep(for: .milliseconds(500))
        #expect(b.term == nil, "b leads while a's key, lower than b's, is alive")
        #expect(try await LeaderElection.leader(of: keys, client: client)?.node.name == "a")

        let resigned = ContinuousClock.now
        try await a.resign()
        let termB = try await campaignB.value
        #expect(termB > termA)
        #expect(ContinuousClock.now - resigned < .seconds(3), "b wins at once after a resigns")
        #expect(b.isWithinDeadline && !a.isWithinDeadline)
        #expect(try await LeaderElection.leader(of: keys, client: client)?.term == termB)
        await a.close()
        await b.close()
        #expect(try await LeaderElection.leader(of: keys, client: client) == nil, "closing revokes the leases and their keys")
        try await keepalive.shutdown()
    }

    @Test("a leader whose keepalives stop is fenced by its deadline while its key still exists, then loses; the next leader's term is higher and the old term's writes are deposed")
    func keepalivesStop() async throws {
        let members = try await EtcdMembers.shared()
        let port = members.members[0].clientPort
        let proxy = try await FaultProxy.start(to: port)
        let client = EtcdTestCluster.client(members)
        let blocked = EtcdClient(
            EtcdConfiguration(endpoints: ["http://127.0.0.1:\(proxy.port)"], requestTimeout: .seconds(1)),
            eventLoopGroup: MultiThreadedEventLoopGroup(numberOfThreads: 1)
        )
        let keepalive = EtcdClient(EtcdConfiguration(endpoints: members.endpoints), eventLoopGroup: MultiThreadedEventLoopGroup(numberOfThreads: 1))
        let keys = ClusterKeys(cluster: EtcdTestCluster.freshName())
        let lostA = Lost()
        let a = Self.election(keys, "a", client: client, keepalive: blocked, ttl: .seconds(3), lost: lostA)
        let b = Self.election(keys, "b", client: client, keepalive: keepalive, ttl: .seconds(3))
        try await a.start()
        try await b.start()
        let granted = try #require(a.lease).ttl
        let termA = try await a.campaign()
        let sinkA = EtcdSink(client: client, keys: keys, leadership: EtcdSink.Leadership(key: try #require(a.key), term: termA))
        let first = JournalBatch(position: LogPosition(term: termA, index: 1), changeSets: [Simulation(seed: 3).harness.persisted.changeSet])
        #expect(await EtcdSinkTests.outcome(sinkA, first).isDurable)
        let campaignB = Task { try await b.campaign() }

        // Renewals of a are kept alive for a while through the proxy, then cut off.
        try await Task.sleep(for: .seconds(Int64(granted)))
        #expect(a.isWithinDeadline, "a renews its lease while its keepalives get through")
        proxy.refuse(true)
        proxy.cutAll()
        // The fence closes before etcd expires a's lease: the key is never seen gone while a
        // still counts itself within its deadline (read first, deadline checked after: a
        // poll that wakes late on a loaded machine cannot make this fail wrongly).
        let keyA = try #require(a.key)
        var goneWhileLeading = false
        try await eventually("a's deadline passes", timeout: .seconds(Int64(granted) + 5)) {
            let present = try await client.range(keyA).kvs.first?.createRevision == Int64(termA)
            if !present && a.isWithinDeadline { goneWhileLeading = true }
            return !a.isWithinDeadline
        }
        #expect(!goneWhileLeading, "a's key was gone while a still counted itself within its deadline")

        let termB = try await campaignB.value
        #expect(termB > termA)
        try await eventually("a learns it lost", timeout: .seconds(10)) { lostA.value != nil }
        #expect(a.term == nil)
        let second = JournalBatch(position: LogPosition(term: termA, index: 2), changeSets: [ChangeSet(rows: [.freeExtent(1 << 40, count: 1)])])
        guard case .deposed = await EtcdSinkTests.outcome(sinkA, second) else {
            Issue.record("a write of the old term after the new term began was not deposed")
            return
        }
        await b.close()
        await a.close()
        try await client.delete(keys.all.start, end: keys.all.end)
        try await blocked.shutdown()
        try await keepalive.shutdown()
        try await proxy.stop()
    }
}
