import Foundation
@testable import LeaseholdClient
import LeaseholdCore
import Testing

/// Layout recalls across two clients: answered, prolonged once, and ignored until the
/// layout is revoked and its session evicted with a `fenced` push.
@Suite("Recalls end to end", .timeLimit(.minutes(1)))
struct RecallTests {
    struct Pair {
        let cluster: TestCluster
        let holder: LeaseholdClient
        let breaker: LeaseholdClient
        let held: LeaseholdSession
        let breaking: LeaseholdSession
        let events: EventLog
        let inode: InodeID
        let layout: LayoutGrantReply

        func stop() async throws {
            self.holder.close()
            self.breaker.close()
            try await self.cluster.stop()
        }
    }

    func setUp(recallTimeout: Duration = .seconds(2)) async throws -> Pair {
        let cluster = try await TestCluster.start { $0.coordinator.recallTimeout = recallTimeout }
        let holder = try await cluster.client("nic-1")
        let breaker = try await cluster.client("truncater")
        let held = try await holder.openSession(name: "holder", ttl: .seconds(5))
        let breaking = try await breaker.openSession(name: "breaker", ttl: .seconds(5))
        let events = EventLog(held)
        let inode = try await breaking.createInode()
        _ = try await breaking.allocate(inode, ByteRange(offset: 0, length: 8 * 4_096))
        let layout = try await held.layoutGet(inode, ranges: [ByteRange(offset: 0, length: 8 * 4_096)], iomode: .readWrite)
        return Pair(cluster: cluster, holder: holder, breaker: breaker, held: held, breaking: breaking, events: events, inode: inode, layout: layout)
    }

    func recall(_ events: EventLog) async throws -> LayoutRecall {
        try await events.first("a layout recall") { event -> LayoutRecall? in
            if case .layoutRecall(let recall) = event { return recall }
            return nil
        }
    }

    @Test("a recall answered by returning the range lets the truncate commit")
    func answered() async throws {
        let pair = try await self.setUp()
        async let truncated = pair.breaking.truncate(pair.inode, size: 4 * 4_096)
        let recall = try await self.recall(pair.events)
        #expect(recall.notice.stateID.id == pair.layout.stateID.id)
        #expect(recall.notice.range == BlockRange(start: 4, end: 8))
        try await recall.returnLayout()
        let change = try await truncated
        #expect(change.returnedLayouts == [pair.layout.stateID.id])
        #expect(change.revokedLayouts.isEmpty)
        #expect(change.freedBlocks == 4)
        #expect(pair.held.leaseState == .active)
        try await pair.stop()
    }

    @Test("a recall prolonged once outlives its first deadline; a second prolong is refused")
    func prolonged() async throws {
        let pair = try await self.setUp(recallTimeout: .seconds(1))
        let started = ContinuousClock.now
        async let truncated = pair.breaking.truncate(pair.inode, size: 0)
        let recall = try await self.recall(pair.events)
        let remaining = try await recall.prolong()
        #expect(remaining > .seconds(1))
        let again = await #expect(throws: LeaseholdError.self) { try await recall.prolong() }
        #expect(again?.code == .invalidArgument)
        // Past the first deadline (1 s), well within the prolonged one (2 s).
        try await Task.sleep(until: started + .milliseconds(1_200), clock: .continuous)
        try await recall.returnLayout()
        let change = try await truncated
        #expect(change.returnedLayouts == [pair.layout.stateID.id])
        #expect(change.evictedSessions.isEmpty)
        try await pair.stop()
    }

    @Test("an ignored recall revokes the layout and evicts the holder, which is told it is fenced")
    func ignored() async throws {
        let pair = try await self.setUp()
        let change = try await pair.breaking.truncate(pair.inode, size: 0)
        #expect(change.revokedLayouts == [pair.layout.stateID.id])
        #expect(change.evictedSessions == [pair.held.id])
        let notice = try await pair.events.first("the fenced push") { event -> FenceNotice? in
            if case .fenced(let notice) = event { return notice }
            return nil
        }
        #expect(notice.reason == .missedRecall)
        #expect(notice.maxToken >= pair.layout.token)
        #expect(pair.held.leaseState == .ended)
        let error = await #expect(throws: LeaseholdError.self) { _ = try await pair.held.createInode() }
        #expect(error?.code == .fenced)
        try await pair.stop()
    }
}
