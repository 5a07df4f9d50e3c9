import Foundation
@testable import LeaseholdClient
import LeaseholdCore
import LeaseholdTestSupport
import Testing

/// Connections come and go; sessions, pins and pushes stay.
@Suite("Reconnect and resume", .timeLimit(.minutes(1)))
struct ReconnectTests {
    /// A client that connects through the fault proxy and retries at once when it lets
    /// connections through again: the backoff does not grow while the proxy refuses (a
    /// reconnect 1 s late would cost the short TTLs here their session).
    static func throughProxy(_ configuration: inout ClientConfiguration, _ proxy: FaultProxy) {
        configuration.port = proxy.port
        configuration.reconnectBackoff = (initial: .milliseconds(10), maximum: .milliseconds(20))
    }

    @Test("a dropped connection reconnects and resumes the session with its pins intact")
    func resume() async throws {
        let cluster = try await TestCluster.start()
        let client = try await cluster.client("gpu-0")
        let admin = try await cluster.client()
        let session = try await client.openSession(ttl: .seconds(3))
        let events = EventLog(session)
        let inode = try await session.createInode()
        let grant = try await session.pin(inode, ranges: [ByteRange(offset: 0, length: 2 * 4_096)], kind: .longTerm, allocate: true)
        client.connection.cut()
        _ = try await events.first("resumed") { event -> Bool? in
            if case .resumed = event { return true }
            return nil
        }
        let pins = try await admin.pins()
        #expect(pins.map(\.pin) == [grant.pin])
        #expect(try await admin.sessions().first { $0.info.session == session.id }?.connected == true)
        try await session.unpin(grant.pin)
        #expect(try await admin.pins().isEmpty)
        client.close()
        admin.close()
        try await cluster.stop()
    }

    @Test("a pin whose reply is lost is retried with the same slot and sequence: one pin, the stored reply")
    func lostReply() async throws {
        let cluster = try await TestCluster.start()
        let proxy = try await FaultProxy.start(to: cluster.port)
        let client = try await cluster.client("gpu-0") { Self.throughProxy(&$0, proxy) }
        let admin = try await cluster.client()
        let session = try await client.openSession(ttl: .seconds(3))
        let inode = try await session.createInode()
        _ = try await session.allocate(inode, ByteRange(offset: 0, length: 4 * 4_096))
        let generation = client.connection.state.withLock { $0.machine.generation }
        // The server grants the pin and its reply is lost on the way back; then the
        // connection breaks.
        proxy.swallowReplies(true)
        async let pinned = session.pin(inode, ranges: [ByteRange(offset: 0, length: 4_096)], kind: .longTerm)
        try await eventually("the server granted the pin") { try await admin.pins().count == 1 }
        proxy.cutAll()
        proxy.swallowReplies(false)
        let grant = try await pinned
        // The grant came from a retry on a new connection.
        #expect(client.connection.state.withLock { $0.machine.generation } > generation)
        let pins = try await admin.pins()
        #expect(pins.count == 1)
        #expect(pins.first?.pin == grant.pin)
        #expect(pins.first?.token == grant.token)
        client.close()
        admin.close()
        try await proxy.stop()
        try await cluster.stop()
    }

    @Test("pushes made while a client is disconnected are replayed on resume, in order")
    func replay() async throws {
        // Generous TTLs and recall timeout: the first seconds of a full run on 2 cores can
        // starve this process for tens of seconds, and nothing here waits for an expiry.
        let cluster = try await TestCluster.start { $0.coordinator.recallTimeout = .seconds(60) }
        let proxy = try await FaultProxy.start(to: cluster.port)
        let client = try await cluster.client("gpu-0") { Self.throughProxy(&$0, proxy) }
        let other = try await cluster.client("truncater")
        let session = try await client.openSession(ttl: .seconds(60))
        let events = EventLog(session)
        let breaker = try await other.openSession(ttl: .seconds(60))
        var inodes: [InodeID] = []
        var pins: [PinID] = []
        for _ in 0..<3 {
            let inode = try await session.createInode()
            pins.append(try await session.pin(inode, ranges: [ByteRange(offset: 0, length: 4_096)], kind: .longTerm, allocate: true).pin)
            inodes.append(inode)
        }
        proxy.refuse(true)
        proxy.cutAll()
        try await eventually("the client notices the lost connection", timeout: .seconds(60)) {
            if case .connecting = client.connection.state.withLock({ $0.machine.phase }) { return true }
            return false
        }
        for inode in inodes { _ = try await breaker.truncate(inode, size: 0) }
        #expect(events.all.allSatisfy { if case .pinRecall = $0 { false } else { true } })
        proxy.refuse(false)
        _ = try await events.first("resumed", timeout: .seconds(60)) { event -> Bool? in
            if case .resumed = event { return true }
            return nil
        }
        let recalled = events.all.compactMap { event -> PinID? in
            if case .pinRecall(let recall) = event { return recall.notice.pin }
            return nil
        }
        #expect(recalled == pins)
        client.close()
        other.close()
        try await proxy.stop()
        try await cluster.stop()
    }

