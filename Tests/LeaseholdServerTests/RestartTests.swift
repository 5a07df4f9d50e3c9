import Foundation
import LeaseholdClient
import LeaseholdCore
import LeaseholdJournal
import LeaseholdTestSupport
import Testing

/// A server stopped and started again on the same journal sink, whichever sink it is:
/// the restart loses nothing and clients carry on by themselves.
@Suite("Restart on the same journal sink", .timeLimit(.minutes(1)))
struct RestartTests {
    enum Kind: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case memory
        case sqlite

        var testDescription: String { self.rawValue }
    }

    @Test("sessions, pins and tokens survive; the client resumes on its own; the epoch goes up", arguments: Kind.allCases)
    func restart(kind: Kind) async throws {
        let cluster = try await TestCluster.start(sink: kind == .memory ? InMemorySink() : nil)
        let client = try await cluster.client("gpu-0")
        let session = try await client.openSession(ttl: .seconds(5))
        let events = EventLog(session)
        let inode = try await session.createInode()
        let range = ByteRange(offset: 0, length: 4_096)
        let first = try await session.pin(inode, ranges: [range], kind: .longTerm, allocate: true)
        let epoch = cluster.server.epoch

        let restarted = try await cluster.restarted()
        #expect(restarted.server.epoch == epoch + 1)
        _ = try await events.first("resumed after the restart") { event -> Bool? in
            if case .resumed = event { return true }
            return nil
        }
        let admin = try await restarted.client()
        #expect(try await admin.pins().map(\.pin) == [first.pin])
        #expect(try await admin.sessions().map(\.info.session) == [session.id])
        let second = try await session.pin(inode, ranges: [range], kind: .longTerm)
        #expect(second.token > first.token, "fencing tokens go on growing across the restart")
        #expect(second.pin > first.pin)
        try await session.unpin(first.pin)
        try await session.unpin(second.pin)
        #expect(try await admin.pins().isEmpty)
        #expect(try await admin.checkInvariants().isEmpty)
        admin.close()
        client.close()
        try await restarted.stop()
    }
}
