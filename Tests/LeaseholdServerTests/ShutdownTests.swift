import Foundation
import LeaseholdClient
import LeaseholdCore
import LeaseholdTestSupport
import LeaseholdMessages
import LeaseholdWire
import Testing

/// A graceful shutdown answers every request it accepted: committed ones with their
/// result, waiting ones with `unavailable`; then it closes the connections.
@Suite("Graceful shutdown", .timeLimit(.minutes(1)))
struct ShutdownTests {
    func request(_ session: SessionID?, _ tag: SlotTag?, _ command: WireCommand) throws -> WireRequest {
        try WireRequestBody(session: session, tag: tag, command: command).wire()
    }

    @Test("in-flight requests are answered, a waiting truncate gets unavailable, and the connection is closed")
    func drains() async throws {
        let cluster = try await TestCluster.start()
        let holder = try await cluster.client("gpu-0")
        let admin = try await cluster.client()
        let session = try await holder.openSession(ttl: .seconds(5))
        let inode = try await session.createInode()
        _ = try await session.pin(inode, ranges: [ByteRange(offset: 0, length: 4_096)], kind: .shortTerm(ttl: .seconds(20)), allocate: true)

        let raw = try await RawConnection(cluster: cluster)
        try await raw.hello()
        try await raw.send(EnvelopeCodec.request(id: 2, try self.request(nil, nil, .openSession(name: "raw", ttl: .seconds(5), slots: 8))))
        let opened = try #require(try await raw.response(to: 2))
        let rawSession = SessionID(rawValue: opened.sessionOpened.session)
        // A truncate that waits for the short-term pin.
        try await raw.send(
            EnvelopeCodec.request(
                id: 3,
                try self.request(rawSession, SlotTag(slot: 0, sequence: 1), .core(.truncate(inode, size: 0, policy: .wait(timeout: .seconds(30)), expectedGeneration: nil)))
            )
        )
        try await eventually("the truncate is waiting") { try await admin.status().volume.pendingBreaks == 1 }
        // A burst of pipelined requests, then the shutdown right behind them.
        for index in 0..<20 {
            try await raw.send(
                EnvelopeCodec.request(id: 10 + UInt64(index), try self.request(rawSession, SlotTag(slot: 1 + UInt32(index % 7), sequence: 1 + UInt64(index / 7)), .core(.createInode)))
            )
        }
        // (The Hello and openSession answers are envelopes too: wait for the burst's own.)
        try await eventually("the burst's first requests are answered") { try raw.envelopes.response(to: 11) != nil }
        cluster.server.shutdown()
        let (envelopes, closed) = try await raw.readUntilClosed()
        #expect(closed)
        let waiting = try #require(envelopes.response(to: 3))
        #expect(waiting.error.code == .unavailable)
        // Every request the server read is answered: created, or unavailable once the
        // shutdown began. Frames it had not read yet when it closed the connection (the
        // end of the burst, on a loaded machine) were never accepted and get nothing; a
        // client retries them after the restart with the same slot and sequence. So the
        // answered requests are a prefix of the burst, and the first ones are in it.
        var answered = 0
        while answered < 20, let response = envelopes.response(to: 10 + UInt64(answered)) {
            switch response.result {
            case .inodeCreated?: break
            case .error(let error)?: #expect(error.code == .unavailable, "request \(10 + answered)")
            default: Issue.record("unexpected response \(response)")
            }
            answered += 1
        }
        #expect(answered >= 2)
        for index in answered..<20 {
            #expect(envelopes.response(to: 10 + UInt64(index)) == nil, "request \(10 + index) was answered after request \(10 + answered) was not")
        }
        #expect(envelopes.closing?.reason == .shuttingDown)
        holder.close()
        admin.close()
        try await cluster.running.value
        await raw.close()
    }
}

@Suite("Graceful shutdown with idle peers", .timeLimit(.minutes(1)))
struct IdleShutdownTests {
    @Test("a peer that connected but never said Hello does not hold the shutdown up")
    func silentPeer() async throws {
        let cluster = try await TestCluster.start()
        let raw = try await RawConnection(cluster: cluster)
        let started = ContinuousClock.now
        try await cluster.stop()
        #expect(ContinuousClock.now - started < .seconds(4))
        try await eventually("the silent peer is closed") { raw.closed }
        await raw.close()
    }

    @Test("a peer that never says Hello is closed after helloTimeout while the server keeps serving")
    func helloTimeout() async throws {
        let cluster = try await TestCluster.start { $0.helloTimeout = .milliseconds(300) }
        let raw = try await RawConnection(cluster: cluster)
        let client = try await cluster.client()
        try await eventually("the silent peer is closed", timeout: .seconds(5)) { raw.closed }
        // An established client is not subject to it.
        try await Task.sleep(for: .milliseconds(400))
        #expect(try await client.status().volume.epoch == 1)
        client.close()
        await raw.close()
        try await cluster.stop()
    }
}
