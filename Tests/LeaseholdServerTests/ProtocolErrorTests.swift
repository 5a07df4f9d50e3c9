import Foundation
import LeaseholdClient
import LeaseholdCore
import LeaseholdTestSupport
import LeaseholdMessages
import LeaseholdWire
import Testing

/// Malformed input closes only the connection that sent it, with a message naming the
/// problem, while another client goes on working.
@Suite("Protocol errors", .timeLimit(.minutes(1)))
struct ProtocolErrorTests {
    /// Runs `probe` on a raw connection while a library client holds a session, then
    /// checks the client still works.
    func probe(_ body: (RawConnection) async throws -> Void) async throws {
        let cluster = try await TestCluster.start()
        let bystander = try await cluster.client("bystander")
        let session = try await bystander.openSession(ttl: .seconds(5))
        let inode = try await session.createInode()
        let raw = try await RawConnection(cluster: cluster)
        try await body(raw)
        await raw.close()
        _ = try await session.allocate(inode, ByteRange(offset: 0, length: 4_096))
        #expect(try await session.pin(inode, ranges: [ByteRange(offset: 0, length: 4_096)], kind: .longTerm).extents.count == 1)
        bystander.close()
        try await cluster.stop()
    }

    @Test("an oversize frame is refused from its length prefix with a protocolError Closing")
    func oversize() async throws {
        try await self.probe { raw in
            try await raw.hello()
            try await raw.write([0x7F, 0xFF, 0xFF, 0xFF, 1, 2, 3])
            let (envelopes, closed) = try await raw.readUntilClosed()
            #expect(closed)
            #expect(envelopes.response(to: 1)?.helloOk.protocolMajor == 1)
            let closing = try #require(envelopes.closing)
            #expect(closing.reason == .protocolError)
            #expect(closing.message.contains("above the limit"))
        }
    }

