import Foundation
import LeaseholdClient
@testable import LeaseholdCluster
import LeaseholdClusterTestSupport
import LeaseholdCore
import LeaseholdEtcd
import LeaseholdJournal
import LeaseholdMessages
import LeaseholdNode
import LeaseholdStore
import LeaseholdTestSupport
import Testing

/// A cluster knows itself (docs/cluster.md): nodes serve the volume and settings `cluster
/// init` wrote into etcd, and refuse an uninitialized cluster, a data directory of another
/// volume, and an etcd whose log ends below what they applied; an imported single-node
/// state is what the first leader serves.
@Suite("Cluster identity", .serialized, .enabled(if: EtcdMembers.isInstalled || requireEtcd()))
struct ClusterIdentityTests {
    typealias Nodes = ClusterNodeTests

    static func refusal(_ start: () async throws -> Nodes.Node) async -> String? {
        do {
            let node = try await start()
            await node.stop()
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test("a cluster is initialized once; a node of an uninitialized cluster refuses to serve and says what to run")
    func initializedOnce() async throws {
        let members = try await EtcdMembers.shared()
        let tls = try Nodes.sharedTLS()
        defer { try? FileManager.default.removeItem(atPath: tls) }
        let cluster = EtcdTestCluster.freshName()
        let refused = await Self.refusal { try await Nodes.start(cluster: cluster, name: "a", endpoints: members.endpoints, tls: tls) }
        #expect(refused?.contains("not initialized") == true && refused?.contains("cluster init") == true, "\(refused ?? "served")")

        let volume = try await Nodes.initialize(cluster, members: members)
        await #expect(throws: ClusterVolumeError.self) { _ = try await Nodes.initialize(cluster, members: members) }
        let read = try await ClusterVolume.read(client: EtcdTestCluster.client(members), keys: ClusterKeys(cluster: cluster))
        #expect(read == volume, "the first init stands")
        try await EtcdTestCluster.client(members).delete(ClusterKeys(cluster: cluster).all.start, end: ClusterKeys(cluster: cluster).all.end)
    }

    @Test("a node serves the cluster's geometry and settings, not its own; its directory then refuses another volume and an etcd that lost entries")
    func identityChecked() async throws {
        let members = try await EtcdMembers.shared()
        let client = EtcdTestCluster.client(members)
        let tls = try Nodes.sharedTLS()
        defer { try? FileManager.default.removeItem(atPath: tls) }
        let cluster = EtcdTestCluster.freshName()
        let keys = ClusterKeys(cluster: cluster)
        let volume = try await Nodes.initialize(cluster, members: members, geometry: try VolumeGeometry(blockSize: 4_096, blockCount: 12_345))

        // Nodes.start asks for 2^16 blocks of its own; the cluster's 12,345 apply.
        let a = try await Nodes.start(cluster: cluster, name: "a", endpoints: members.endpoints, tls: tls)
        try await eventually("a leads", timeout: .seconds(30)) { a.role == .leader }
        let admin = try await a.client(tls: tls)
        let status = try await admin.status()
        #expect(status.volume.blockCount == 12_345 && status.volume.blockSize == 4_096)
        let host = try await a.client("host-a", tls: tls)
        let session = try await host.openSession(name: "h", ttl: .seconds(10))
        for _ in 0..<5 { _ = try await session.createInode() }
        try await session.close()
        // The cluster's event history (4), not the default: sessionOpened, five
        // inodeCreated and sessionClosed leave the last four.
        #expect(try await admin.events().map(\.revision.rawValue) == [4, 5, 6, 7])
        host.close()
        admin.close()
        await a.stop(keepingDirectory: true)
        let mark = try #require(try ClusterMark.read(in: a.directory))
        #expect(mark.cluster == cluster && mark.volume == volume.uuid)
        let head = try #require(try await LogFollower(client: client, keys: keys).head().position)
        #expect(mark.applied == head.index, "the directory records the last index the node made durable")

        // etcd restored from an older backup: the same volume, a log that ends earlier.
        try await client.delete(keys.all.start, end: keys.all.end)
        _ = try await Nodes.initialize(cluster, members: members, uuid: volume.uuid, geometry: volume.geometry)
        var refused = await Self.refusal { try await Nodes.start(cluster: cluster, name: "a", endpoints: members.endpoints, tls: tls, directory: a.directory) }
        #expect(refused?.contains("etcd's log ends at 0") == true, "\(refused ?? "served")")

        // etcd wiped and initialized again: another volume.
        try await client.delete(keys.all.start, end: keys.all.end)
        let other = try await Nodes.initialize(cluster, members: members)
        refused = await Self.refusal { try await Nodes.start(cluster: cluster, name: "a", endpoints: members.endpoints, tls: tls, directory: a.directory) }
        #expect(refused?.contains("belongs to volume \(volume.uuid.uuidString.lowercased())") == true, "\(refused ?? "served")")
        #expect(refused?.contains(other.uuid.uuidString.lowercased()) == true)
        try? FileManager.default.removeItem(atPath: a.directory)
        try await client.delete(keys.all.start, end: keys.all.end)
    }

    @Test("an imported single-node state is what the first leader serves: inodes, sessions with their secrets, a clean check, a higher epoch")
    func imported() async throws {
        let members = try await EtcdMembers.shared()
        let tls = try Nodes.sharedTLS()
        defer { try? FileManager.default.removeItem(atPath: tls) }
        // A single node's state: a session (its secret known to its client) with a file.
        var configuration = Harness.configuration()
        configuration.geometry = try VolumeGeometry(blockSize: 4_096, blockCount: 1 << 16)
        var harness = Harness(configuration: configuration)
        let secret = SessionSecret(high: 0x1EA5E, low: 0x5EC2E7)
        guard case .sessionOpened(let grant) = try harness.call(.openSession(name: "h", ttl: .seconds(30), slots: 4, secret: secret), as: Caller(identity: "host-a")) else {
            Issue.record("openSession failed")
            return
        }
        let session = grant.session
        let inode = harness.file(in: session, blocks: 8)
        let state = harness.persisted
        let epoch = try #require(state.volume?.epoch)

        let cluster = EtcdTestCluster.freshName()
        _ = try await Nodes.initialize(cluster, members: members, importing: LoadedState(state: state, position: LogPosition(term: 0, index: 41)))
        let a = try await Nodes.start(cluster: cluster, name: "a", endpoints: members.endpoints, tls: tls)
        try await eventually("a leads", timeout: .seconds(30)) { a.role == .leader }
        let admin = try await a.client(tls: tls)
        #expect(try await admin.inodes().contains { $0.inode == inode })
        #expect(try await admin.checkInvariants().isEmpty)
        #expect(try await admin.status().volume.epoch > epoch)
        let host = try await a.client("host-a", tls: tls)
        let resumed = try await host.resumeSession(session, secret: secret)
        #expect(try await resumed.keepAlive() > .zero)
        host.close()
        admin.close()
        await a.stop()
        let keys = ClusterKeys(cluster: cluster)
        try await EtcdTestCluster.client(members).delete(keys.all.start, end: keys.all.end)
    }

    /// A single node's state with `files` files of 8 blocks.
    static func singleNodeState(files: Int) throws -> PersistentState {
        var configuration = Harness.configuration()
        configuration.geometry = try VolumeGeometry(blockSize: 4_096, blockCount: 1 << 16)
        var harness = Harness(configuration: configuration)
        guard case .sessionOpened(let grant) = try harness.call(.openSession(name: "h", ttl: .seconds(30), slots: 4, secret: SessionSecret(high: 1, low: UInt64(files))), as: Caller(identity: "host-a")) else {
            throw ClusterVolumeError("openSession failed")
        }
        for _ in 0..<files { _ = harness.file(in: grant.session, blocks: 8) }
        return harness.persisted
    }

    @Test("two writers of a checkpoint at one index keep apart: each checkpoint reads back whole; of two racing imports one wins and only its parts stay")
    func racingImports() async throws {
        let members = try await EtcdMembers.shared()
        let client = EtcdTestCluster.client(members)
        let position = LogPosition(term: 0, index: 7)
        let first = LoadedState(state: try Self.singleNodeState(files: 30), position: position)
        let second = LoadedState(state: try Self.singleNodeState(files: 3), position: position)

        // The interleaving that broke the first layout: the second writer's parts land
        // after the first's, at the same index, before the first's final transaction.
        let keys = ClusterKeys(cluster: EtcdTestCluster.freshName())
        let absent = EtcdCompare.createRevision(keys.volume, equals: 0)
        let a = try await LogCompactor.writeParts(of: first, client: client, keys: keys, guard: absent, partBytes: 1_024) { ClusterVolumeError("refused") }
        let b = try await LogCompactor.writeParts(of: second, client: client, keys: keys, guard: absent, partBytes: 1_024) { ClusterVolumeError("refused") }
        #expect(a.parts.count > 1 && a.writer != b.writer)
        var head = Leasehold_Cluster_V1_LogHead()
        head.index = position.index
        _ = try await client.txn([], success: [.put(keys.checkpoint, try a.serializedBytes()), .put(keys.head, try head.serializedBytes())], failure: [])
        let loaded = try #require(try await EtcdSink(client: client, keys: keys, leadership: nil).load())
        #expect(loaded.state.differences(from: first.state).isEmpty, "the first writer's checkpoint reads back whole")
        try await client.delete(keys.all.start, end: keys.all.end)

        // Two imports at once: one wins; the loser's parts are removed; the winner's load.
        let cluster = EtcdTestCluster.freshName()
        let raced = ClusterKeys(cluster: cluster)
        async let one: Bool = { (try? await Nodes.initialize(cluster, members: members, importing: first)) != nil }()
        async let two: Bool = { (try? await Nodes.initialize(cluster, members: members, importing: second)) != nil }()
        let (oneWon, twoWon) = await (one, two)
        #expect(oneWon != twoWon, "exactly one import wins: \(oneWon), \(twoWon)")
        let winner = try #require(try await EtcdSink(client: client, keys: raced, leadership: nil).load())
        #expect(winner.state.differences(from: (oneWon ? first : second).state).isEmpty)
        let checkpoint = try Leasehold_Cluster_V1_Checkpoint(serializedBytes: try #require(try await client.range(raced.checkpoint).kvs.first).value)
        let parts = try await client.range(raced.checkpointPartsAll.start, end: raced.checkpointPartsAll.end, keysOnly: true)
        #expect(parts.kvs.count == Int(checkpoint.parts.count), "only the winner's parts stay")
        #expect(parts.kvs.allSatisfy { $0.key.hasPrefix(raced.checkpointParts(position.index, writer: checkpoint.writer)) })
        try await client.delete(raced.all.start, end: raced.all.end)
    }

    @Test("a standby writes what it applies into its local SQLite copy; a running node stops serving when etcd is initialized again under it")
    func localCopyAndWipe() async throws {
        let members = try await EtcdMembers.shared()
        let client = EtcdTestCluster.client(members)
        let tls = try Nodes.sharedTLS()
        defer { try? FileManager.default.removeItem(atPath: tls) }
        let cluster = EtcdTestCluster.freshName()
        let keys = ClusterKeys(cluster: cluster)
        _ = try await Nodes.initialize(cluster, members: members)
        let a = try await Nodes.start(cluster: cluster, name: "a", endpoints: members.endpoints, tls: tls)
        let b = try await Nodes.start(cluster: cluster, name: "b", endpoints: members.endpoints, tls: tls)
        let (leader, standby) = try await Nodes.roles(a, b)
        let host = try await leader.client("host-a", tls: tls)
        let session = try await host.openSession(name: "h", ttl: .seconds(10))
        let inode = try await session.createInode()
        let head = try #require(try await LogFollower(client: client, keys: keys).head().position)

        // The standby's copy reaches the head and holds the inode.
        let replica = (standby.directory as NSString).appendingPathComponent("replica.db")
        // A fresh Store per look: a Store remembers the position it read first.
        try await eventually("the standby's copy reaches the head", timeout: .seconds(20)) {
            let look = try Store(path: replica)
            defer { try? look.close() }
            return try look.position().index >= head.index
        }
        let copy = try Store(path: replica)
        #expect(try copy.loadState().inodes[inode] != nil)
        try copy.close()
        host.close()

        // etcd wiped and initialized again while both run: the leader stops serving, and
        // the standby never leads the new volume (it stops too, or stays a standby).
        try await client.delete(keys.all.start, end: keys.all.end)
        _ = try await Nodes.initialize(cluster, members: members)
        try await eventually("the leader stops serving", timeout: .seconds(60)) { leader.finished }
        let watched = ContinuousClock.now
        while !standby.finished && ContinuousClock.now < watched + .seconds(5) {
            #expect(standby.role != .leader, "the standby leads a volume it was not started for")
            try await Task.sleep(for: .milliseconds(100))
        }
        await leader.stop()
        await standby.stop()
        try await client.delete(keys.all.start, end: keys.all.end)
    }
}
