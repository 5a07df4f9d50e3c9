import LeaseholdTestSupport
import Testing

@testable import LeaseholdCore

/// Truncate while a short-term pin is active, under each policy (the seed's cases).
@Suite("Truncate and punch under each pin policy")
struct TruncatePolicyTests {
    @Test("busy: pinned blocks become busy, naming the pin; the rest go free; unpin plus releaseDelay frees them")
    func busyPolicy() throws {
        var h = Harness()
        let a = h.openSession("alice")
        let b = h.openSession("bob")
        let inode = h.file(in: a, blocks: 8)
        let pin = try h.pin(in: a, inode, [h.blocks(2, 2)])
        let pinned = pin.extents.map(\.physicalRange)
        let freeBefore = h.status().freeBlocks

        let change = try h.truncate(in: b, inode, size: 0, policy: .busy)
        #expect(change.freedBlocks == 6)
        #expect(change.busyBlocks == 2)
        #expect(change.size == 0)
        #expect(h.status().freeBlocks == freeBefore + 6)
        #expect(h.status().busyBlocks == 2)
        let busy = h.busyExtents()
        #expect(busy.count == 1)
        #expect(busy.first?.range == pinned.first)
        #expect(busy.first?.pins.map(\.pin) == [pin.pin])
        #expect(busy.first?.pins.first?.identity == "alice")
        #expect(busy.first?.releaseIn == nil)

        // Allocation never hands out busy blocks, even when it takes everything else.
        let other = h.createInode(in: b)
        let everything = h.status().freeBlocks
        let allocation = try h.allocate(in: b, other, h.blocks(0, everything))
        #expect(!allocation.extents.contains { pinned.anyOverlaps($0.physicalRange) })
        #expect(throws: LeaseholdError.self) { try h.allocate(in: b, other, h.blocks(everything, 1)) }

        try h.unpin(in: a, pin.pin)
        #expect(h.status().busyBlocks == 2, "busy until releaseDelay passes")
        #expect(h.busyExtents().first?.releaseIn == .seconds(5))
        h.advance(by: .milliseconds(4_999))
        #expect(h.status().busyBlocks == 2)
        h.advance(by: .milliseconds(1))
        #expect(h.status().busyBlocks == 0)
        #expect(h.status().freeBlocks == 2)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("fail: any conflicting pin refuses with busy listing the pins; nothing changes")
    func failPolicy() throws {
        var h = Harness()
        let a = h.openSession("alice")
        let b = h.openSession("bob")
        let inode = h.file(in: a, blocks: 8)
        let pin = try h.pin(in: a, inode, [h.blocks(5, 1)])
        let before = h.coordinator.persistentState()
        let error = #expect(throws: LeaseholdError.self) { try h.truncate(in: b, inode, size: 4 * h.blockSize, policy: .fail) }
        #expect(error?.code == .busy)
        #expect(error?.details.pins == [pin.pin])
        var after = h.coordinator.persistentState()
        after.slots = before.slots
        after.counters.lastEvent = before.counters.lastEvent
        #expect(after == before, "only the stored reply changed")
        // Outside the pinned blocks the same policy succeeds.
        let change = try h.truncate(in: b, inode, size: 6 * h.blockSize, policy: .fail)
        #expect(change.freedBlocks == 2)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("wait: the truncate waits for the short-term pin and commits when it is unpinned")
    func waitPolicy() throws {
        var h = Harness()
        let a = h.openSession("alice")
        let b = h.openSession("bob")
        let inode = h.file(in: a, blocks: 8)
        let pin = try h.pin(in: a, inode, [h.blocks(3, 1)])
        let pending = try h.begin(.truncate(inode, size: 0, policy: .wait(timeout: .seconds(30)), expectedGeneration: nil), in: b)
        h.advance(by: .seconds(1))
        #expect(h.reply(of: pending) == nil)
        // New pins over the breaking range are refused, from every session.
        #expect(throws: LeaseholdError.self) { try h.pin(in: b, inode, [h.blocks(0, 1)]) }
        try h.unpin(in: a, pin.pin)
        let reply = try #require(h.reply(of: pending))
        guard case .success(.mappingChanged(let change)) = reply else {
            Issue.record("unexpected \(reply)")
            return
        }
        #expect(change.freedBlocks == 8)
        #expect(change.busyBlocks == 0)
        #expect(h.status().busyBlocks == 0)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("wait that times out leaves map, size and generation unchanged")
    func waitTimesOut() throws {
        var h = Harness()
        let a = h.openSession("alice", ttl: .seconds(60))
        let b = h.openSession("bob", ttl: .seconds(60))
        let inode = h.file(in: a, blocks: 8)
        try h.pin(in: a, inode, [h.blocks(3, 1)], kind: .shortTerm(ttl: .seconds(30)))
        guard case .inode(let before) = try h.admin(.showInode(inode)) else { return }
        let pending = try h.begin(.truncate(inode, size: 0, policy: .wait(timeout: .seconds(2)), expectedGeneration: nil), in: b)
        h.send(.keepAlive, in: a)
        h.advance(by: .seconds(2))
        let error = h.reply(of: pending)?.error
        #expect(error?.code == .timedOut)
        guard case .inode(let after) = try h.admin(.showInode(inode)) else { return }
        #expect(after.extents == before.extents)
        #expect(after.info.size == before.info.size)
        #expect(after.info.generation == before.info.generation)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("a wait that times out lists the revocations that already happened; they stand")
    func waitTimesOutAfterRevocation() throws {
        var h = Harness()
        let a = h.openSession("alice", ttl: .seconds(300))
        let b = h.openSession("bob", ttl: .seconds(300))
        let c = h.openSession("carol", ttl: .seconds(300))
        let inode = h.file(in: a, blocks: 8)
        try h.pin(in: a, inode, [h.blocks(0, 1)], kind: .shortTerm(ttl: .seconds(30)))
        let layout = try h.layoutGet(in: c, inode, [h.blocks(0, 8)])
        let pending = try h.begin(.truncate(inode, size: 0, policy: .wait(timeout: .seconds(15)), expectedGeneration: nil), in: b)
        h.advance(by: .seconds(10))  // carol ignores the recall: revoked, evicted
        #expect(h.coordinator.sessions[c] == nil)
        #expect(h.reply(of: pending) == nil, "still waiting for alice's short-term pin")
        h.advance(by: .seconds(5))
        let error = h.reply(of: pending)?.error
        #expect(error?.code == .timedOut)
        #expect(error?.details.revokedLayouts == [layout.stateID.id])
        #expect(error?.details.evictedSessions == [c])
        #expect(h.coordinator.layouts[layout.stateID.id] == nil, "the revocation stands")
        guard case .inode(let detail) = try h.admin(.showInode(inode)) else { return }
        #expect(detail.info.mappedBlocks == 8)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("quarantine: pinned blocks move to a new quarantine inode that records its source")
    func quarantinePolicy() throws {
        var h = Harness()
        let a = h.openSession("alice")
        let b = h.openSession("bob")
        let inode = h.file(in: a, blocks: 8)
        let pin = try h.pin(in: a, inode, [h.blocks(6, 2)])
        let change = try h.truncate(in: b, inode, size: 2 * h.blockSize, policy: .quarantine(keep: true))
        #expect(change.quarantinedBlocks == 2)
        #expect(change.freedBlocks == 4)
        let quarantine = try #require(change.quarantineInode)
        guard case .inode(let detail) = try h.admin(.showInode(quarantine)) else { return }
        #expect(detail.extents.map(\.physicalRange) == pin.extents.map(\.physicalRange))
        #expect(detail.extents.first?.fileBlock == 6)
        guard case .quarantine(let source) = detail.info.kind else {
            Issue.record("not a quarantine inode")
            return
        }
        #expect(source.inode == inode)
        #expect(source.fileOffset == 2 * h.blockSize)
        #expect(h.status().quarantinedBlocks == 2)
        // It refuses pins, layouts and truncates.
        #expect(throws: LeaseholdError.self) { try h.pin(in: a, quarantine, [h.blocks(6, 1)]) }
        #expect(throws: LeaseholdError.self) { try h.truncate(in: a, quarantine, size: 0) }
        // Kept: unpin plus releaseDelay does not free it; deleting the inode does.
        try h.unpin(in: a, pin.pin)
        h.advance(by: .seconds(10))
        #expect(h.status().quarantinedBlocks == 2)
        try h.admin(.deleteQuarantineInode(quarantine))
        #expect(h.status().quarantinedBlocks == 0)
        #expect(h.status().busyBlocks == 0, "the release delay had passed already")
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("quarantine without keep follows the busy release rule and disappears when empty")
    func quarantineAutoRelease() throws {
        var h = Harness()
        let a = h.openSession("alice")
        let inode = h.file(in: a, blocks: 4)
        let pin = try h.pin(in: a, inode, [h.blocks(0, 1)])
        let change = try h.truncate(in: a, inode, size: 0, policy: .quarantine(keep: false))
        let quarantine = try #require(change.quarantineInode)
        try h.unpin(in: a, pin.pin)
        h.advance(by: .seconds(5))
        #expect(h.status().quarantinedBlocks == 0)
        #expect(throws: LeaseholdError.self) { try h.admin(.showInode(quarantine)) }
        #expect(h.status().freeBlocks == h.coordinator.geometry.blockCount)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("truncate to a non-block-aligned size frees only whole blocks; punch frees only blocks wholly inside")
    func partialBlocks() throws {
        var h = Harness()
        let a = h.openSession("alice")
        let inode = h.file(in: a, blocks: 8)
        let change = try h.truncate(in: a, inode, size: 2 * h.blockSize + 100)
        #expect(change.freedBlocks == 5, "block 2 keeps its data and its mapping")
        #expect(change.size == 2 * h.blockSize + 100)
        guard case .inode(let detail) = try h.admin(.showInode(inode)) else { return }
        #expect(detail.info.mappedBlocks == 3)
        // Punch of bytes 100 ..< 2 blocks + 50: only block 1 is wholly inside.
        let punch = try h.punch(in: a, inode, ByteRange(offset: 100, length: 2 * h.blockSize - 50))
        #expect(punch.freedBlocks == 1)
        // A punch inside one block frees nothing and changes nothing.
        let none = try h.punch(in: a, inode, ByteRange(offset: 10, length: 20))
        #expect(none.freedBlocks == 0)
        #expect(none.generation == punch.generation)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("a pin on the partial last block conflicts with a truncate inside that block (outward range)")
    func partialBlockConflict() throws {
        var h = Harness()
        let a = h.openSession("alice")
        let b = h.openSession("bob")
        let inode = h.file(in: a, blocks: 4)
        let pin = try h.pin(in: a, inode, [ByteRange(offset: 2 * h.blockSize, length: 10)])
        let error = #expect(throws: LeaseholdError.self) { try h.truncate(in: b, inode, size: 2 * h.blockSize + 5, policy: .fail) }
        #expect(error?.details.pins == [pin.pin])
        let change = try h.truncate(in: b, inode, size: 2 * h.blockSize + 5, policy: .busy)
        #expect(change.busyBlocks == 0, "the pinned block is not freed: it keeps its mapping")
        #expect(change.freedBlocks == 1)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }
}
