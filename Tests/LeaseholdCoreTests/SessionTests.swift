import LeaseholdTestSupport
import Testing

@testable import LeaseholdCore

@Suite("Sessions and exactly-once requests")
struct SessionTests {
    @Test("open clamps the TTL; keepAlive renews; 2/3 of the TTL warns; expiry at the TTL evicts, never early")
    func lifecycle() throws {
        var h = Harness()
        let a = h.openSession("alice", ttl: .milliseconds(100))
        guard case .sessions(let infos) = try h.admin(.listSessions(Page())) else { return }
        #expect(infos.first?.ttl == .seconds(1), "clamped to the minimum")
        let b = h.openSession("bob", ttl: .seconds(3_600))
        guard case .sessions(let both) = try h.admin(.listSessions(Page())) else { return }
        #expect(both.last?.ttl == .seconds(300), "clamped to the maximum")

        h.advance(by: .milliseconds(600))
        guard case .keptAlive(let ttl) = try h.call(.keepAlive, in: a) else { return }
        #expect(ttl == .seconds(1))
        h.advance(by: .milliseconds(667))
        #expect(h.pushes(of: a).contains { if case .sessionExpiring = $0.body { true } else { false } })
        h.advance(by: .milliseconds(332))
        #expect(h.coordinator.sessions[a] != nil, "1 ms before the deadline it is still live")
        h.advance(by: .milliseconds(1))
        #expect(h.coordinator.sessions[a] == nil)
        let error = #expect(throws: LeaseholdError.self) { try h.call(.keepAlive, in: a) }
        #expect(error?.code == .sessionExpired)
        #expect(h.coordinator.sessions[b] != nil)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("resume needs the right secret and identity and replays unacknowledged pushes in order")
    func resume() throws {
        var h = Harness()
        let caller = Caller(identity: "alice")
        let secret = SessionSecret(high: 1, low: 2)
        guard case .sessionOpened(let grant) = try h.call(.openSession(name: "a", ttl: .seconds(60), slots: 4, secret: secret), as: caller) else { return }
        let a = grant.session
        #expect(grant.slots == 4)
        let b = h.openSession("bob", ttl: .seconds(60))
        let inode = h.file(in: a, blocks: 4)
        let layout = try h.layoutGet(in: a, inode, [h.blocks(0, 4)])
        _ = try h.begin(.truncate(inode, size: 0, policy: .busy, expectedGeneration: nil), in: b)
        let wrong = #expect(throws: LeaseholdError.self) {
            try h.call(.resumeSession(a, secret: SessionSecret(high: 1, low: 3)), as: caller)
        }
        #expect(wrong?.code == .permissionDenied)
        let stranger = #expect(throws: LeaseholdError.self) { try h.call(.resumeSession(a, secret: secret), as: Caller(identity: "mallory")) }
        #expect(stranger?.code == .permissionDenied)
        guard case .sessionResumed(let resumed) = try h.call(.resumeSession(a, secret: secret), as: caller) else { return }
        #expect(resumed.replay.count == 1)
        guard case .layoutRecall(let notice)? = resumed.replay.first?.body else { return }
        #expect(notice.stateID.id == layout.stateID.id)
        try h.call(.acknowledgePushes(upTo: resumed.replay[0].number), in: a)
        guard case .sessionResumed(let again) = try h.call(.resumeSession(a, secret: secret), as: caller) else { return }
        #expect(again.replay.isEmpty)
        #expect(throws: LeaseholdError.self) { try h.call(.acknowledgePushes(upTo: 99), in: a) }
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("a retransmitted pin returns the stored reply instead of a second pin; an older sequence is refused")
    func exactlyOnce() throws {
        var h = Harness()
        let a = h.openSession("alice")
        let inode = h.file(in: a, blocks: 4)
        let request = Command.pin(PinRequest(inode: inode, ranges: [h.blocks(0, 1)], kind: .longTerm))
        let tag = SlotTag(slot: 5, sequence: 10)
        let first = try h.call(request, in: a, tag: tag)
        let retransmitted = try h.call(request, in: a, tag: tag)
        #expect(first == retransmitted)
        #expect(h.coordinator.pins.count == 1)
        #expect(h.lastOutput!.effects.changes.isEmpty, "a retransmission changes nothing")
        let older = #expect(throws: LeaseholdError.self) { try h.call(request, in: a, tag: SlotTag(slot: 5, sequence: 9)) }
        #expect(older?.code == .invalidArgument)
        let badSlot = #expect(throws: LeaseholdError.self) { try h.call(request, in: a, tag: SlotTag(slot: 64, sequence: 1)) }
        #expect(badSlot?.code == .invalidArgument)
        // Errors are replies too: the same retransmitted failure gives the same error.
        let failing = Command.unpin(PinID(rawValue: 77))
        let e1 = #expect(throws: LeaseholdError.self) { try h.call(failing, in: a, tag: SlotTag(slot: 6, sequence: 1)) }
        let e2 = #expect(throws: LeaseholdError.self) { try h.call(failing, in: a, tag: SlotTag(slot: 6, sequence: 1)) }
        #expect(e1 == e2)
        // A mutation without a tag is refused.
        let untagged = h.coordinator
        var probe = untagged
        let output = probe.handle(Request(caller: Caller(identity: "alice"), session: a, command: .createInode), at: h.now)
        #expect(output.reply?.error?.code == .invalidArgument)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("a retransmission of a waiting request joins it; a wait cancelled with its connection can be retried")
    func pendingRetransmission() throws {
        var h = Harness()
        let a = h.openSession("alice", ttl: .seconds(300))
        let b = h.openSession("bob", ttl: .seconds(300))
        let inode = h.file(in: a, blocks: 4)
        let pin = try h.pin(in: a, inode, [h.blocks(0, 1)])
        let truncate = Command.truncate(inode, size: 0, policy: .wait(timeout: .seconds(30)), expectedGeneration: nil)
        let tag = SlotTag(slot: 3, sequence: 1)
        let pending = try h.begin(truncate, in: b, tag: tag)
        #expect(h.send(truncate, in: b, tag: tag).output.decision == .pending)
        guard case .waitsCancelled(let count) = try h.call(.cancelWaits, in: b) else { return }
        #expect(count == 1)
        h.forgetPending(pending)
        let again = try h.begin(truncate, in: b, tag: tag)
        try h.unpin(in: a, pin.pin)
        guard case .success(.mappingChanged)? = h.reply(of: again) else {
            Issue.record("the retried truncate did not commit")
            return
        }
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("close unpins and returns everything without a fence")
    func close() throws {
        var h = Harness()
        let a = h.openSession("alice")
        let b = h.openSession("bob")
        let inode = h.file(in: a, blocks: 4)
        let pin = try h.pin(in: a, inode, [h.blocks(0, 2)])
        try h.truncate(in: b, inode, size: 0)
        try h.layoutGet(in: a, h.file(in: a, blocks: 1), [h.blocks(0, 1)])
        guard case .sessionClosed(let closed) = try h.call(.closeSession, in: a) else { return }
        #expect(closed.unpinned == [pin.pin])
        #expect(closed.returnedLayouts.count == 1)
        #expect(h.fences.isEmpty)
        #expect(h.status().busyBlocks == 2, "still inside releaseDelay")
        h.advance(by: .seconds(5))
        #expect(h.status().busyBlocks == 0)
        let error = #expect(throws: LeaseholdError.self) { try h.call(.keepAlive, in: a) }
        #expect(error?.code == .sessionExpired)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("a session is only usable by its own identity; admin commands need the admin role")
    func permissions() throws {
        var h = Harness()
        let a = h.openSession("alice")
        let denied = #expect(throws: LeaseholdError.self) { try h.call(.createInode, in: a, as: Caller(identity: "mallory")) }
        #expect(denied?.code == .permissionDenied)
        let notAdmin = #expect(throws: LeaseholdError.self) { try h.call(.status, as: Caller(identity: "alice")) }
        #expect(notAdmin?.code == .permissionDenied)
        let notTarget = #expect(throws: LeaseholdError.self) { try h.call(.registerTarget, as: Caller(identity: "alice")) }
        #expect(notTarget?.code == .permissionDenied)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("quotas: sessions per identity, pins per identity, pinned and busy blocks")
    func quotas() throws {
        var configuration = Harness.configuration()
        configuration.quotas.sessionsPerIdentity = 2
        configuration.quotas.pinsPerIdentity = 3
        configuration.quotas.pinnedBlocksPerIdentity = 6
        configuration.quotas.busyBlocksPerIdentity = 2
        var h = Harness(configuration: configuration)
        let a = h.openSession("alice")
        _ = h.openSession("alice")
        let third = #expect(throws: LeaseholdError.self) {
            try h.call(.openSession(name: "x", ttl: nil, slots: nil, secret: SessionSecret(high: 0, low: 0)), as: Caller(identity: "alice"))
        }
        #expect(third?.details.limit == "sessionsPerIdentity")
        let inode = h.file(in: a, blocks: 16)
        try h.pin(in: a, inode, [h.blocks(0, 4)])
        let blocks = #expect(throws: LeaseholdError.self) { try h.pin(in: a, inode, [h.blocks(4, 3)]) }
        #expect(blocks?.details.limit == "pinnedBlocksPerIdentity")
        try h.pin(in: a, inode, [h.blocks(4, 1)])
        try h.truncate(in: a, inode, size: 0)
        let busy = #expect(throws: LeaseholdError.self) { try h.pin(in: a, h.file(in: a, blocks: 1), [h.blocks(0, 1)]) }
        #expect(busy?.details.limit == "busyBlocksPerIdentity")
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("quota: pins per session counts live pins only")
    func pinsPerSession() throws {
        var configuration = Harness.configuration()
        configuration.quotas.pinsPerSession = 2
        var h = Harness(configuration: configuration)
        let a = h.openSession("alice")
        let b = h.openSession("alice")
        let inode = h.file(in: a, blocks: 8)
        let first = try h.pin(in: a, inode, [h.blocks(0, 1)])
        try h.pin(in: a, inode, [h.blocks(1, 1)])
        let third = #expect(throws: LeaseholdError.self) { try h.pin(in: a, inode, [h.blocks(2, 1)]) }
        #expect(third?.code == .resourceExhausted)
        #expect(third?.details.limit == "pinsPerSession")
        try h.pin(in: b, inode, [h.blocks(2, 1)])
        try h.unpin(in: a, first.pin)
        try h.pin(in: a, inode, [h.blocks(3, 1)])
        #expect(h.violations.isEmpty, "\(h.violations)")
    }
}
