import Foundation
import LeaseholdCertificates
import LeaseholdClient
import LeaseholdClusterTestSupport
import LeaseholdTestSupport
import Logging
import Synchronization
import Testing

/// Cluster mode with real processes: 3 etcd members and 2 `leaseholdd` nodes on loopback
/// (docs/cluster.md). A leader killed with SIGKILL under load, a leader stopped past its
/// lease, a standby that was down, etcd members lost: nothing acknowledged is lost, and a
/// node that no longer leads acknowledges nothing.
@Suite("Cluster: leaseholdd nodes on a 3-member etcd", .serialized, .enabled(if: EtcdMembers.isInstalled || requireEtcd()))
struct ClusterProcessTests {
    /// One `leaseholdd` node of the test's cluster, on a port of its own.
    final class Node: Sendable {
        let name: String
        let directory: String
        let port: Int
        let arguments: [String]
        let child = Mutex<Child?>(nil)

        init(name: String, cluster: String, etcd: [String], tls: String) throws {
            self.name = name
            self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("leasehold-cn-\(name)-\(UUID().uuidString)").path
            self.port = try freePorts(1)[0]
            let files = TLSFiles(dataDirectory: tls)
            self.arguments = [
                "--data-dir", self.directory, "--listen", "127.0.0.1:\(self.port)", "--etcd-endpoints", etcd.joined(separator: ","),
                "--cluster", cluster, "--node", name, "--leader-ttl", "2s", "--cert", files.serverCertificate, "--key", files.serverKey,
                "--client-ca", files.caCertificate, "--log-level", "notice",
            ]
        }

        var endpoint: String { "127.0.0.1:\(self.port)" }

        /// Starts the process and waits until it listens.
        func start() async throws {
            let child = try Child("leaseholdd", self.arguments)
            self.child.withLock { $0 = child }
            try await eventually("\(self.name) listens", timeout: .seconds(60)) {
                guard child.isRunning else { throw DaemonFailed(message: "\(self.name) exited: \(child.stderr)") }
                return child.stderr.contains("listening")
            }
        }

        func signal(_ number: Int32) { self.child.withLock { $0 }?.signal(number) }

        func kill() async {
            guard let child = self.child.withLock({ $0 }) else { return }
            child.signal(SIGKILL)
            await child.wait()
        }

        func stop() async {
            if let child = self.child.withLock({ $0 }) {
                child.signal(SIGTERM)
                await child.wait(timeout: .seconds(20))
            }
            try? FileManager.default.removeItem(atPath: self.directory)
        }

        var log: String { self.child.withLock { $0 }?.stderr ?? "" }
    }

    /// The test's world: etcd members, two nodes, one development CA.
    struct World {
        let etcd: EtcdMembers
        let nodes: [Node]
        let tls: String

        static func start() async throws -> World {
            let etcd = try await EtcdMembers.start(members: 3, heartbeat: .milliseconds(100), election: .milliseconds(1_000))
            let tls = FileManager.default.temporaryDirectory.appendingPathComponent("leasehold-cn-tls-\(UUID().uuidString)").path
            _ = try TLSFiles(dataDirectory: tls).ensureDevelopmentCertificates()
            let cluster = "it-\(UUID().uuidString.prefix(8).lowercased())"
            // The volume and the settings every node serves with, once.
            let initialize = try Child(
                "leaseholdd",
                [
                    "cluster", "init", "--etcd-endpoints", etcd.endpoints.joined(separator: ","), "--cluster", cluster, "--block-count", "65536",
                    "--min-ttl", "200ms", "--recall-timeout", "2s", "--release-delay", "200ms",
                ]
            )
            let status = try await initialize.waitForEnd(timeout: .seconds(60))
            guard status == 0 else { throw DaemonFailed(message: "leaseholdd cluster init exited \(status): \(initialize.stderr)") }
            let nodes = try ["n0", "n1"].map { try Node(name: $0, cluster: cluster, etcd: etcd.endpoints, tls: tls) }
            for node in nodes { try await node.start() }
            return World(etcd: etcd, nodes: nodes, tls: tls)
        }

        func stop() async {
            for node in self.nodes { await node.stop() }
            self.etcd.shutdown()
            try? FileManager.default.removeItem(atPath: self.tls)
        }

        /// A client given only `node`: it follows the leader that a standby names, unless
        /// `acceptsStandby` (to ask the node itself).
        func client(_ node: Node, _ identity: String = "admin", acceptsStandby: Bool = false) async throws -> LeaseholdClient {
            try await self.client([node], identity, acceptsStandby: acceptsStandby)
        }

