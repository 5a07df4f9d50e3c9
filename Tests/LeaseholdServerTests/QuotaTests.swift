import Foundation
import LeaseholdClient
import LeaseholdCore
import LeaseholdMessages
import LeaseholdWire
import Testing

/// Quotas are `resourceExhausted` naming the limit, and refuse only the request over it.
@Suite("Quotas over the wire", .timeLimit(.minutes(1)))
struct QuotaTests {
    @Test("sessions per identity and pins per session")
    func coreQuotas() async throws {
        let cluster = try await TestCluster.start {
            $0.coordinator.quotas.sessionsPerIdentity = 2
            $0.coordinator.quotas.pinsPerSession = 1
        }
        let client = try await cluster.client("worker")
        let session = try await client.openSession(ttl: .seconds(5))
        _ = try await client.openSession(ttl: .seconds(5))
        let third = await #expect(throws: LeaseholdError.self) { _ = try await client.openSession(ttl: .seconds(5)) }
        #expect(third?.code == .resourceExhausted)
        #expect(third?.details.limit == "sessionsPerIdentity")
        let inode = try await session.createInode()
        _ = try await session.pin(inode, ranges: [ByteRange(offset: 0, length: 4_096)], kind: .longTerm, allocate: true)
        let second = await #expect(throws: LeaseholdError.self) {
            _ = try await session.pin(inode, ranges: [ByteRange(offset: 4_096, length: 4_096)], kind: .longTerm, allocate: true)
        }
        #expect(second?.details.limit == "pinsPerSession")
        client.close()
        try await cluster.stop()
    }

    @Test("requests beyond the in-flight limit of a connection are refused; the connection goes on")
    func inFlight() async throws {
        let cluster = try await TestCluster.start { $0.maxInFlightPerConnection = 2 }
        let holder = try await cluster.client("gpu-0")
        let session = try await holder.openSession(ttl: .seconds(5))
        let inode = try await session.createInode()
        _ = try await session.pin(inode, ranges: [ByteRange(offset: 0, length: 4_096)], kind: .shortTerm(ttl: .seconds(20)), allocate: true)

        let raw = try await RawConnection(cluster: cluster)
        try await raw.hello()
        try await raw.send(EnvelopeCodec.request(id: 2, try WireRequestBody(command: .openSession(name: "raw", ttl: .seconds(5), slots: 4)).wire()))
        let rawSession = SessionID(rawValue: try #require(try await raw.response(to: 2)).sessionOpened.session)
        // Two truncates that wait for the short-term pin fill the connection's quota.
        for slot in 0..<2 {
            let body = WireRequestBody(
                session: rawSession,
                tag: SlotTag(slot: UInt32(slot), sequence: 1),
                command: .core(.truncate(inode, size: 0, policy: .wait(timeout: .seconds(30)), expectedGeneration: nil))
            )
            try await raw.send(EnvelopeCodec.request(id: 10 + UInt64(slot), try body.wire()))
        }
        var status = WireRequest()
        status.session = rawSession.rawValue
        status.keepAlive = .init()
        try await raw.send(EnvelopeCodec.request(id: 20, status))
        let refused = try #require(try await raw.response(to: 20))
        #expect(refused.error.code == .resourceExhausted)
        #expect(refused.error.details.limit == "maxInFlightPerConnection")
        // The waits end when the pin goes; then the connection takes requests again.
        try await session.close()
        _ = try #require(try await raw.response(to: 10))
        _ = try #require(try await raw.response(to: 11))
        try await raw.send(EnvelopeCodec.request(id: 21, status))
        #expect(try #require(try await raw.response(to: 21)).keptAlive.ttlNanos > 0)
        await raw.close()
        holder.close()
        try await cluster.stop()
    }
}