    @Test("a client cut off past its local deadline is told to stop DMA, and renewed when it comes back in time")
    func jeopardy() async throws {
        let cluster = try await TestCluster.start()
        let proxy = try await FaultProxy.start(to: cluster.port)
        let client = try await cluster.client("gpu-0") {
            Self.throughProxy(&$0, proxy)
            $0.jeopardyMargin = .seconds(3)
        }
        // Jeopardy 3 s after the last renewal; the resume after the cut then has 3 s to
        // bring it back (slack for the starved first seconds of a full run on 2 cores).
        let session = try await client.openSession(ttl: .seconds(6))
        let events = EventLog(session)
        proxy.refuse(true)
        proxy.cutAll()
        _ = try await events.first("jeopardy") { event -> Bool? in
            if case .jeopardy = event { return true }
            return nil
        }
        #expect(session.leaseState == .jeopardy)
        proxy.refuse(false)
        _ = try await events.first("renewed") { event -> Bool? in
            if case .renewed = event { return true }
            return nil
        }
        #expect(session.leaseState == .active)
        client.close()
        try await proxy.stop()
        try await cluster.stop()
    }

    @Test("a client cut off past its TTL finds its session expired and fenced when it comes back")
    func expired() async throws {
        let cluster = try await TestCluster.start()
        let proxy = try await FaultProxy.start(to: cluster.port)
        let client = try await cluster.client("gpu-0") { Self.throughProxy(&$0, proxy) }
        let session = try await client.openSession(ttl: .milliseconds(300))
        let events = EventLog(session)
        proxy.refuse(true)
        proxy.cutAll()
        let admin = try await cluster.client()
        try await eventually("the server expires the session") {
            try await admin.sessions().isEmpty
        }
        proxy.refuse(false)
        let ended = try await events.first("ended") { event -> LeaseholdError?? in
            if case .ended(let error) = event { return .some(error) }
            return nil
        }
        #expect(ended?.code == .sessionExpired)
        #expect(events.all.contains { if case .jeopardy = $0 { true } else { false } })
        client.close()
        admin.close()
        try await proxy.stop()
        try await cluster.stop()
    }
    @Test("a session resumed by another process is superseded: the first client ends it (permissionDenied) instead of resuming it back, and its other sessions go on")
    func superseded() async throws {
        let cluster = try await TestCluster.start()
        let first = try await cluster.client("gpu-0")
        let taken = try await first.openSession(ttl: .seconds(10))
        let kept = try await first.openSession(ttl: .seconds(10))
        let events = EventLog(taken)
        let inode = try await taken.createInode()
        let second = try await cluster.client("gpu-0")
        let resumed = try await second.resumeSession(taken.id, secret: taken.secret)
        let ended = try await events.first("ended") { event -> LeaseholdError?? in
            if case .ended(let error) = event { return .some(error) }
            return nil
        }
        #expect(ended?.code == .permissionDenied && ended?.message.contains("superseded") == true, "\(String(describing: ended))")
        #expect(taken.leaseState == .ended)
        // The first client reconnected for its other session without taking the first back.
        _ = try await kept.createInode()
        try await Task.sleep(for: .milliseconds(300))
        _ = try await resumed.allocate(inode, ByteRange(offset: 0, length: 4_096))
        let admin = try await cluster.client()
        let listed = try await admin.sessions()
        #expect(listed.count == 2 && listed.allSatisfy(\.connected))
        for client in [first, second, admin] { client.close() }
        try await cluster.stop()
    }
}
