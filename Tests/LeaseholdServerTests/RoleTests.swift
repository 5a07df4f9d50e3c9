import Foundation
@testable import LeaseholdClient
import LeaseholdCore
import LeaseholdJournal
import LeaseholdMessages
import LeaseholdServer
import LeaseholdTestSupport
import LeaseholdWire
import Synchronization
import Testing

/// The server's roles in cluster mode, without etcd (docs/cluster.md): a standby answers
/// only Hello and notLeader; a leader releases nothing once its gate (the leadership
/// deadline) closes, renewals included; standing down closes its clients' connections and
/// makes it a standby that names the new leader.
@Suite("Server roles: standby, leader, self-fence", .timeLimit(.minutes(1)))
struct RoleTests {
    final class Gate: Sendable {
        let open = Atomic<Bool>(true)
        var isOpen: Bool { self.open.load(ordering: .relaxed) }
    }

    static func hello(_ cluster: TestCluster) async throws -> Leasehold_V1_HelloOk {
        let raw = try await RawConnection(cluster: cluster)
        defer { Task { await raw.close() } }
        try await raw.hello()
        let response = try #require(try await raw.response(to: 1))
        return response.helloOk
    }

    @Test("a standby says so in Hello with the leader it knows, and answers sessions and admin requests with notLeader naming it")
    func standby() async throws {
        let cluster = try await TestCluster.start(standby: true)
        var hello = try await Self.hello(cluster)
        #expect(hello.role == .standby && hello.leaderEndpoint.isEmpty)
        cluster.server.setLeader("10.0.0.9:7420", term: 41)
        hello = try await Self.hello(cluster)
        #expect(hello.role == .standby && hello.leaderEndpoint == "10.0.0.9:7420" && hello.term == 41)
        // A client that follows the leader never takes a standby.
        let refused = await #expect(throws: LeaseholdError.self) { _ = try await cluster.client { $0.reconnectTimeout = .seconds(1) } }
        #expect(refused?.code == .unavailable && refused?.message.contains("standby of the leader at 10.0.0.9:7420") == true, "\(String(describing: refused))")
        let client = try await cluster.client { $0.acceptsStandby = true }
        for attempt in [0, 1] {
            do {
                if attempt == 0 { _ = try await client.openSession(name: "s") } else { _ = try await client.status() }
                Issue.record("a standby answered request \(attempt)")
            } catch let error as LeaseholdError {
                #expect(error.code == .notLeader && error.details.leaderEndpoint == "10.0.0.9:7420", "\(error)")
            }
        }
        client.close()
        try await cluster.stop()
    }

    @Test("a leader serves while its gate is open; once it closes, a renewal is not answered and Hello no longer says leader; standing down makes it a standby")
    func selfFence() async throws {
        let cluster = try await TestCluster.start(standby: true)
        let gate = Gate()
        let sink = InMemorySink()
        try await cluster.server.lead(sink: sink, term: 7, gate: { gate.isOpen }, onFailure: { Issue.record("journal stopped: \($0)") })
        #expect(cluster.server.role == .leader)
        var hello = try await Self.hello(cluster)
        #expect(hello.role == .leader && hello.term == 7)
        let client = try await cluster.client("host-a")
        let session = try await client.openSession(name: "s", ttl: .seconds(30))
        #expect(try await session.keepAlive() > .zero)
        let inode = try await session.createInode()

        gate.open.store(false, ordering: .relaxed)
        do {
            let ttl = try await session.keepAlive()
            Issue.record("a renewal was answered (\(ttl)) after the gate closed")
        } catch {
            // Not answered: the connection closes with notLeader instead.
        }
        hello = try await Self.hello(cluster)
        #expect(hello.role == .standby, "a fenced leader does not call itself leader")

        cluster.server.standDown(leader: "10.0.0.9:7420", term: 9, reason: "test")
        #expect(cluster.server.role == .standby)
        hello = try await Self.hello(cluster)
        #expect(hello.role == .standby && hello.leaderEndpoint == "10.0.0.9:7420" && hello.term == 9)
        // What the leader acknowledged is in its sink: a new leader starts from it.
        let loaded = try #require(try await sink.load())
        #expect(loaded.state.inodes[inode] != nil)
        client.close()
        try await cluster.stop()
    }

    @Test("a standby answers admin queries (event history included) from the state it applied, saying its log position; everything else stays notLeader")
    func standbyReads() async throws {
        let cluster = try await TestCluster.start(standby: true)
        cluster.server.setLeader("10.0.0.9:7420", term: 41)
        // The state a standby applied: a volume with a session holding a pin.
        var harness = Harness(configuration: cluster.server.configuration.coordinator)
        let session = harness.openSession("host-a", ttl: .seconds(30))
        let inode = harness.file(in: session, blocks: 8)
        _ = try harness.pin(in: session, inode, [ByteRange(offset: 0, length: 4_096)], kind: .longTerm)
        let applied = Mutex<LoadedState?>(nil)
        cluster.server.serveStandbyReads { applied.withLock { $0 } }
        let admin = try await cluster.client { $0.acceptsStandby = true }
        // Nothing applied yet: notLeader.
        let early = await #expect(throws: LeaseholdError.self) { _ = try await admin.status() }
        #expect(early?.code == .notLeader)

        applied.withLock { $0 = LoadedState(state: harness.persisted, position: LogPosition(term: 41, index: 17)) }
        let status = try await admin.status()
        #expect(status.reflects == ServerStatus.LogPosition(term: 41, index: 17))
        #expect(status.volume.epoch == harness.persisted.volume?.epoch, "the image's epoch, not a restore's")
        #expect(status.volume.sessions == 1 && status.volume.pins == 1 && status.volume.inodes == 1)
        #expect(try await admin.pins().count == 1)
        #expect(try await admin.inodes().contains { $0.inode == inode })
        #expect(try await admin.checkInvariants().isEmpty)

        // The image moves on: the answer follows it.
        _ = harness.createInode(in: session)
        applied.withLock { $0 = LoadedState(state: harness.persisted, position: LogPosition(term: 41, index: 18)) }
        let later = try await admin.status()
        #expect(later.reflects?.index == 18 && later.volume.inodes == 2)

        // The durable event history is part of that state; watching it is the leader's.
        #expect(!harness.persisted.events.isEmpty)
        #expect(try await admin.events().map(\.revision) == harness.persisted.events.map(\.revision))
        let watched = await #expect(throws: LeaseholdError.self) { for try await _ in admin.watchEvents() {} }
        #expect(watched?.code == .notLeader)

        // Admin actions and every session or target command: notLeader.
        let eviction = await #expect(throws: LeaseholdError.self) { _ = try await admin.evict(session) }
        #expect(eviction?.code == .notLeader)
        let open = await #expect(throws: LeaseholdError.self) { _ = try await admin.openSession(name: "s") }
        #expect(open?.code == .notLeader)
        // Not an admin: refused as the leader would refuse it.
        let host = try await cluster.client("host-b") { $0.acceptsStandby = true }
        let denied = await #expect(throws: LeaseholdError.self) { _ = try await host.status() }
        #expect(denied?.code == .permissionDenied)
        host.close()
        admin.close()
        try await cluster.stop()
    }
}
