import Foundation
import LeaseholdCertificates
import LeaseholdClient
import LeaseholdCluster
import LeaseholdClusterTestSupport
import LeaseholdCore
import LeaseholdEtcd
import LeaseholdJournal
import LeaseholdMessages
import LeaseholdNode
import LeaseholdServer
import LeaseholdTestSupport
import Logging
import Synchronization
import Testing

/// Cluster nodes in this process against a real etcd: one leads, the other is a standby
/// that answers `notLeader` naming it; the standby takes over on a graceful handover and
/// when the leader is cut off from etcd, and the volume it serves is the one the leader
/// acknowledged (sessions resume with their secrets; no client reclaims anything).
@Suite("Cluster nodes", .serialized, .enabled(if: EtcdMembers.isInstalled || requireEtcd()))
struct ClusterNodeTests {
    final class Node: Sendable {
        let name: String
        let directory: String
        let node: ClusterNode
        let running: Task<Void, any Error>
        let port: Int

        final class Done: Sendable { let value = Atomic<Bool>(false) }
        let done = Done()

        init(name: String, directory: String, node: ClusterNode, port: Int) {
            self.name = name
            self.directory = directory
            self.node = node
            self.port = port
            let done = self.done
            self.running = Task {
                defer { done.value.store(true, ordering: .relaxed) }
                try await node.run()
            }
        }

        /// Whether `run()` returned (a graceful shutdown, or the node stopped serving).
        var finished: Bool { self.done.value.load(ordering: .relaxed) }

        var endpoint: String { "127.0.0.1:\(self.port)" }
        var role: NodeRole { self.node.role }

        /// A client of this node only; `acceptsStandby` to talk to it as a standby (a client
        /// that follows the leader goes on to the leader it names).
        func client(_ identity: String = "admin", tls: String, acceptsStandby: Bool = false) async throws -> LeaseholdClient {
            let files = TLSFiles(dataDirectory: tls)
            if identity != "admin" && !FileManager.default.fileExists(atPath: files.clientCertificate(identity)) {
                _ = try files.issueClient(identity)
            }
            var configuration = ClientConfiguration.development(dataDirectory: tls, identity: identity, port: self.port)
            configuration.reconnectTimeout = .seconds(2)
            configuration.acceptsStandby = acceptsStandby
            var logger = Logger(label: "test.client")
            logger.logLevel = .critical
            return try await LeaseholdClient.connect(configuration, logger: logger)
        }

        /// A graceful shutdown; the data directory is removed unless `keepingDirectory`.
        func stop(keepingDirectory: Bool = false) async {
            self.node.shutdown()
            _ = try? await self.running.value
            if !keepingDirectory { try? FileManager.default.removeItem(atPath: self.directory) }
        }
    }

    /// A node of `cluster` reaching etcd at `endpoints`, sharing `tls` (one development CA
    /// for every node of the test).
    /// A directory with one development CA and its server and admin certificates, for every
    /// node and client of a test.
    static func sharedTLS() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("leasehold-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        _ = try TLSFiles(dataDirectory: directory).ensureDevelopmentCertificates()
        return directory
    }

    /// `leaseholdd cluster init` for a test's cluster: a small volume, short timers.
    static func initialize(
        _ cluster: String, members: EtcdMembers, uuid: UUID = UUID(), geometry: VolumeGeometry? = nil, importing: LoadedState? = nil,
        nodeIdentities: Set<String> = []
    ) async throws -> ClusterVolume {
        var coordinator = CoordinatorConfiguration()
        coordinator.geometry = try geometry ?? VolumeGeometry(blockSize: 4_096, blockCount: 1 << 16)
        coordinator.minimumTTL = .milliseconds(100)
        coordinator.recallTimeout = .seconds(2)
        coordinator.releaseDelay = .milliseconds(100)
        coordinator.eventHistory = 4
        let volume = ClusterVolume(
            uuid: uuid, geometry: coordinator.geometry, settings: ClusterSettings(coordinator: coordinator, admins: ["admin"], targets: ["target-1"], nodes: nodeIdentities)
        )
        try await volume.create(client: EtcdTestCluster.client(members), keys: ClusterKeys(cluster: cluster), importing: importing)
        return volume
    }

