import Foundation
import LeaseholdClient
import LeaseholdCore
import LeaseholdStore
import Testing

/// Every operation of the protocol through the client library against a real server.
@Suite("Every operation end to end", .timeLimit(.minutes(1)))
struct OperationsTests {
    let block: UInt64 = 4_096

    func bytes(_ start: UInt64, _ count: UInt64) -> ByteRange {
        ByteRange(offset: start * self.block, length: count * self.block)
    }

    @Test("inodes, allocation, pins, truncate and punch under every policy, layouts, keepalive, close")
    func sessionOperations() async throws {
        // deleteInode recalls the long-term pins and the test never answers: the session
        // must not be evicted for it before it closes, however slow the machine is.
        let cluster = try await TestCluster.start { $0.coordinator.recallTimeout = .seconds(60) }
        let client = try await cluster.client("worker")
        let admin = try await cluster.client()
        let session = try await client.openSession(name: "ops", ttl: .seconds(5), slots: 4)
        #expect(session.ttl == .seconds(5))
        #expect(try await session.keepAlive() == .seconds(5))

        let inode = try await session.createInode()
        let allocation = try await session.allocate(inode, self.bytes(0, 16))
        #expect(allocation.size == 16 * self.block)
        #expect(allocation.extents.reduce(0) { $0 + $1.count } == 16)
        #expect(allocation.extents.allSatisfy { !$0.written })
        let marked = try await session.markWritten(inode, self.bytes(0, 4))
        #expect(marked.blocks == 4)

        // Pins: short-term with expiry, long-term, several ranges at once, allocate.
        let short = try await session.pin(inode, ranges: [self.bytes(0, 2)], kind: .shortTerm(ttl: .seconds(10)))
        #expect(short.expiresIn == .seconds(10))
        let long = try await session.pin(inode, ranges: [self.bytes(2, 1), self.bytes(5, 1)], kind: .longTerm)
        #expect(long.extents.count == 2)
        #expect(long.token > short.token)
        let hole = await #expect(throws: LeaseholdError.self) { _ = try await session.pin(inode, ranges: [self.bytes(20, 1)], kind: .longTerm) }
        #expect(hole?.code == .notMapped)
        #expect(hole?.details.firstHoleOffset == 20 * self.block)
        let filled = try await session.pin(inode, ranges: [self.bytes(20, 1)], kind: .longTerm, allocate: true)
        #expect(filled.allocation != nil)

        // fail: refused, nothing changes.
        let refused = await #expect(throws: LeaseholdError.self) { _ = try await session.truncate(inode, size: 0, policy: .fail) }
        #expect(refused?.code == .busy)
        #expect(Set(refused?.details.pins ?? []) == [short.pin, long.pin, filled.pin])
        // busy: pinned blocks go busy; punch inside a block range.
        let punched = try await session.punchHole(inode, self.bytes(8, 4), policy: .busy)
        #expect(punched.freedBlocks == 4)
        // quarantine: the pinned blocks move to a kept quarantine inode.
        let quarantined = try await session.punchHole(inode, self.bytes(5, 1), policy: .quarantine(keep: true))
        let quarantine = try #require(quarantined.quarantineInode)
        #expect(quarantined.quarantinedBlocks == 1)
        // wait: times out while the short-term pin lives, leaving everything unchanged.
        let before = try await admin.inode(inode).info
        let timedOut = await #expect(throws: LeaseholdError.self) {
            _ = try await session.truncate(inode, size: 0, policy: .wait(timeout: .milliseconds(200)))
        }
        #expect(timedOut?.code == .timedOut)
        #expect(try await admin.inode(inode).info.generation == before.generation)
        try await session.unpin(short.pin)
        let stale = await #expect(throws: LeaseholdError.self) {
            _ = try await session.truncate(inode, size: 0, policy: .busy, expectedGeneration: before.generation - 1)
        }
        #expect(stale?.code == .staleGeneration)

        // Layouts: get, commit, partial and whole return.
        let other = try await session.createInode()
        let holes = try await session.layoutGet(other, ranges: [self.bytes(0, 4)], iomode: .readWrite)
        #expect(holes.extents.allSatisfy { $0.state == .hole })
        // Allocation is a mapping change: it returns the caller's own layout over it.
        let allocated = try await session.allocate(other, self.bytes(0, 4))
        #expect(allocated.returnedLayouts == [holes.stateID.id])
        let layout = try await session.layoutGet(other, ranges: [self.bytes(0, 4)], iomode: .readWrite)
        #expect(layout.extents.allSatisfy { $0.state == .unwritten })
        let committed = try await session.layoutCommit(layout.stateID, newSize: 3 * self.block, written: [self.bytes(0, 2)])
        #expect(committed.size == 4 * self.block)
        let partly = try await session.layoutReturn(layout.stateID, ranges: [self.bytes(0, 2)])
        #expect(partly.remaining == [BlockRange(start: 2, end: 4)])
        let whole = try await session.layoutReturn(partly.stateID)
        #expect(whole.remaining.isEmpty)

        // Delete with busy policy; the long-term pins are recalled.
        let deleted = try await session.deleteInode(inode)
        #expect(deleted.deleted)
        #expect(Set(deleted.recalledPins) == [long.pin, filled.pin])
        let gone = await #expect(throws: LeaseholdError.self) { _ = try await session.allocate(inode, self.bytes(0, 1)) }
        #expect(gone?.code == .notFound)

        #expect(try await admin.deleteQuarantineInode(quarantine) == 1)
        let closed = try await session.close()
        #expect(Set(closed.unpinned) == [long.pin, filled.pin])
        #expect(session.leaseState == .ended)
        let after = await #expect(throws: LeaseholdError.self) { _ = try await session.createInode() }
        #expect(after?.code == .sessionExpired)
        #expect(try await admin.checkInvariants().isEmpty)
        client.close()
        admin.close()
        try await cluster.stop()
    }

    @Test("admin queries and interventions, events, pin setting, snapshots")
    func adminOperations() async throws {
        let cluster = try await TestCluster.start()
        let admin = try await cluster.client()
        let client = try await cluster.client("worker")
        var watch = admin.watchEvents().makeAsyncIterator()
        let session = try await client.openSession(name: "victim", ttl: .seconds(5))
        let inode = try await session.createInode()
        let pin = try await session.pin(inode, ranges: [self.bytes(0, 2)], kind: .longTerm, allocate: true)
        let layout = try await session.layoutGet(inode, ranges: [self.bytes(0, 2)], iomode: .read)

        let status = try await admin.status()
        #expect(status.volume.sessions == 1)
        #expect(status.volume.pins == 1)
        #expect(status.volume.layouts == 1)
        #expect(status.volume.mappedBlocks == 2)
        #expect(status.volume.freeBlocks == (1 << 16) - 2)
        #expect(status.uptime > .zero)
        #expect(try await admin.pins().map(\.pin) == [pin.pin])
        #expect(try await admin.layouts().first?.identity == "worker")
        let listed = try #require(try await admin.sessions().first)
        #expect(listed.info.name == "victim")
        #expect(listed.connected)
        #expect(try await admin.inodes().map(\.inode) == [inode])
        #expect(try await admin.inode(inode).pins.map(\.pin) == [pin.pin])
        #expect(try await admin.targets().isEmpty)

        var kinds: [String] = []
        while kinds.count < 4, let event = try await watch.next() { kinds.append("\(event.kind)".prefix { $0 != "(" }.description) }
        #expect(kinds == ["sessionOpened", "inodeCreated", "allocated", "pinGranted"])
        #expect(try await admin.events(after: 0, limit: 2).count == 2)

        // Truncate under busy, then force the busy extent free.
        try await session.layoutReturn(layout.stateID)
        let breaker = try await admin.openSession(ttl: .seconds(5))
        _ = try await breaker.truncate(inode, size: 0)
        let busy = try await admin.busyExtents()
        #expect(busy.first?.pins.first?.identity == "worker")
        #expect(try await admin.forceRelease(busy[0].range) == 2)
        #expect(try await admin.status().volume.busyBlocks == 0)

        let fence = try await admin.evict(session.id)
        #expect(fence.reason == .admin)
        #expect(try await admin.sessions().map(\.info.session) == [breaker.id])

        try await admin.setPinSetting(.deny)
        let denied = await #expect(throws: LeaseholdError.self) { _ = try await breaker.pin(inode, ranges: [self.bytes(0, 1)], kind: .longTerm, allocate: true) }
        #expect(denied?.code == .permissionDenied)
        try await admin.setPinSetting(.allow)

        let path = cluster.directory + "/copy.db"
        let size = try await admin.snapshot(to: path)
        #expect(size > 0)
        let copy = try Store(path: path)
        #expect(try copy.loadState().inodes.count == 1)
        try copy.close()
        #expect(try await admin.checkInvariants().isEmpty)
        admin.close()
        client.close()
        try await cluster.stop()
    }
}
