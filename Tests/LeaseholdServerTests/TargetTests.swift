import Foundation
import LeaseholdClient
import LeaseholdCore
import LeaseholdTestSupport
import Testing

/// Storage targets follow the fence feed; an evicted session's blocks stay busy until
/// every registered target has acknowledged its fence, then for the release delay.
@Suite("Storage targets", .timeLimit(.minutes(1)))
struct TargetTests {
    @Test("a target that has not acknowledged a fence keeps the evicted session's blocks busy until it does")
    func fenceHoldsBlocks() async throws {
        let cluster = try await TestCluster.start()
        let target = try await cluster.client("target-1")
        #expect(target.server.isTarget)
        let admin = try await cluster.client()
        let holder = try await cluster.client("gpu-0")
        let breaker = try await cluster.client("truncater")
        var feed = target.fenceFeed().makeAsyncIterator()
        try await eventually("the target is registered") { try await admin.targets().map(\.name) == ["target-1"] }

        let session = try await holder.openSession(ttl: .seconds(5))
        let inode = try await session.createInode()
        let grant = try await session.pin(inode, ranges: [ByteRange(offset: 0, length: 3 * 4_096)], kind: .shortTerm(ttl: .seconds(20)), allocate: true)
        let breaking = try await breaker.openSession(ttl: .seconds(5))
        let change = try await breaking.truncate(inode, size: 0)
        #expect(change.busyBlocks == 3)

        let fence = try await admin.evict(session.id)
        #expect(fence.session == session.id)
        #expect(fence.maxToken >= grant.token)
        let delivered = try #require(try await feed.next())
        #expect(delivered == fence)

        // The pin is gone, but the fence holds the blocks for the silent target.
        let busy = try await admin.busyExtents()
        #expect(busy.count == 1)
        #expect(busy.first?.pins.isEmpty == true)
        #expect(busy.first?.fences.first?.waitingForTargets == ["target-1"])
        try await Task.sleep(for: .milliseconds(400))  // four release delays
        #expect(try await admin.status().volume.busyBlocks == 3)
        #expect(try await admin.targets().first?.lag == 1)

        let acknowledged = try await target.acknowledgeFence(fence.revision)
        #expect(acknowledged.acknowledged == fence.revision)
        try await eventually("the blocks go free after the release delay") {
            try await admin.status().volume.busyBlocks == 0
        }
        #expect(try await admin.checkInvariants().isEmpty)
        for client in [target, admin, holder, breaker] { client.close() }
        try await cluster.stop()
    }

    @Test("a target that reconnects reads the feed from its last revision; a deregistered target stops holding blocks")
    func reconnectAndDeregister() async throws {
        let cluster = try await TestCluster.start()
        let admin = try await cluster.client()
        let first = try await cluster.client("target-1")
        var feed = first.fenceFeed().makeAsyncIterator()
        try await eventually("registered") { try await admin.targets().count == 1 }
        let user = try await cluster.client("gpu-0")
        let a = try await user.openSession(ttl: .seconds(5))
        let b = try await user.openSession(ttl: .seconds(5))
        let fenceA = try await admin.evict(a.id)
        #expect(try await feed.next() == fenceA)
        first.close()

        let fenceB = try await admin.evict(b.id)
        let again = try await cluster.client("target-1")
        let fences = try await again.readFences(after: fenceA.revision)
        #expect(fences == [fenceB])
        var resumed = again.fenceFeed(after: fenceA.revision).makeAsyncIterator()
        #expect(try await resumed.next() == fenceB)

        try await admin.deregisterTarget("target-1")
        try await eventually("no target left") { try await admin.targets().isEmpty }
        try await eventually("both fences resolve without the target") {
            try await admin.status().volume.unresolvedFences == 0
        }
        for client in [admin, again, user] { client.close() }
        try await cluster.stop()
    }
}
