import LeaseholdTestSupport
import Testing

@testable import LeaseholdCore

/// Layout and pin recalls: answered, prolonged once, ignored until revoked (eviction).
@Suite("Recalls, revocation and the break ordering rules")
struct RecallTests {
    @Test("a layout recall answered by layoutReturn lets the truncate commit")
    func layoutRecallAnswered() throws {
        var h = Harness()
        let a = h.openSession("alice")
        let b = h.openSession("bob")
        let inode = h.file(in: a, blocks: 8)
        let layout = try h.layoutGet(in: a, inode, [h.blocks(0, 8)])
        #expect(layout.extents.map(\.state) == [.unwritten])
        let pending = try h.begin(.truncate(inode, size: 0, policy: .busy, expectedGeneration: nil), in: b)
        // The recall is a push of the step, released with its commit, and the step's change
        // set carries the numbers it used (the recall row, the counters and the holder's
        // last push number), so nothing numbered leaves ahead of the log.
        let output = h.lastOutput!
        let recalls = output.effects.pushes
        #expect(recalls.count == 1)
        #expect(output.effects.changes.rows.contains { if case .counters(let counters) = $0 { counters.lastRecall >= 1 } else { false } })
        #expect(output.effects.changes.rows.contains { if case .session(let id, let record?) = $0 { id == a && record.lastPush == recalls.first?.push.number } else { false } })
        guard case .layoutRecall(let notice)? = recalls.first?.push.body else {
            Issue.record("no layout recall")
            return
        }
        #expect(notice.stateID.id == layout.stateID.id)
        #expect(notice.deadlineIn == .seconds(10))
        h.advance(by: .seconds(3))
        #expect(h.reply(of: pending) == nil)
        try h.layoutReturn(in: a, layout.stateID)
        guard case .success(.mappingChanged(let change))? = h.reply(of: pending) else {
            Issue.record("truncate did not commit")
            return
        }
        #expect(change.returnedLayouts == [layout.stateID.id])
        #expect(change.revokedLayouts.isEmpty)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("a recall prolonged once gets one more recallTimeout, a second prolong is refused, then revoke evicts")
    func layoutRecallProlongedThenRevoked() throws {
        var h = Harness()
        let a = h.openSession("alice", ttl: .seconds(300))
        let b = h.openSession("bob", ttl: .seconds(300))
        let inode = h.file(in: a, blocks: 8)
        let layout = try h.layoutGet(in: a, inode, [h.blocks(0, 4)])
        let pending = try h.begin(.punchHole(inode, h.blocks(0, 2), policy: .busy, expectedGeneration: nil), in: b)
        guard case .layoutRecall(let notice)? = h.recalls(of: a).last else {
            Issue.record("no recall")
            return
        }
        #expect(notice.range == BlockRange(start: 0, count: 2))
        h.advance(by: .seconds(9))
        guard case .recallProlonged(_, let remaining) = try h.call(.prolongRecall(notice.recall), in: a) else { return }
        #expect(remaining == .seconds(11))
        #expect(throws: LeaseholdError.self) { try h.call(.prolongRecall(notice.recall), in: a) }
        h.advance(by: .seconds(10))
        #expect(h.reply(of: pending) == nil, "prolonged: not yet revoked")
        h.advance(by: .seconds(1))
        guard case .success(.mappingChanged(let change))? = h.reply(of: pending) else {
            Issue.record("truncate did not commit after the revocation")
            return
        }
        #expect(change.revokedLayouts == [layout.stateID.id])
        #expect(change.evictedSessions == [a])
        // The evicted session is told, and fenced.
        #expect(h.pushes(of: a).contains { if case .fenced = $0.body { true } else { false } })
        #expect(h.fences.last?.session == a)
        let error = #expect(throws: LeaseholdError.self) { try h.call(.keepAlive, in: a) }
        #expect(error?.code == .fenced)
        #expect(error?.details.fenceRevision == h.fences.last?.revision)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("a long-term pin is recalled under busy, and revoked with its session at the deadline")
    func longTermPinRecalledThenRevoked() throws {
        var h = Harness()
        let a = h.openSession("alice", ttl: .seconds(300))
        let b = h.openSession("bob", ttl: .seconds(300))
        let inode = h.file(in: a, blocks: 4)
        let pin = try h.pin(in: a, inode, [h.blocks(0, 2)], kind: .longTerm)
        let change = try h.truncate(in: b, inode, size: 0, policy: .busy)
        #expect(change.recalledPins == [pin.pin])
        #expect(change.busyBlocks == 2)
        guard case .pinRecall(let notice)? = h.recalls(of: a).last else {
            Issue.record("no pin recall")
            return
        }
        #expect(notice.pin == pin.pin)
        h.advance(by: .seconds(10))
        // Revoked: the session is evicted; its blocks stay busy behind the fence until
        // releaseDelay (no target registered).
        #expect(h.coordinator.sessions[a] == nil)
        #expect(h.status().busyBlocks == 2)
        let busy = h.busyExtents()
        #expect(busy.first?.pins.isEmpty == true)
        #expect(busy.first?.fences.first?.session == a)
        h.advance(by: .seconds(5))
        #expect(h.status().busyBlocks == 0)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("wait policy: a long-term pin is recalled, unpinning answers it and the truncate commits")
    func waitPolicyRecallsLongTermPins() throws {
        var h = Harness()
        let a = h.openSession("alice", ttl: .seconds(300))
        let b = h.openSession("bob", ttl: .seconds(300))
        let inode = h.file(in: a, blocks: 4)
        let pin = try h.pin(in: a, inode, [h.blocks(0, 1)], kind: .longTerm)
        let pending = try h.begin(.truncate(inode, size: 0, policy: .wait(timeout: .seconds(30)), expectedGeneration: nil), in: b)
        #expect(h.recalls(of: a).count == 1)
        try h.unpin(in: a, pin.pin)
        guard case .success(.mappingChanged(let change))? = h.reply(of: pending) else {
            Issue.record("no commit")
            return
        }
        #expect(change.freedBlocks == 4)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("new pins are refused with rangeBreaking during a break, the breaker's own included")
    func rangeBreakingForEverySession() throws {
        var h = Harness()
        let a = h.openSession("alice", ttl: .seconds(300))
        let b = h.openSession("bob", ttl: .seconds(300))
        let inode = h.file(in: a, blocks: 8)
        try h.layoutGet(in: a, inode, [h.blocks(0, 8)])
        _ = try h.begin(.truncate(inode, size: 4 * h.blockSize, policy: .busy, expectedGeneration: nil), in: b)
        for session in [a, b] {
            let error = #expect(throws: LeaseholdError.self) { try h.pin(in: session, inode, [h.blocks(5, 1)]) }
            #expect(error?.code == .rangeBreaking)
            #expect(error?.code.isRetryable == true)
        }
        // Outside the breaking range pins go on.
        try h.pin(in: b, inode, [h.blocks(0, 1)])
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("layoutGet during a break: tryLater when only others are involved, recallConflict when the caller's layout is recalled")
    func tryLaterVersusRecallConflict() throws {
        var h = Harness()
        let a = h.openSession("alice", ttl: .seconds(300))
        let b = h.openSession("bob", ttl: .seconds(300))
        let c = h.openSession("carol", ttl: .seconds(300))
        let inode = h.file(in: a, blocks: 8)
        try h.layoutGet(in: a, inode, [h.blocks(0, 8)], iomode: .read)
        _ = try h.begin(.punchHole(inode, h.blocks(0, 4), policy: .busy, expectedGeneration: nil), in: b)
        let own = #expect(throws: LeaseholdError.self) { try h.layoutGet(in: a, inode, [h.blocks(0, 2)], iomode: .read) }
        #expect(own?.code == .recallConflict)
        let other = #expect(throws: LeaseholdError.self) { try h.layoutGet(in: c, inode, [h.blocks(0, 2)]) }
        #expect(other?.code == .tryLater)
        let breaker = #expect(throws: LeaseholdError.self) { try h.layoutGet(in: b, inode, [h.blocks(0, 2)]) }
        #expect(breaker?.code == .tryLater)
        // Outside the range layouts are granted.
        try h.layoutGet(in: c, inode, [h.blocks(6, 2)])
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("a session whose pin would wait on a break that waits for its own pins fails at once (no deadlock)")
    func noDeadlock() throws {
        var h = Harness()
        let a = h.openSession("alice", ttl: .seconds(300))
        let b = h.openSession("bob", ttl: .seconds(300))
        let inode = h.file(in: a, blocks: 8)
        try h.pin(in: a, inode, [h.blocks(0, 1)])
        _ = try h.begin(.truncate(inode, size: 0, policy: .wait(timeout: .seconds(30)), expectedGeneration: nil), in: b)
        let request = PinRequest(inode: inode, ranges: [h.blocks(4, 1)], kind: .shortTerm(ttl: .seconds(5)), wait: .seconds(20))
        let error = #expect(throws: LeaseholdError.self) { try h.call(.pin(request), in: a) }
        #expect(error?.code == .rangeBreaking)
        // Another session may wait; it goes on when the break ends.
        let pinWait = try h.begin(.pin(request), in: b)
        let (firstPin, _) = (h.coordinator.pinIDs(of: a).first!, 0)
        try h.unpin(in: a, firstPin)
        guard case .failure(let late)? = h.reply(of: pinWait) else {
            Issue.record("the waiting pin did not finish")
            return
        }
        #expect(late.code == .notMapped, "after the truncate the range is a hole")
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("overlapping mapping changes of one inode run first come first served; disjoint ones run concurrently")
    func fifoOrdering() throws {
        var h = Harness()
        let a = h.openSession("alice", ttl: .seconds(300))
        let b = h.openSession("bob", ttl: .seconds(300))
        let c = h.openSession("carol", ttl: .seconds(300))
        let inode = h.file(in: a, blocks: 16)
        let layout = try h.layoutGet(in: a, inode, [h.blocks(0, 4)])
        let first = try h.begin(.punchHole(inode, h.blocks(0, 4), policy: .busy, expectedGeneration: nil), in: b)
        let second = try h.begin(.punchHole(inode, h.blocks(2, 4), policy: .busy, expectedGeneration: nil), in: c)
        // Disjoint: commits at once.
        let disjoint = try h.punch(in: c, inode, h.blocks(10, 2))
        #expect(disjoint.freedBlocks == 2)
        #expect(h.reply(of: second) == nil, "queued behind the first")
        try h.layoutReturn(in: a, layout.stateID)
        #expect(h.reply(of: first) != nil)
        guard case .success(.mappingChanged(let change))? = h.reply(of: second) else {
            Issue.record("second did not commit after the first")
            return
        }
        #expect(change.freedBlocks == 2, "blocks 2-3 were freed by the first")
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("conflicting pins are computed again at commit: a pin unpinned while recalls run frees its blocks")
    func conflictsRecomputedAtCommit() throws {
        var h = Harness()
        let a = h.openSession("alice", ttl: .seconds(300))
        let b = h.openSession("bob", ttl: .seconds(300))
        let inode = h.file(in: a, blocks: 4)
        let pin = try h.pin(in: a, inode, [h.blocks(0, 1)])
        let layout = try h.layoutGet(in: a, inode, [h.blocks(0, 4)])
        let pending = try h.begin(.truncate(inode, size: 0, policy: .busy, expectedGeneration: nil), in: b)
        try h.unpin(in: a, pin.pin)
        try h.layoutReturn(in: a, layout.stateID)
        guard case .success(.mappingChanged(let change))? = h.reply(of: pending) else {
            Issue.record("no commit")
            return
        }
        #expect(change.busyBlocks == 0)
        #expect(change.freedBlocks == 4)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }
}
