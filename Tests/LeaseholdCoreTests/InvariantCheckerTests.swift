import LeaseholdTestSupport
import Testing

@testable import LeaseholdCore

/// Negative controls: the checker finds each kind of damage, and all of it at once.
@Suite("Invariant checker")
struct InvariantCheckerTests {
    /// A small state with a file, a busy pinned block, a layout and a fence.
    static func sample() throws -> Harness {
        var h = Harness()
        let a = h.openSession("alice", ttl: .seconds(300))
        let b = h.openSession("bob", ttl: .seconds(300))
        let inode = h.file(in: a, blocks: 8)
        try h.pin(in: a, inode, [h.blocks(6, 2)])
        try h.truncate(in: b, inode, size: 4 * h.blockSize)
        try h.layoutGet(in: b, inode, [h.blocks(0, 2)])
        #expect(InvariantChecker.check(h.coordinator).isEmpty)
        return h
    }

    /// Busy blocks lose their holders without being scheduled for release.
    static func dropHolders(_ c: inout Coordinator, _ range: BlockRange) {
        c.busy.update(range) { _, state in
            guard var state else { return nil }
            state.holders = HolderSet()
            return state
        }
    }

    static func invariants(_ c: Coordinator) -> Set<Int> {
        Set(InvariantChecker.check(c).map(\.invariant))
    }

    @Test("1: lost blocks and blocks claimed twice")
    func conservation() throws {
        var c = try Self.sample().coordinator
        let extent = c.free.extents.first!
        _ = c.free.remove(BlockRange(start: extent.start, count: 1))
        #expect(Self.invariants(c).contains(1))
        var d = try Self.sample().coordinator
        let mapped = d.inodes.first!.value.map.extents.first!
        d.free.free(BlockRange(start: mapped.physicalBlock, count: 1))
        let violations = InvariantChecker.check(d)
        #expect(violations.contains { $0.invariant == 1 && $0.message.contains("both") })
    }

    @Test("2: a pinned block that became free")
    func pinSafety() throws {
        var c = try Self.sample().coordinator
        let busy = c.busy.allSegments.first!.range
        c.busy.remove(busy)
        c.free.free(busy)
        #expect(Self.invariants(c).contains(2))
    }

    @Test("3: a busy block with no holder and no release time")
    func busyHeld() throws {
        var c = try Self.sample().coordinator
        let busy = c.busy.allSegments.first!.range
        Self.dropHolders(&c, busy)
        #expect(Self.invariants(c).contains(3))
    }

    @Test("4: another session's layout over a range that a mapping change just committed")
    func committedChange() throws {
        var c = try Self.sample().coordinator
        let layout = c.layouts.first!.value
        c.step.commits.append(
            CommittedChange(inode: layout.inode, session: SessionID(rawValue: 99), range: BlockRange(start: 0, end: 4), cut: [], policy: .busy, lastPin: PinID(rawValue: 0))
        )
        #expect(Self.invariants(c).contains(4))
    }

    @Test("5: counters going backwards and tokens handed out twice")
    func monotonic() throws {
        let h = try Self.sample()
        var c = h.coordinator
        let (_, watermarks) = InvariantChecker.check(c, since: nil)
        c.counters.lastPin -= 1
        let (violations, _) = InvariantChecker.check(c, since: watermarks)
        #expect(violations.contains { $0.invariant == 5 && $0.message.contains("went back") })
        var d = h.coordinator
        let pin = d.pins.first!.value
        d.layouts.modifyValue(forKey: d.layouts.first!.key) { $0.token = pin.token }
        #expect(Self.invariants(d).contains(5))
    }

    @Test("6: uncoalesced free space and a mapped block beyond the size")
    func wellFormed() throws {
        var c = try Self.sample().coordinator
        let id = c.inodes.first!.key
        c.inodes.modifyValue(forKey: id) { $0.size = 1 }
        #expect(Self.invariants(c).contains(6))
        var state = try Self.sample().coordinator.persistentState()
        let (start, count) = state.freeExtents.max { $0.value < $1.value }!
        state.freeExtents[start] = count / 2
        state.freeExtents[start + count / 2] = count - count / 2
        #expect(throws: RecoveryError.self) {
            _ = try Coordinator(restoring: state, configuration: Harness.configuration(), at: .zero)
        }
    }

    @Test("6: a session's pin counter that disagrees with its pins")
    func sessionPinCount() throws {
        var c = try Self.sample().coordinator
        let id = c.sessions.first!.key
        c.sessions.modifyValue(forKey: id) { $0.pinCount += 1 }
        let violations = InvariantChecker.check(c)
        #expect(violations.contains { $0.invariant == 6 && $0.message.contains("session \(id) counts") })
    }

    @Test("every violation is returned, not just the first")
    func reportsEverything() throws {
        var c = try Self.sample().coordinator
        let extent = c.free.extents.first!
        _ = c.free.remove(BlockRange(start: extent.start, count: 1))
        Self.dropHolders(&c, c.busy.allSegments.first!.range)
        let id = c.inodes.first!.key
        c.inodes.modifyValue(forKey: id) { $0.size = 1 }
        #expect(Self.invariants(c).isSuperset(of: [1, 2, 3, 6]))
        // The parts recovery runs on several threads find the same, no more, no less.
        let byParts = InvariantChecker.parts.flatMap { InvariantChecker.check(c, part: $0) }
        #expect(byParts.map(\.description).sorted() == InvariantChecker.check(c).map(\.description).sorted())
    }
}
