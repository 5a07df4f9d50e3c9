import LeaseholdTestSupport
import Testing

@testable import LeaseholdCore

@Suite("Allocation, inodes and the volume pin setting")
struct AllocationTests {
    @Test("noSpace reports the busy blocks; after unpin plus releaseDelay the same allocation succeeds")
    func noSpaceThenSuccess() throws {
        var h = Harness(configuration: Harness.configuration(blocks: 64))
        let a = h.openSession("alice", ttl: .seconds(300))
        let b = h.openSession("bob", ttl: .seconds(300))
        let inode = h.file(in: a, blocks: 64)
        let pin = try h.pin(in: a, inode, [h.blocks(0, 16)])
        try h.truncate(in: b, inode, size: 0)
        let other = h.createInode(in: b)
        let error = #expect(throws: LeaseholdError.self) { try h.allocate(in: b, other, h.blocks(0, 64)) }
        #expect(error?.code == .noSpace)
        #expect(error?.details.busyBlocks == 16)
        #expect(error?.details.freeBlocks == 48)
        try h.unpin(in: a, pin.pin)
        h.advance(by: .seconds(5))
        let allocation = try h.allocate(in: b, other, h.blocks(0, 64))
        #expect(allocation.extents.reduce(0) { $0 + $1.count } == 64)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("waitForBusy waits for busy blocks to free instead of failing, and times out cleanly")
    func waitForBusy() throws {
        var h = Harness(configuration: Harness.configuration(blocks: 32))
        let a = h.openSession("alice", ttl: .seconds(300))
        let inode = h.file(in: a, blocks: 32)
        let pin = try h.pin(in: a, inode, [h.blocks(0, 8)])
        try h.truncate(in: a, inode, size: 0)
        let other = h.createInode(in: a)
        let waiting = try h.begin(.allocate(other, h.blocks(0, 30), waitForBusy: .seconds(20), expectedGeneration: nil), in: a)
        h.advance(by: .seconds(1))
        #expect(h.reply(of: waiting) == nil)
        try h.unpin(in: a, pin.pin)
        h.advance(by: .seconds(5))
        guard case .success(.allocated(let allocation))? = h.reply(of: waiting) else {
            Issue.record("allocation did not complete after the busy blocks freed")
            return
        }
        #expect(allocation.extents.reduce(0) { $0 + $1.count } == 30)
        // More than free plus busy could ever give fails at once, even with waitForBusy.
        let third = h.createInode(in: a)
        let error = #expect(throws: LeaseholdError.self) {
            try h.call(.allocate(third, h.blocks(0, 10), waitForBusy: .seconds(5), expectedGeneration: nil), in: a)
        }
        #expect(error?.code == .noSpace)
        // A wait that times out.
        let fourth = h.file(in: a, blocks: 2)
        let pin2 = try h.pin(in: a, fourth, [h.blocks(0, 2)])
        try h.truncate(in: a, fourth, size: 0)
        let late = try h.begin(.allocate(third, h.blocks(0, 2), waitForBusy: .seconds(3), expectedGeneration: nil), in: a)
        h.advance(by: .seconds(3))
        #expect(h.reply(of: late)?.error?.code == .timedOut)
        try h.unpin(in: a, pin2.pin)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("allocation fills holes next to the neighbouring extent, marks them unwritten and raises the size")
    func locality() throws {
        var h = Harness()
        let a = h.openSession("alice")
        let first = h.createInode(in: a)
        let second = h.createInode(in: a)
        let x = try h.allocate(in: a, first, h.blocks(0, 4))
        _ = try h.allocate(in: a, second, h.blocks(0, 4))
        let grown = try h.allocate(in: a, first, h.blocks(4, 4))
        // The free space right after `first`'s blocks was taken by `second`; the next best
        // fit lands elsewhere, but a hole right after an extent with room continues it.
        #expect(grown.size == 8 * h.blockSize)
        #expect(grown.extents.allSatisfy { !$0.written })
        try h.punch(in: a, first, h.blocks(2, 2))
        let refill = try h.allocate(in: a, first, h.blocks(2, 2))
        #expect(refill.extents.first?.physicalBlock == x.extents.first!.physicalBlock + 2, "refilled next to its left neighbour")
        guard case .markedWritten(_, let blocks) = try h.call(.markWritten(first, h.blocks(0, 3)), in: a) else { return }
        #expect(blocks == 3)
        guard case .inode(let detail) = try h.admin(.showInode(first)) else { return }
        #expect(detail.extents.first?.written == true)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("pin with allocate fills holes first; without it the first hole is named")
    func pinAllocate() throws {
        var h = Harness()
        let a = h.openSession("alice")
        let inode = h.createInode(in: a)
        try h.allocate(in: a, inode, h.blocks(0, 2))
        let error = #expect(throws: LeaseholdError.self) { try h.pin(in: a, inode, [h.blocks(0, 4)]) }
        #expect(error?.code == .notMapped)
        #expect(error?.details.firstHoleOffset == 2 * h.blockSize)
        let grant = try h.pin(in: a, inode, [h.blocks(0, 4), h.blocks(10, 1)], allocate: true)
        #expect(grant.extents.reduce(0) { $0 + $1.count } == 5)
        #expect(grant.allocation?.extents.reduce(0) { $0 + $1.count } == 3)
        guard case .inode(let detail) = try h.admin(.showInode(inode)) else { return }
        #expect(detail.info.size == 11 * h.blockSize)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("deleteInode truncates to 0 under its policy, then the inode answers notFound except to unpin")
    func deleteInode() throws {
        var h = Harness()
        let a = h.openSession("alice")
        let b = h.openSession("bob")
        let inode = h.file(in: a, blocks: 4)
        let pin = try h.pin(in: a, inode, [h.blocks(1, 1)])
        guard case .mappingChanged(let change) = try h.call(.deleteInode(inode, policy: .busy, expectedGeneration: nil), in: b) else { return }
        #expect(change.deleted)
        #expect(change.busyBlocks == 1)
        let gone = #expect(throws: LeaseholdError.self) { try h.pin(in: b, inode, [h.blocks(0, 1)]) }
        #expect(gone?.code == .notFound)
        #expect(throws: LeaseholdError.self) { try h.truncate(in: b, inode, size: 0) }
        try h.unpin(in: a, pin.pin)
        h.advance(by: .seconds(5))
        #expect(h.status().busyBlocks == 0)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("an expected generation that does not match is staleGeneration")
    func staleGeneration() throws {
        var h = Harness()
        let a = h.openSession("alice")
        let inode = h.file(in: a, blocks: 4)
        let error = #expect(throws: LeaseholdError.self) {
            try h.call(.truncate(inode, size: 0, policy: .busy, expectedGeneration: 1), in: a)
        }
        #expect(error?.code == .staleGeneration)
        #expect(error?.details.currentGeneration == 2)
        try h.call(.truncate(inode, size: 0, policy: .busy, expectedGeneration: 2), in: a)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("the volume pin setting: deny refuses every pin, shortTermOnly refuses long-term ones")
    func pinSetting() throws {
        var h = Harness()
        let a = h.openSession("alice")
        let inode = h.file(in: a, blocks: 4)
        try h.admin(.setPinSetting(.shortTermOnly))
        let longTerm = #expect(throws: LeaseholdError.self) { try h.pin(in: a, inode, [h.blocks(0, 1)], kind: .longTerm) }
        #expect(longTerm?.code == .permissionDenied)
        try h.pin(in: a, inode, [h.blocks(0, 1)])
        try h.admin(.setPinSetting(.deny))
        #expect(throws: LeaseholdError.self) { try h.pin(in: a, inode, [h.blocks(1, 1)]) }
        #expect(h.coordinator.persistentState().volume?.pinSetting == .deny)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("bad input is a typed error and changes nothing")
    func badInput() throws {
        var h = Harness()
        let a = h.openSession("alice")
        let inode = h.file(in: a, blocks: 4)
        let before = h.coordinator.persistentState()
        let cases: [Command] = [
            .pin(PinRequest(inode: inode, ranges: [ByteRange(offset: 0, length: 0)], kind: .longTerm)),
            .pin(PinRequest(inode: inode, ranges: [ByteRange(offset: .max, length: 2)], kind: .longTerm)),
            .pin(PinRequest(inode: inode, ranges: [], kind: .longTerm)),
            .pin(PinRequest(inode: inode, ranges: [h.blocks(0, 1)], kind: .shortTerm(ttl: .seconds(31)))),
            .pin(PinRequest(inode: inode, ranges: [h.blocks(0, 1)], kind: .shortTerm(ttl: .zero))),
            .pin(PinRequest(inode: InodeID(rawValue: 999), ranges: [h.blocks(0, 1)], kind: .longTerm)),
            .allocate(inode, ByteRange(offset: 5, length: .max), waitForBusy: nil, expectedGeneration: nil),
            .truncate(inode, size: 0, policy: .wait(timeout: .zero), expectedGeneration: nil),
            .layoutGet(inode, ranges: [], iomode: .read),
            .layoutReturn(LayoutStateID(id: LayoutID(rawValue: 5), seqid: 1), ranges: nil),
            .unpin(PinID(rawValue: 12345)),
            .prolongRecall(RecallID(rawValue: 3)),
        ]
        for command in cases {
            let error = #expect(throws: LeaseholdError.self) { try h.call(command, in: a) }
            #expect(error != nil && !error!.message.isEmpty)
        }
        var after = h.coordinator.persistentState()
        after.slots = before.slots
        #expect(after == before)
        #expect(throws: LeaseholdError.self) { try VolumeGeometry(blockSize: 1000, blockCount: 10) }
        #expect(throws: LeaseholdError.self) { try VolumeGeometry(blockSize: 4096, blockCount: .max) }
        #expect(h.violations.isEmpty, "\(h.violations)")
    }
}