    /// - Parameters:
    ///   - peerIdentity: the identity (issued in `tls` when missing) whose certificate the
    ///     node presents to copy a peer's snapshot; `nil`: it reads etcd's checkpoint.
    ///   - compaction: when it writes checkpoints as leader (default: the product's).
    static func start(
        cluster: String, name: String, endpoints: [String], tls: String, directory existing: String? = nil, peerIdentity: String? = nil,
        compaction: CompactionPolicy = CompactionPolicy()
    ) async throws -> Node {
        let directory = existing ?? FileManager.default.temporaryDirectory.appendingPathComponent("leasehold-node-\(name)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let port = try freePorts(1)[0]
        var configuration = ServerConfiguration(sink: nil)
        configuration.dataDirectory = directory
        configuration.port = port
        configuration.eventLoopThreads = 1
        let files = TLSFiles(dataDirectory: tls)
        configuration.tls = ServerConfiguration.TLSPaths(certificate: files.serverCertificate, key: files.serverKey, clientCA: files.caCertificate)
        var logger = Logger(label: "test.node.\(name)")
        logger.logLevel = ProcessInfo.processInfo.environment["LEASEHOLD_TEST_LOG"] == nil ? .critical : .debug
        var nodeConfiguration = ClusterNode.Configuration(
            etcd: EtcdConfiguration(endpoints: endpoints, requestTimeout: .seconds(2)), cluster: cluster, node: name,
            advertise: "127.0.0.1:\(port)", leaderTTL: .seconds(2)
        )
        nodeConfiguration.compaction = compaction
        if let peerIdentity {
            if !FileManager.default.fileExists(atPath: files.clientCertificate(peerIdentity)) { _ = try files.issueClient(peerIdentity) }
            nodeConfiguration.peerIdentity = PeerSnapshots.Identity(
                certificatePath: files.clientCertificate(peerIdentity), keyPath: files.clientKey(peerIdentity), caPath: files.caCertificate
            )
        }
        let node = try await ClusterNode.start(configuration: nodeConfiguration, server: configuration, logger: logger)
        return Node(name: name, directory: directory, node: node, port: port)
    }

    /// Two nodes of a fresh cluster that reach etcd through a proxy each (to cut one off),
    /// once one leads; ``stop()`` undoes all of it.
    struct ProxiedPair {
        let members: EtcdMembers
        let cluster: String
        let tls: String
        let a: Node
        let b: Node
        let etcdA: FaultProxy
        let etcdB: FaultProxy
        let leader: Node
        let standby: Node

        /// The proxy between the leader and etcd.
        var leaderEtcd: FaultProxy { self.leader === self.a ? self.etcdA : self.etcdB }

        static func start() async throws -> ProxiedPair {
            let members = try await EtcdMembers.shared()
            let port = members.members[0].clientPort
            let etcdA = try await FaultProxy.start(to: port)
            let etcdB = try await FaultProxy.start(to: port)
            let cluster = EtcdTestCluster.freshName()
            _ = try await ClusterNodeTests.initialize(cluster, members: members)
            let tls = try ClusterNodeTests.sharedTLS()
            let a = try await ClusterNodeTests.start(cluster: cluster, name: "a", endpoints: ["http://127.0.0.1:\(etcdA.port)"], tls: tls)
            let b = try await ClusterNodeTests.start(cluster: cluster, name: "b", endpoints: ["http://127.0.0.1:\(etcdB.port)"], tls: tls)
            let (leader, standby) = try await ClusterNodeTests.roles(a, b)
            return ProxiedPair(members: members, cluster: cluster, tls: tls, a: a, b: b, etcdA: etcdA, etcdB: etcdB, leader: leader, standby: standby)
        }

        func stop() async throws {
            self.etcdA.refuse(false)
            self.etcdB.refuse(false)
            await self.a.stop()
            await self.b.stop()
            try await self.etcdA.stop()
            try await self.etcdB.stop()
            let keys = ClusterKeys(cluster: self.cluster)
            try await EtcdTestCluster.client(self.members).delete(keys.all.start, end: keys.all.end)
            try? FileManager.default.removeItem(atPath: self.tls)
        }
    }

    /// The two nodes once one leads and the other is its standby.
    static func roles(_ a: Node, _ b: Node, timeout: Duration = .seconds(30)) async throws -> (leader: Node, standby: Node) {
        try await eventually("one node leads, the other stands by", timeout: timeout) {
            Set([a.role, b.role]) == [.leader, .standby]
        }
        return a.role == .leader ? (a, b) : (b, a)
    }

    @Test("the standby answers notLeader naming the leader; after a graceful handover it leads the same volume, sessions resume with their secrets, the epoch went up")
    func handover() async throws {
        let members = try await EtcdMembers.shared()
        let cluster = EtcdTestCluster.freshName()
        _ = try await Self.initialize(cluster, members: members)
        let tls = try Self.sharedTLS()
        defer { try? FileManager.default.removeItem(atPath: tls) }
        let a = try await Self.start(cluster: cluster, name: "a", endpoints: members.endpoints, tls: tls)
        let b = try await Self.start(cluster: cluster, name: "b", endpoints: members.endpoints, tls: tls)
        let (leader, standby) = try await Self.roles(a, b)

        let host = try await leader.client("host-a", tls: tls)
        let session = try await host.openSession(name: "h", ttl: .seconds(10))
        let inode = try await session.createInode()
        _ = try await session.allocate(inode, ByteRange(offset: 0, length: 8 * 4_096))
        let pin = try await session.pin(inode, ranges: [ByteRange(offset: 0, length: 4 * 4_096)], kind: .longTerm)
        let epoch = leader.node.server.epoch
        let leaderAdmin = try await leader.client(tls: tls)
        let history = try await leaderAdmin.events()
        leaderAdmin.close()
        try #require(history.count == 4, "sessionOpened, inodeCreated, allocated, pinGranted: \(history)")

        // The standby: Hello says so and names the leader; a session is notLeader.
        let other = try await standby.client("host-b", tls: tls, acceptsStandby: true)
        do {
            _ = try await other.openSession(name: "b")
            Issue.record("a standby opened a session")
        } catch let error as LeaseholdError {
            #expect(error.code == .notLeader, "\(error)")
            #expect(error.details.leaderEndpoint == leader.endpoint)
        }
        other.close()
        // Its admin queries answer from the log it applied, saying how far that is.
        let reader = try await standby.client(tls: tls, acceptsStandby: true)
        try await eventually("the standby applied the pin", timeout: .seconds(20)) {
            // Until it applied the log once it answers notLeader.
            (try? await reader.pins())?.contains { $0.pin == pin.pin } ?? false
        }
        let seen = try await reader.status()
        #expect(seen.reflects != nil && seen.volume.inodes == 1, "\(seen)")
        reader.close()

        // Each node publishes its role, term and applied index; both reach the head.
        let etcd = EtcdTestCluster.client(members)
        let keys = ClusterKeys(cluster: cluster)
        let head = try #require(try await LogFollower(client: etcd, keys: keys).head().position)
        try await eventually("both nodes published the head", timeout: .seconds(20)) {
            let nodes = try await NodeDirectory.read(client: etcd, keys: keys)
            return nodes.count == 2 && nodes.allSatisfy { $0.appliedIndex >= head.index && $0.term == head.term }
        }
        let published = try await NodeDirectory.read(client: etcd, keys: keys)
        #expect(published.first { $0.endpoint == leader.endpoint }?.role == .leader)
        #expect(published.first { $0.endpoint == standby.endpoint }?.role == .standby)
        // ClusterStatus from the standby: both nodes, who leads, the head, the etcd members.
        let asker = try await standby.client(tls: tls, acceptsStandby: true)
        let overview = try await asker.clusterStatus()
        asker.close()
        #expect(overview.cluster == cluster && overview.answeredBy == standby.name && overview.problem == nil, "\(overview)")
        #expect(overview.nodes.map(\.name) == ["a", "b"])
        #expect(overview.leader?.endpoint == leader.endpoint && overview.leader?.epoch == epoch)
        #expect(overview.nodes.first { $0.name == standby.name }?.role == .standby)
        #expect(overview.head.map { LogPosition(term: $0.term, index: $0.index) } ?? LogPosition(term: 0, index: 0) >= head)
        let headIndex = overview.head?.index ?? 0
        #expect(overview.nodes.allSatisfy { $0.lag == (headIndex > $0.appliedIndex ? headIndex - $0.appliedIndex : 0) }, "\(overview.nodes)")
        #expect(overview.nodes.first { $0.name == leader.name }?.connectedClients ?? 0 >= 1, "the host's connection")
        #expect(overview.etcdMembers.count == members.members.count && overview.etcdMembers.allSatisfy(\.healthy), "\(overview.etcdMembers)")
        #expect(overview.etcdMembers.filter(\.leader).count == 1)
        #expect(overview.etcdMembers.allSatisfy { $0.raftTerm > 0 }, "each member's raft term: \(overview.etcdMembers.map(\.raftTerm))")

        // Graceful handover: the leader settles and resigns; the standby takes over.
        host.close()
        await leader.stop()
        try await eventually("the standby leads", timeout: .seconds(20)) { standby.role == .leader }
        #expect(standby.node.server.epoch > epoch, "the takeover bumps the epoch")
        // The old leader's report went with its lease; the new leader says it leads.
        try await eventually("the directory shows the new leader alone", timeout: .seconds(20)) {
            let nodes = try await NodeDirectory.read(client: etcd, keys: keys)
            return nodes.map(\.endpoint) == [standby.endpoint] && nodes.first?.role == .leader && (nodes.first?.term ?? 0) > head.term
        }
        let again = try await standby.client("host-a", tls: tls)
        let resumed = try await again.resumeSession(session.id, secret: session.secret)
        #expect(resumed.id == session.id)
        let admin = try await standby.client(tls: tls)
        let pins = try await admin.pins()
        #expect(pins.contains { $0.pin == pin.pin }, "the pin the old leader acknowledged is there")
        let followed = try await admin.events()
        #expect(followed.contains(history[3]), "the event history was in the log: the new leader has the old leader's last event")
        #expect(try await admin.checkInvariants().isEmpty)
        admin.close()
        again.close()
        await standby.stop()
        try await EtcdTestCluster.client(members).delete(ClusterKeys(cluster: cluster).all.start, end: ClusterKeys(cluster: cluster).all.end)
    }

    @Test("a node joining after a compaction copies a standby's snapshot with its node identity and applies the log after it; without the node role it is refused and reads etcd's checkpoint; a plain client may not copy snapshots")
    func joinFromPeer() async throws {
        // Its nodes compact etcd's history: not on the member other suites share.
        let members = try await EtcdMembers.sharedForCompaction()
        let cluster = EtcdTestCluster.freshName()
        let keys = ClusterKeys(cluster: cluster)
        let volume = try await Self.initialize(cluster, members: members, nodeIdentities: ["node"])
        let tls = try Self.sharedTLS()
        var compaction = CompactionPolicy()
        compaction.entries = 20
        compaction.check = .milliseconds(200)
        let a = try await Self.start(cluster: cluster, name: "a", endpoints: members.endpoints, tls: tls, peerIdentity: "node", compaction: compaction)
        let b = try await Self.start(cluster: cluster, name: "b", endpoints: members.endpoints, tls: tls, peerIdentity: "node", compaction: compaction)
        let (leader, standby) = try await Self.roles(a, b)
        let host = try await leader.client("host", tls: tls)
        let session = try await host.openSession(name: "writer", ttl: .seconds(30))
        var inodes: [InodeID] = []
        for _ in 0..<30 { inodes.append(try await session.createInode()) }
        let follower = LogFollower(client: EtcdTestCluster.client(members), keys: keys)
        try await eventually("the leader wrote a checkpoint past the first entries", timeout: .seconds(30)) {
            (try await follower.checkpointIndex() ?? 0) >= 20
        }
        for _ in 0..<5 { inodes.append(try await session.createInode()) }
        let head = try #require(try await follower.head().position?.index)
        try await eventually("the standby applied the head and reported it", timeout: .seconds(30)) {
            try await NodeDirectory.read(client: EtcdTestCluster.client(members), keys: keys).contains { $0.name == standby.name && $0.appliedIndex >= head }
        }

        // A plain client may not copy a standby's snapshot.
        let stranger = try await standby.client("host", tls: tls, acceptsStandby: true)
        await #expect(throws: LeaseholdError.self) { _ = try await stranger.snapshot(to: "\(tls)/stranger.image") }
        stranger.close()

        // The node identity's copy names the cluster's volume and matches its digest.
        let peer = try await standby.client("node", tls: tls, acceptsStandby: true)
        let copied = try await peer.copySnapshot(to: "\(tls)/peer.image")
        #expect(copied.volume == volume.uuid)
        #expect(try ImageFile.read("\(tls)/peer.image").position.index >= head)
        peer.close()

        // A new node with the node identity copies a peer's snapshot and catches up after
        // it; what an earlier process left in its snapshots directory is removed at start.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("leasehold-node-c-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: "\(directory)/snapshots", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: "\(directory)/snapshots/peer-1.image", contents: Data([1, 2, 3]))
        let c = try await Self.start(
            cluster: cluster, name: "c", endpoints: members.endpoints, tls: tls, directory: directory, peerIdentity: "node", compaction: compaction
        )
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/snapshots/peer-1.image"))
        try await eventually("the new node stands by with everything", timeout: .seconds(30)) {
            guard c.role == .standby, let admin = try? await c.client(tls: tls, acceptsStandby: true) else { return false }
            defer { admin.close() }
            // A standby that applied nothing yet answers notLeader.
            return (try? await admin.inodes()).map { Set($0.map(\.inode)).isSuperset(of: inodes) } ?? false
        }
        #expect(c.node.snapshotsCopiedFromPeers == 1, "it copied a peer's snapshot, not etcd's checkpoint")

        // Without the node role the peers refuse it: it reads etcd's checkpoint instead.
        let d = try await Self.start(cluster: cluster, name: "d", endpoints: members.endpoints, tls: tls, peerIdentity: "not-a-node", compaction: compaction)
        try await eventually("the node without the role stands by with everything", timeout: .seconds(30)) {
            guard d.role == .standby, let admin = try? await d.client(tls: tls, acceptsStandby: true) else { return false }
            defer { admin.close() }
            // A standby that applied nothing yet answers notLeader.
            return (try? await admin.inodes()).map { Set($0.map(\.inode)).isSuperset(of: inodes) } ?? false
        }
        #expect(d.node.snapshotsCopiedFromPeers == 0)

        _ = try? await session.close()
        host.close()
        for node in [c, d, standby, leader] { await node.stop() }
        try await EtcdTestCluster.client(members).delete(keys.all.start, end: keys.all.end)
        try? FileManager.default.removeItem(atPath: tls)
    }

    @Test("a leader cut off from etcd stops answering and stands down; the standby takes over with everything the leader acknowledged")
    func partitionedLeader() async throws {
        let pair = try await ProxiedPair.start()
        let (tls, leader, standby) = (pair.tls, pair.leader, pair.standby)
        let proxy = pair.leaderEtcd

        let host = try await leader.client("host-a", tls: tls)
        let session = try await host.openSession(name: "h", ttl: .seconds(20))
        var inodes: [InodeID] = []
        for _ in 0..<5 { inodes.append(try await session.createInode()) }

        proxy.refuse(true)
        proxy.cutAll()
        try await eventually("the cut-off leader stands down", timeout: .seconds(20)) { leader.role == .standby }
        try await eventually("the standby leads", timeout: .seconds(20)) { standby.role == .leader }
        let admin = try await standby.client(tls: tls)
        let listed = Set(try await admin.inodes().map(\.inode))
        #expect(inodes.allSatisfy { listed.contains($0) }, "every inode the old leader acknowledged is there")
        let again = try await standby.client("host-a", tls: tls)
        _ = try await again.resumeSession(session.id, secret: session.secret)
        #expect(try await admin.checkInvariants().isEmpty)
        host.close()
        admin.close()
        again.close()
        try await pair.stop()
    }
    @Test("a client given every node follows the leader across a failover: the session goes on without a resume call or jeopardy, a mutation whose reply was lost runs once, nothing acknowledged is lost")
    func clientFollowsTheLeader() async throws {
        let pair = try await ProxiedPair.start()
        let (tls, leader, standby) = (pair.tls, pair.leader, pair.standby)
        let leaderEtcd = pair.leaderEtcd
        // The client reaches the leader through a proxy that can lose its replies; it is
        // given the standby's endpoint too, and nothing else about who leads.
        let front = try await FaultProxy.start(to: leader.port)
        _ = try TLSFiles(dataDirectory: tls).issueClient("host-a")
        var configuration = ClientConfiguration.development(
            dataDirectory: tls, identity: "host-a",
            endpoints: [HostPort(host: "127.0.0.1", port: front.port), HostPort(host: "127.0.0.1", port: standby.port)]
        )
        configuration.reconnectTimeout = .seconds(30)
        var logger = Logger(label: "test.client")
        logger.logLevel = .critical
        let client = try await LeaseholdClient.connect(configuration, logger: logger)
        let session = try await client.openSession(name: "follower", ttl: .seconds(15))
        let seen = Mutex<[SessionEvent]>([])
        let watching = Task { for await event in session.events { seen.withLock { $0.append(event) } } }
        var acknowledged: [InodeID] = []
        for _ in 0..<5 { acknowledged.append(try await session.createInode()) }
        let inode = try await session.createInode()
        acknowledged.append(inode)
        _ = try await session.allocate(inode, ByteRange(offset: 0, length: 8 * 4_096))

        // The pin is granted and committed (the standby applied it), and its reply lost.
        front.swallowReplies(true)
        let pinned = Task { try await session.pin(inode, ranges: [ByteRange(offset: 0, length: 4_096)], kind: .longTerm) }
        let reader = try await standby.client(tls: tls, acceptsStandby: true)
        try await eventually("the standby applied the pin", timeout: .seconds(20)) { (try? await reader.pins().count) == 1 }
        let committed = try #require(try await reader.pins().first)
        reader.close()

        // The leader loses etcd (and its clients): the standby takes over.
        front.refuse(true)
        front.cutAll()
        leaderEtcd.refuse(true)
        leaderEtcd.cutAll()
        // The retry goes wherever the client finds a leader: the old one (a standby names
        // it, and it still leads until its lease runs out) or the new one.
        let grant = try await pinned.value
        #expect(grant.pin == committed.pin && grant.token == committed.token, "the retry was answered from the reply cache, not run again")
        for _ in 0..<5 { acknowledged.append(try await session.createInode()) }
        try await eventually("the standby leads", timeout: .seconds(20)) { standby.role == .leader }
        // Once the old leader stood down, only the new one acknowledges anything.
        for _ in 0..<5 { acknowledged.append(try await session.createInode()) }

        let admin = try await standby.client(tls: tls)
        let pins = try await admin.pins()
        #expect(pins.map(\.pin) == [committed.pin], "one pin: the mutation ran once")
        let listed = Set(try await admin.inodes().map(\.inode))
        #expect(acknowledged.allSatisfy { listed.contains($0) }, "every acknowledged inode is on the new leader")
        #expect(session.leaseState == .active)
        let events = seen.withLock { $0 }
        #expect(events.contains { if case .resumed = $0 { true } else { false } }, "the session was resumed on the new leader: \(events)")
        #expect(!events.contains { if case .jeopardy = $0 { true } else if case .ended = $0 { true } else { false } }, "\(events)")
        #expect(try await admin.checkInvariants().isEmpty)
        try await session.close()
        watching.cancel()
        client.close()
        admin.close()
        try await front.stop()
        try await pair.stop()
    }
    @Test("a storage target follows the leader: with a fence unacknowledged when the leader is lost, the blocks stay busy on the new leader until the target acknowledges there, and its feed goes on")
    func targetFollowsTheLeader() async throws {
        let pair = try await ProxiedPair.start()
        let (tls, a, b, standby) = (pair.tls, pair.a, pair.b, pair.standby)
        let files = TLSFiles(dataDirectory: tls)
        for identity in ["target-1", "host-a", "host-b"] { _ = try files.issueClient(identity) }
        var logger = Logger(label: "test.client")
        logger.logLevel = .critical
        func client(_ identity: String) async throws -> LeaseholdClient {
            var configuration = ClientConfiguration.development(
                dataDirectory: tls, identity: identity, endpoints: [a, b].map { HostPort(host: "127.0.0.1", port: $0.port) }
            )
            configuration.reconnectTimeout = .seconds(30)
            return try await LeaseholdClient.connect(configuration, logger: logger)
        }
        let target = try await client("target-1")
        let admin = try await client("admin")
        var feed = target.fenceFeed().makeAsyncIterator()
        try await eventually("the target is registered", timeout: .seconds(20)) { try await admin.targets().map(\.name) == ["target-1"] }
        // The admin event watch follows the leader too.
        let watcher = try await client("admin")
        var watch = watcher.watchEvents().makeAsyncIterator()

        let holder = try await client("host-a")
        let session = try await holder.openSession(ttl: .seconds(20))
        let inode = try await session.createInode()
        _ = try await session.pin(inode, ranges: [ByteRange(offset: 0, length: 3 * 4_096)], kind: .shortTerm(ttl: .seconds(20)), allocate: true)
        let breaker = try await client("host-b")
        let breaking = try await breaker.openSession(ttl: .seconds(20))
        #expect(try await breaking.truncate(inode, size: 0).busyBlocks == 3)
        let fence = try await admin.evict(session.id)
        #expect(try await feed.next() == fence)

        // The leader loses etcd before the target acknowledged; the standby takes over.
        let cut = pair.leaderEtcd
        cut.refuse(true)
        cut.cutAll()
        try await eventually("the standby leads", timeout: .seconds(20)) { standby.role == .leader }
        try await eventually("the admin client reached the new leader", timeout: .seconds(20)) {
            (try? await admin.status()) != nil && admin.server.role == .leader && admin.server.epoch == standby.node.server.epoch
        }
        // Still busy on the new leader, past several release delays: the fence waits for the target.
        try await Task.sleep(for: .milliseconds(500))
        let busy = try await admin.busyExtents()
        #expect(busy.count == 1 && busy.first?.fences.first?.waitingForTargets == ["target-1"], "\(busy)")
        #expect(try await admin.status().volume.busyBlocks == 3)

        // The target acknowledges on the new leader: the blocks go free.
        let acknowledged = try await target.acknowledgeFence(fence.revision)
        #expect(acknowledged.acknowledged == fence.revision)
        try await eventually("the blocks go free after the release delay", timeout: .seconds(20)) { try await admin.status().volume.busyBlocks == 0 }
        // Its feed followed the leader: the next fence, made by the new leader, arrives.
        let second = try await admin.evict(breaking.id)
        #expect(try await feed.next() == second)
        // The watch saw every event once, in order, across the failover, up to the second
        // eviction made by the new leader.
        var revisions: [EventRevision] = []
        var sawSecond = false
        while !sawSecond, let event = try await watch.next() {
            revisions.append(event.revision)
            if case .sessionEvicted(let evicted, _, _) = event.kind, evicted == breaking.id { sawSecond = true }
        }
        #expect(sawSecond && revisions == revisions.sorted() && Set(revisions).count == revisions.count, "\(revisions)")
        watcher.close()
        #expect(try await admin.checkInvariants().isEmpty)
        for client in [target, admin, holder, breaker] { client.close() }
        try await pair.stop()
    }
}