    @Test("a request id already in flight on the connection is a protocolError Closing; the waiting request's effects stay as they were")
    func duplicateRequestID() async throws {
        let cluster = try await TestCluster.start()
        let holder = try await cluster.client("gpu-0")
        let admin = try await cluster.client()
        let session = try await holder.openSession(ttl: .seconds(5))
        let inode = try await session.createInode()
        _ = try await session.pin(inode, ranges: [ByteRange(offset: 0, length: 4_096)], kind: .shortTerm(ttl: .seconds(20)), allocate: true)
        let raw = try await RawConnection(cluster: cluster)
        try await raw.hello()
        func request(_ session: SessionID?, _ tag: SlotTag?, _ command: WireCommand) throws -> WireRequest {
            try WireRequestBody(session: session, tag: tag, command: command).wire()
        }
        try await raw.send(EnvelopeCodec.request(id: 2, try request(nil, nil, .openSession(name: "raw", ttl: .seconds(5), slots: 4))))
        let rawSession = SessionID(rawValue: try #require(try await raw.response(to: 2)).sessionOpened.session)
        // Request 3 waits for the short-term pin; a second request 3 comes while it does.
        let truncate = WireCommand.core(.truncate(inode, size: 0, policy: .wait(timeout: .seconds(30)), expectedGeneration: nil))
        try await raw.send(EnvelopeCodec.request(id: 3, try request(rawSession, SlotTag(slot: 0, sequence: 1), truncate)))
        try await eventually("the truncate is waiting") { try await admin.status().volume.pendingBreaks == 1 }
        try await raw.send(EnvelopeCodec.request(id: 3, try request(rawSession, SlotTag(slot: 1, sequence: 1), .core(.createInode))))
        let (envelopes, closed) = try await raw.readUntilClosed()
        #expect(closed)
        let closing = try #require(envelopes.closing)
        #expect(closing.reason == .protocolError)
        #expect(closing.message.contains("request id 3 is already in flight"))
        #expect(envelopes.response(to: 3) == nil, "neither request 3 was answered on the closed connection")
        // The second request did nothing; the closed connection's wait was cancelled.
        #expect(try await admin.inodes().count == 1)
        try await eventually("the wait ended with its connection") { try await admin.status().volume.pendingBreaks == 0 }
        await raw.close()
        holder.close()
        admin.close()
        try await cluster.stop()
    }

    @Test("an error quoting a name as long as a frame allows quotes only a prefix of it")
    func boundedErrorMessage() async throws {
        // At the frame limit, made small (the least leaseholdd accepts): a 4 MiB frame
        // costs seconds of a debug build's CPU on the shared test pool.
        let cluster = try await TestCluster.start { $0.maxFrameBytes = 64 * 1_024 }
        let admin = try await cluster.client()
        let name = String(repeating: "t", count: 64 * 1_024 - 1_024)
        let error = await #expect(throws: LeaseholdError.self) { try await admin.deregisterTarget(name) }
        #expect(error?.code == .notFound)
        #expect((error?.message.utf8.count ?? .max) <= LeaseholdError.maxMessageBytes)
        #expect(error?.message.contains("tttt") == true)
        // The connection is fine and so is the server.
        #expect(try await admin.targets().isEmpty)
        admin.close()
        try await cluster.stop()
    }

    @Test("garbage bytes in a frame are a protocolError Closing")
    func garbage() async throws {
        try await self.probe { raw in
            try await raw.hello()
            try await raw.write([0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF])
            let (envelopes, closed) = try await raw.readUntilClosed()
            #expect(closed)
            let closing = try #require(envelopes.closing)
            #expect(closing.reason == .protocolError)
            #expect(closing.message.contains("not a protobuf Envelope"))
        }
    }

    @Test("a truncated frame followed by a close harms nobody else")
    func truncated() async throws {
        try await self.probe { raw in
            try await raw.hello()
            try await raw.write([0, 0, 0, 100, 1, 2, 3])
            try await raw.channel.close()
        }
    }

    @Test("a request in a session that expired is answered sessionExpired, not 'not attached', and the connection stays")
    func requestInAnExpiredSession() async throws {
        let cluster = try await TestCluster.start()
        let raw = try await RawConnection(cluster: cluster, identity: "admin")
        try await raw.hello()
        var open = WireRequest()
        open.openSession.name = "lapses"
        open.openSession.ttlNanos = 100_000_000
        try await raw.send(EnvelopeCodec.request(id: 2, open))
        let opened = try #require(try await raw.response(to: 2))
        let session = opened.sessionOpened.session
        #expect(session != 0)
        let admin = try await cluster.client()
        try await eventually("the session expires") { try await admin.status().volume.sessions == 0 }
        var keepAlive = WireRequest()
        keepAlive.session = session
        keepAlive.keepAlive = Leasehold_V1_KeepAlive()
        try await raw.send(EnvelopeCodec.request(id: 3, keepAlive))
        let answer = try #require(try await raw.response(to: 3))
        #expect(LeaseholdError(wire: answer.error).code == .sessionExpired, "\(answer.error.message)")
        #expect(!raw.closed)
        admin.close()
        await raw.close()
        try await cluster.stop()
    }

    @Test("a request without a command this server knows is answered with protocolError, then closed")
    func unknownMessage() async throws {
        try await self.probe { raw in
            try await raw.hello()
            var request = WireRequest()
            request.session = 1
            // Field 1000 (unknown to this version) carrying an empty message.
            request.unknownFields = try WireRequest(serializedBytes: [0xC2, 0x3E, 0x00]).unknownFields
            try await raw.send(EnvelopeCodec.request(id: 7, request))
            let (envelopes, closed) = try await raw.readUntilClosed()
            #expect(closed)
            let response = try #require(envelopes.response(to: 7))
            #expect(response.error.code == .protocolError)
            #expect(response.error.message.contains("no command"))
        }
    }

    @Test("a wrong protocol version is refused with a clear message")
    func wrongVersion() async throws {
        try await self.probe { raw in
            try await raw.hello(major: 2)
            let (envelopes, closed) = try await raw.readUntilClosed()
            #expect(closed)
            let response = try #require(envelopes.response(to: 1))
            #expect(response.error.code == .protocolError)
            #expect(response.error.message.contains("protocol version 2.0 is not supported"))
        }
    }

    @Test("a first request that is not Hello is refused")
    func noHello() async throws {
        try await self.probe { raw in
            var request = WireRequest()
            request.status = .init()
            try await raw.send(EnvelopeCodec.request(id: 3, request))
            let (envelopes, closed) = try await raw.readUntilClosed()
            #expect(closed)
            #expect(envelopes.closing?.message.contains("must be Hello") == true)
        }
    }

    @Test("bad values get a typed error and the connection stays usable")
    func badValues() async throws {
        try await self.probe { raw in
            try await raw.hello()
            var request = WireRequest()
            request.forceRelease.range.start = 9
            request.forceRelease.range.end = 3
            try await raw.send(EnvelopeCodec.request(id: 2, request))
            let bad = try #require(try await raw.response(to: 2))
            #expect(bad.error.code == .invalidArgument)
            var status = WireRequest()
            status.status = .init()
            try await raw.send(EnvelopeCodec.request(id: 3, status))
            let good = try #require(try await raw.response(to: 3))
            #expect(good.volumeStatus.blockCount == 1 << 16)
        }
    }
}