        /// A client given these nodes' endpoints.
        func client(_ nodes: [Node], _ identity: String = "admin", acceptsStandby: Bool = false, reconnectTimeout: Duration = .seconds(3)) async throws
            -> LeaseholdClient
        {
            let files = TLSFiles(dataDirectory: self.tls)
            if identity != "admin" && !FileManager.default.fileExists(atPath: files.clientCertificate(identity)) {
                _ = try files.issueClient(identity)
            }
            var configuration = ClientConfiguration.development(
                dataDirectory: self.tls, identity: identity, endpoints: nodes.map { HostPort(host: "127.0.0.1", port: $0.port) }
            )
            configuration.reconnectTimeout = reconnectTimeout
            configuration.acceptsStandby = acceptsStandby
            var logger = Logger(label: "it.cluster.\(identity)")
            logger.logLevel = .critical
            return try await LeaseholdClient.connect(configuration, logger: logger)
        }

        /// The node whose `status` answers as a leader (a standby answers notLeader, or from
        /// the log it applied with `reflects` set).
        func leader(timeout: Duration = .seconds(30), excluding: Node? = nil) async throws -> Node {
            var found: Node?
            try await eventually("a node leads", timeout: timeout) {
                for node in self.nodes where node !== excluding {
                    guard let client = try? await self.client(node, acceptsStandby: true) else { continue }
                    defer { client.close() }
                    if let status = try? await client.status(), status.reflects == nil {
                        found = node
                        return true
                    }
                }
                return false
            }
            return found!
        }
    }

    /// Inodes created and acknowledged by the workers, through whatever node leads.
    final class Acknowledged: Sendable {
        let running = Atomic<Bool>(true)
        let inodes = Mutex<[InodeID]>([])
        /// Set when the leader is killed; counts the acknowledgements after that.
        let killed = Atomic<Bool>(false)
        let afterKill = Atomic<Int>(0)
        /// Every session event the workers' sessions reported.
        let events = Mutex<[SessionEvent]>([])
        func add(_ inode: InodeID) { self.inodes.withLock { $0.append(inode) } }
        var all: [InodeID] { self.inodes.withLock { $0 } }
    }

