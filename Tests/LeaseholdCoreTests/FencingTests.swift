import LeaseholdTestSupport
import Testing

@testable import LeaseholdCore

@Suite("Eviction, fencing, storage targets and admin interventions")
struct FencingTests {
    static let targetA = Caller(identity: "nvmeof-a", isTarget: true)
    static let targetB = Caller(identity: "rdma-b", isTarget: true)

    @Test("an evicted session's blocks stay busy until every registered target acknowledged the fence and releaseDelay passed")
    func evictionWaitsForTargets() throws {
        var h = Harness()
        try h.call(.registerTarget, as: Self.targetA)
        try h.call(.registerTarget, as: Self.targetB)
        let a = h.openSession("alice", ttl: .seconds(2))
        let b = h.openSession("bob", ttl: .seconds(300))
        let inode = h.file(in: a, blocks: 8)
        let pin = try h.pin(in: a, inode, [h.blocks(0, 2)], kind: .longTerm)
        let layout = try h.layoutGet(in: a, inode, [h.blocks(4, 2)], iomode: .readWrite)
        try h.truncate(in: b, inode, size: 6 * h.blockSize, policy: .busy)  // nothing of a's
        h.advance(by: .seconds(2))  // a expires
        let fence = try #require(h.fences.last)
        #expect(fence.session == a)
        #expect(fence.reason == .expired)
        #expect(fence.maxToken >= layout.token)
        #expect(fence.blocks.totalCount == 4, "pinned blocks and the layout's mapped blocks")
        #expect(h.coordinator.pins[pin.pin] == nil)
        #expect(h.coordinator.layouts.isEmpty)

        // Blocks the layout referenced are still mapped; cutting them now makes them busy.
        let cut = try h.truncate(in: b, inode, size: 0, policy: .busy)
        #expect(cut.busyBlocks == 4)
        let busy = h.busyExtents()
        #expect(busy.allSatisfy { $0.fences.first?.waitingForTargets.sorted() == ["nvmeof-a", "rdma-b"] })

        try h.call(.acknowledgeFence(fence.revision), as: Self.targetA)
        h.advance(by: .seconds(60))
        #expect(h.status().busyBlocks == 4, "target rdma-b has not acknowledged")
        #expect(h.busyExtents().first?.fences.first?.waitingForTargets == ["rdma-b"])
        try h.call(.acknowledgeFence(fence.revision), as: Self.targetB)
        h.advance(by: .milliseconds(4_999))
        #expect(h.status().busyBlocks == 4)
        h.advance(by: .milliseconds(1))
        #expect(h.status().busyBlocks == 0)
        guard case .fences(let feed) = try h.call(.readFences(after: FenceRevision(rawValue: 0)), as: Self.targetA) else { return }
        #expect(feed.isEmpty, "a released fence leaves the feed")
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("deregistering a dead target lets its fences resolve")
    func deregisterTarget() throws {
        var h = Harness()
        try h.call(.registerTarget, as: Self.targetA)
        let a = h.openSession("alice", ttl: .seconds(300))
        let inode = h.file(in: a, blocks: 2)
        try h.pin(in: a, inode, [h.blocks(0, 2)], kind: .longTerm)
        try h.truncate(in: a, inode, size: 0)
        guard case .sessionEvicted(let fence) = try h.admin(.evictSession(a)) else { return }
        #expect(fence.reason == .admin)
        h.advance(by: .seconds(30))
        #expect(h.status().busyBlocks == 2)
        guard case .targets(let targets) = try h.admin(.listTargets) else { return }
        #expect(targets.first?.lag == 1)
        try h.admin(.deregisterTarget(name: "nvmeof-a"))
        h.advance(by: .seconds(5))
        #expect(h.status().busyBlocks == 0)
        #expect(throws: LeaseholdError.self) { try h.admin(.deregisterTarget(name: "nvmeof-a")) }
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("a target acknowledging an unissued revision or unregistered is refused; registration is idempotent")
    func targetValidation() throws {
        var h = Harness()
        let unregistered = #expect(throws: LeaseholdError.self) { try h.call(.acknowledgeFence(FenceRevision(rawValue: 0)), as: Self.targetA) }
        #expect(unregistered?.code == .notFound)
        try h.call(.registerTarget, as: Self.targetA)
        try h.call(.registerTarget, as: Self.targetA)
        #expect(h.coordinator.targets.count == 1)
        let future = #expect(throws: LeaseholdError.self) { try h.call(.acknowledgeFence(FenceRevision(rawValue: 5)), as: Self.targetA) }
        #expect(future?.code == .invalidArgument)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("overlapping holders that end at different times split a busy extent")
    func splitBusyExtent() throws {
        var h = Harness()
        let a = h.openSession("alice", ttl: .seconds(300))
        let b = h.openSession("bob", ttl: .seconds(300))
        let inode = h.file(in: a, blocks: 8)
        let first = try h.pin(in: a, inode, [h.blocks(0, 4)])
        let second = try h.pin(in: b, inode, [h.blocks(2, 4)])
        try h.truncate(in: a, inode, size: 0)
        #expect(h.busyExtents().count == 3, "a alone, both, b alone")
        try h.unpin(in: a, first.pin)
        h.advance(by: .seconds(5))
        #expect(h.status().busyBlocks == 4)
        #expect(h.busyExtents().map(\.range.count) == [4])
        try h.unpin(in: b, second.pin)
        h.advance(by: .seconds(5))
        #expect(h.status().busyBlocks == 0)
        #expect(h.coordinator.free.extentCount == 1, "freed parts coalesced with their neighbours")
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("force release frees busy blocks early, detaches the pin and is evented")
    func forceRelease() throws {
        var h = Harness()
        let a = h.openSession("alice", ttl: .seconds(300))
        let inode = h.file(in: a, blocks: 4)
        let pin = try h.pin(in: a, inode, [h.blocks(0, 4)])
        try h.truncate(in: a, inode, size: 0)
        let range = try #require(h.busyExtents().first?.range)
        let missing = #expect(throws: LeaseholdError.self) { try h.admin(.forceRelease(BlockRange(start: range.end, count: 1))) }
        #expect(missing?.code == .notFound)
        guard case .forceReleased(let blocks) = try h.admin(.forceRelease(BlockRange(start: range.start, count: 2))) else { return }
        #expect(blocks == 2)
        #expect(h.status().busyBlocks == 2)
        #expect(h.coordinator.pins[pin.pin]?.blockCount == 2)
        #expect(h.events.contains { if case .forceReleased = $0.kind { true } else { false } })
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("admin views: status, pins, layouts, sessions, inodes, events and the live check")
    func adminViews() throws {
        var h = Harness()
        let a = h.openSession("alice")
        let inode = h.file(in: a, blocks: 8)
        try h.pin(in: a, inode, [h.blocks(0, 1)])
        try h.layoutGet(in: a, inode, [h.blocks(0, 8)], iomode: .read)
        let status = h.status()
        #expect(status.mappedBlocks == 8)
        #expect(status.freeBlocks == 1_024 - 8)
        #expect(status.largestFreeExtent == 1_016)
        #expect(status.pins == 1 && status.layouts == 1 && status.sessions == 1 && status.inodes == 1)
        guard case .pins(let pins) = try h.admin(.listPins(Page())) else { return }
        #expect(pins.first?.identity == "alice")
        guard case .layouts(let layouts) = try h.admin(.listLayouts(Page())) else { return }
        #expect(layouts.first?.state == .granted)
        guard case .inodes(let inodes) = try h.admin(.listInodes(Page(after: 0, limit: 10))) else { return }
        #expect(inodes.count == 1)
        guard case .invariants(let violations) = try h.admin(.checkInvariants) else { return }
        #expect(violations.isEmpty)
        guard case .events(let events, _) = try h.admin(.readEvents(after: EventRevision(rawValue: 2), limit: 3)) else { return }
        #expect(events.map(\.revision.rawValue) == [3, 4, 5])
        #expect(throws: LeaseholdError.self) { try h.admin(.listPins(Page(after: 0, limit: 0))) }
        // A page starting past the volume is empty, not a crash.
        guard case .busyExtents(let beyond) = try h.admin(.listBusyExtents(Page(after: .max, limit: 10))) else { return }
        #expect(beyond.isEmpty)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("auditing from outside: paged free extents and the pins' physical extents account for every block with the mapped and busy ones")
    func auditFromOutside() throws {
        var h = Harness()
        let a = h.openSession("alice")
        // Free space in several pieces: files, a hole punched into one, a truncate under a pin.
        let first = h.file(in: a, blocks: 8)
        let second = h.file(in: a, blocks: 8)
        _ = h.file(in: a, blocks: 4)
        let grant = try h.pin(in: a, second, [h.blocks(2, 3)], kind: .longTerm)
        _ = try h.call(.punchHole(first, h.blocks(2, 2), policy: .busy, expectedGeneration: nil), in: a)
        _ = try h.call(.truncate(second, size: 0, policy: .busy, expectedGeneration: nil), in: a)
        // Pages of two, each starting at the last one's end.
        var free: [BlockRange] = []
        var after: UInt64 = 0
        while true {
            guard case .freeExtents(let page) = try h.admin(.listFreeExtents(Page(after: after, limit: 2))) else {
                Issue.record("no free extents")
                return
            }
            free += page
            guard page.count == 2, let last = page.last else { break }
            after = last.end
        }
        #expect(free.count >= 3, "\(free)")
        #expect(zip(free, free.dropFirst()).allSatisfy { $0.end < $1.start }, "sorted, coalesced: \(free)")
        let status = h.status()
        #expect(free.reduce(0) { $0 + $1.count } == status.freeBlocks)
        #expect(status.freeBlocks + status.mappedBlocks + status.busyBlocks + status.quarantinedBlocks == status.blockCount)
        // The pin says where its blocks are: the extents of its grant, busy since the truncate.
        guard case .pins(let pins) = try h.admin(.listPins(Page())), let pin = pins.first(where: { $0.pin == grant.pin }) else {
            Issue.record("the pin is not listed")
            return
        }
        #expect(pin.extents == grant.extents.array && pin.extents.reduce(0) { $0 + $1.count } == 3)
        guard case .busyExtents(let busy) = try h.admin(.listBusyExtents(Page())) else { return }
        for extent in pin.extents {
            let range = BlockRange(start: extent.physicalBlock, count: extent.count)
            #expect(busy.contains { $0.range.start <= range.start && range.end <= $0.range.end }, "pinned \(range) is busy")
            #expect(!free.contains { $0.start < range.end && range.start < $0.end }, "pinned \(range) is not free")
        }
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("layout seqids: merging bumps the seqid, every return that removes something bumps it, a return with an older seqid keeps later grants")
    func layoutSeqids() throws {
        var h = Harness()
        let a = h.openSession("alice")
        let inode = h.file(in: a, blocks: 16)
        let first = try h.layoutGet(in: a, inode, [h.blocks(0, 4)])
        let second = try h.layoutGet(in: a, inode, [h.blocks(8, 4)])
        #expect(second.stateID.id == first.stateID.id)
        #expect(second.stateID.seqid == first.stateID.seqid + 1)
        #expect(second.ranges == [BlockRange(start: 0, count: 4), BlockRange(start: 8, count: 4)])
        #expect(second.token > first.token)
        // A whole return carrying the first seqid removes only the first grant.
        let returned = try h.layoutReturn(in: a, first.stateID)
        #expect(returned.remaining == [BlockRange(start: 8, count: 4)])
        // Every return that removes something bumps the seqid; one that removes nothing
        // keeps it.
        #expect(returned.stateID.seqid == second.stateID.seqid + 1)
        let nothing = try h.layoutReturn(in: a, returned.stateID, [h.blocks(0, 1)])
        #expect(nothing.stateID == returned.stateID)
        #expect(nothing.returnedBlocks == 0)
        // Partial return.
        let partial = try h.layoutReturn(in: a, returned.stateID, [h.blocks(8, 2)])
        #expect(partial.remaining == [BlockRange(start: 10, count: 2)])
        #expect(partial.stateID.seqid == returned.stateID.seqid + 1)
        // layoutCommit marks written and extends the size, inside the granted range only.
        guard case .layoutCommitted(_, let size) = try h.call(
            .layoutCommit(partial.stateID, newSize: 20 * h.blockSize, written: [h.blocks(10, 2)]), in: a
        ) else { return }
        #expect(size == 20 * h.blockSize)
        #expect(throws: LeaseholdError.self) {
            try h.call(.layoutCommit(partial.stateID, newSize: nil, written: [h.blocks(0, 1)]), in: a)
        }
        let gone = try h.layoutReturn(in: a, partial.stateID)
        #expect(gone.remaining.isEmpty)
        #expect(gone.stateID == LayoutStateID(id: partial.stateID.id, seqid: partial.stateID.seqid + 1), "a full return bumps it too")
        #expect(throws: LeaseholdError.self) { try h.layoutReturn(in: a, partial.stateID) }
        #expect(h.violations.isEmpty, "\(h.violations)")
    }
}
