import Foundation
@testable import LeaseholdClient
import LeaseholdCore
import LeaseholdTestSupport
import Testing

@Suite("Server and client: smoke", .timeLimit(.minutes(1)))
struct SmokeTests {
    @Test("a client pins, a second client truncates under busy, the first gets a pin recall")
    func seed() async throws {
        let cluster = try await TestCluster.start()
        let a = try await cluster.client("host-a")
        let b = try await cluster.client("host-b")
        let sessionA = try await a.openSession(name: "a", ttl: .seconds(5))
        let eventsA = EventLog(sessionA)
        let sessionB = try await b.openSession(name: "b", ttl: .seconds(5))
        let inode = try await sessionA.createInode()
        _ = try await sessionA.allocate(inode, ByteRange(offset: 0, length: 16 * 4_096))
        let pin = try await sessionA.pin(inode, ranges: [ByteRange(offset: 0, length: 4 * 4_096)], kind: .longTerm)
        let change = try await sessionB.truncate(inode, size: 0)
        #expect(change.busyBlocks == 4)
        #expect(change.freedBlocks == 12)
        #expect(change.recalledPins == [pin.pin])
        let recall = try await eventsA.first("pin recall") { event -> PinRecall? in
            if case .pinRecall(let recall) = event { return recall }
            return nil
        }
        #expect(recall.notice.pin == pin.pin)
        try await recall.unpin()
        let admin = try await cluster.client()
        try await eventually("busy blocks free after the release delay") {
            try await admin.status().volume.busyBlocks == 0
        }
        #expect(try await admin.checkInvariants().isEmpty)
        a.close()
        b.close()
        admin.close()
        try await cluster.stop()
    }
}