    @Test("the leader killed with SIGKILL under a multi-client workload: the clients follow the new leader by themselves, no session enters jeopardy, every acknowledged mutation is there")
    func killLeaderUnderLoad() async throws {
        let world = try await World.start()
        let leader = try await world.leader()
        let standby = world.nodes.first { $0 !== leader }!
        let acknowledged = Acknowledged()
        var sessions: [LeaseholdSession] = []
        var clients: [LeaseholdClient] = []
        var workers: [Task<Void, Never>] = []
        var watchers: [Task<Void, Never>] = []
        for index in 0..<4 {
            // Every node's endpoint, the standby's first for half of them.
            let nodes = index.isMultiple(of: 2) ? world.nodes : world.nodes.reversed()
            let client = try await world.client(nodes, "host-\(index)", reconnectTimeout: .seconds(60))
            let session = try await client.openSession(name: "w\(index)", ttl: .seconds(20))
            sessions.append(session)
            clients.append(client)
            watchers.append(Task { for await event in session.events { acknowledged.events.withLock { $0.append(event) } } })
            workers.append(
                Task {
                    while acknowledged.running.load(ordering: .relaxed) {
                        do {
                            acknowledged.add(try await session.createInode())
                            if acknowledged.killed.load(ordering: .relaxed) { acknowledged.afterKill.add(1, ordering: .relaxed) }
                        } catch {
                            Issue.record("worker \(index): \(error)")
                            break
                        }
                    }
                }
            )
        }
        try await eventually("the workload is under way") { acknowledged.all.count >= 40 }
        acknowledged.killed.store(true, ordering: .relaxed)
        await leader.kill()
        let newLeader = try await world.leader(timeout: .seconds(30), excluding: leader)
        #expect(newLeader === standby)
        try await eventually("every worker goes on through the new leader", timeout: .seconds(30)) { acknowledged.afterKill.load(ordering: .relaxed) >= 40 }
        acknowledged.running.store(false, ordering: .relaxed)
        for worker in workers { await worker.value }
        for session in sessions { #expect(session.leaseState == .active) }
        for session in sessions { try await session.close() }
        for client in clients { client.close() }
        for watcher in watchers { watcher.cancel() }
        let events = acknowledged.events.withLock { $0 }
        #expect(!events.contains { if case .jeopardy = $0 { true } else { false } }, "a session entered jeopardy: \(events)")

        let admin = try await world.client(newLeader)
        let present = Set(try await admin.inodes(Page(limit: 10_000)).map(\.inode))
        let lost = acknowledged.all.filter { !present.contains($0) }
        #expect(lost.isEmpty, "acknowledged inodes missing after the failover: \(lost.prefix(10)) of \(acknowledged.all.count)")
        #expect(try await admin.checkInvariants().isEmpty)
        admin.close()
        await world.stop()
    }

    @Test("a leader stopped (SIGSTOP) past its lease acknowledges nothing once it continues and answers notLeader; the new leader has the volume")
    func stoppedLeader() async throws {
        let world = try await World.start()
        let leader = try await world.leader()
        let client = try await world.client(leader, "host-a")
        let session = try await client.openSession(name: "s", ttl: .seconds(30))
        let kept = try await session.createInode()
        let oldTerm = client.server.term
        // A client bound to the old leader alone (it takes it as a standby too): what it
        // sends while the leader is stopped must never be acknowledged.
        let bound = try await world.client(leader, "host-b", acceptsStandby: true)
        let boundSession = try await bound.openSession(name: "bound", ttl: .seconds(30))
        leader.signal(SIGSTOP)
        let newLeader = try await world.leader(timeout: .seconds(30), excluding: leader)
        let boundRenewal = Task { try await boundSession.keepAlive() }
        let boundMutation = Task { try await boundSession.createInode() }
        // Requests sent to the stopped leader, which it reads once it continues: a renewal
        // (answered outside the journal, so only the self-fence stops it) and a mutation
        // (released after its journal batch). The old leader answers neither; the client
        // takes them to the new leader, which has everything.
        let renewal = Task { try await session.keepAlive() }
        try await Task.sleep(for: .milliseconds(200))
        leader.signal(SIGCONT)
        if case .success(let ttl) = await boundRenewal.result {
            Issue.record("the old leader renewed a session (\(ttl)) after its lease ran out")
        }
        if case .success(let inode) = await boundMutation.result {
            Issue.record("the old leader acknowledged inode \(inode) after its lease ran out")
        }
        bound.close()
        _ = try await renewal.value
        let inode = try await session.createInode()
        #expect(client.server.term > oldTerm && client.server.role == .leader, "answered by the new leader: \(client.server)")
        #expect(session.leaseState == .active)
        // It answers as a standby from now on.
        try await eventually("the old leader answers notLeader", timeout: .seconds(20)) {
            guard let fresh = try? await world.client(leader, "host-a", acceptsStandby: true) else { return false }
            defer { fresh.close() }
            do {
                _ = try await fresh.openSession(name: "again")
                return false
            } catch let error as LeaseholdError {
                return error.code == .notLeader
            }
        }
        let admin = try await world.client(newLeader)
        let present = Set(try await admin.inodes().map(\.inode))
        #expect(present.contains(kept) && present.contains(inode))
        #expect(try await admin.checkInvariants().isEmpty)
        admin.close()
        client.close()
        await world.stop()
    }

    @Test(
        "a leader stopped for good (SIGSTOP, no SIGCONT): clients given every node give up on it when a renewal goes unanswered, go on with the new leader, and never enter jeopardy",
        .timeLimit(.minutes(3))
    )
    func leaderStoppedForGood() async throws {
        let world = try await World.start()
        let leader = try await world.leader()
        let client = try await world.client(world.nodes, "host-a", reconnectTimeout: .seconds(60))
        let session = try await client.openSession(name: "s", ttl: .seconds(20))
        let acknowledged = Acknowledged()
        let watcher = Task { for await event in session.events { acknowledged.events.withLock { $0.append(event) } } }
        for _ in 0..<5 { acknowledged.add(try await session.createInode()) }
        leader.signal(SIGSTOP)
        let stopped = ContinuousClock.now
        // The first of these waits on the stopped leader until the session's next renewal
        // goes unanswered and its connection is dropped; then they go to the new leader.
        for _ in 0..<5 { acknowledged.add(try await session.createInode()) }
        let stall = ContinuousClock.now - stopped
        let newLeader = try await world.leader(timeout: .seconds(30), excluding: leader)
        #expect(client.server.role == .leader && client.server.term > 0)
        #expect(session.leaseState == .active)
        #expect(stall < .seconds(18), "the client stalled \(stall), past its local deadline")
        let events = acknowledged.events.withLock { $0 }
        #expect(!events.contains { if case .jeopardy = $0 { true } else if case .ended = $0 { true } else { false } }, "\(events)")
        let admin = try await world.client(newLeader)
        let present = Set(try await admin.inodes().map(\.inode))
        #expect(acknowledged.all.allSatisfy { present.contains($0) })
        admin.close()
        try await session.close()
        watcher.cancel()
        client.close()
        leader.signal(SIGCONT)
        await world.stop()
    }

    @Test("a standby killed and restarted catches up on the log, then takes over with everything")
    func standbyCatchesUp() async throws {
        let world = try await World.start()
        let leader = try await world.leader()
        let standby = world.nodes.first { $0 !== leader }!
        await standby.kill()
        let client = try await world.client(leader, "host-a")
        let session = try await client.openSession(name: "s", ttl: .seconds(30))
        var created: [InodeID] = []
        for _ in 0..<20 { created.append(try await session.createInode()) }
        try await standby.start()
        try await eventually("the restarted node follows", timeout: .seconds(20)) { standby.log.contains("starting as a standby") }
        // Give it the log, then take the leader away.
        try await Task.sleep(for: .milliseconds(500))
        client.close()
        await leader.kill()
        let newLeader = try await world.leader(timeout: .seconds(30), excluding: leader)
        #expect(newLeader === standby)
        let admin = try await world.client(newLeader)
        let present = Set(try await admin.inodes().map(\.inode))
        #expect(created.allSatisfy { present.contains($0) }, "missing: \(created.filter { !present.contains($0) })")
        admin.close()
        await world.stop()
    }

    @Test("one etcd member lost: writes go on; two lost: nothing is acknowledged; quorum back: nothing acknowledged was lost")
    func etcdMembersLost() async throws {
        let world = try await World.start()
        let first = try await world.leader()
        let opened = try await world.client(first, "host-a")
        let session = try await opened.openSession(name: "s", ttl: .seconds(60))
        let (id, secret) = (session.id, session.secret)
        var acknowledged = [try await session.createInode()]
        opened.close()
        /// One inode created through whichever node leads now (the session resumed there):
        /// losing an etcd member may cost a failover with the tests' short leader TTL.
        /// Each try gets 4 s: closing the client ends a request a node without quorum
        /// never answers.
        func createAnywhere() async -> InodeID? {
            for node in world.nodes {
                guard let client = try? await world.client(node, "host-a") else { continue }
                let timer = Task {
                    try await Task.sleep(for: .seconds(4))
                    client.close()
                }
                defer {
                    timer.cancel()
                    client.close()
                }
                guard let resumed = try? await client.resumeSession(id, secret: secret) else { continue }
                if let inode = try? await resumed.createInode() { return inode }
            }
            return nil
        }
        world.etcd.kill(0)
        // With two of three members the log takes writes (after an etcd election if the
        // killed member led).
        try await eventually("a write goes through with one member down", timeout: .seconds(30)) {
            guard let inode = await createAnywhere() else { return false }
            acknowledged.append(inode)
            return true
        }
        world.etcd.kill(1)
        // Any node still answers ClusterStatus, saying what it could not read. The member
        // left knows its raft leader until an election timeout passes without one (or, if
        // it led, until check-quorum deposes it), so it may read healthy at first.
        let asker = try await world.client(world.nodes, acceptsStandby: true, reconnectTimeout: .seconds(20))
        var overview = try await asker.clusterStatus()
        try await eventually("the member left reads unhealthy", timeout: .seconds(30)) {
            overview = try await asker.clusterStatus()
            return !overview.etcdMembers.contains(where: \.healthy)
        }
        asker.close()
        #expect(overview.problem != nil, "\(overview)")
        #expect(overview.etcdMembers.count == 3 && !overview.etcdMembers.contains(where: \.healthy), "\(overview.etcdMembers)")
        let deadline = ContinuousClock.now + .seconds(6)
        while ContinuousClock.now < deadline {
            if let inode = await createAnywhere() {
                Issue.record("inode \(inode) was acknowledged without an etcd quorum")
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        try world.etcd.restart(0)
        try world.etcd.restart(1)
        try await world.etcd.waitUntilHealthy()
        try await eventually("writes go through again with the quorum back", timeout: .seconds(60)) {
            guard let inode = await createAnywhere() else { return false }
            acknowledged.append(inode)
            return true
        }
        let now = try await world.leader(timeout: .seconds(60))
        let admin = try await world.client(now)
        let present = Set(try await admin.inodes().map(\.inode))
        #expect(acknowledged.allSatisfy { present.contains($0) }, "missing: \(acknowledged.filter { !present.contains($0) })")
        #expect(try await admin.checkInvariants().isEmpty)
        admin.close()
        await world.stop()
    }
}
