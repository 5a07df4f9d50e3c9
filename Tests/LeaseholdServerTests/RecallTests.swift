import Foundation
@testable import LeaseholdClient
import LeaseholdCore
import LeaseholdTestSupport
import Synchronization
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
        // 3 s: slack for the first seconds of a full run on two loaded cores.
        let pair = try await self.setUp(recallTimeout: .seconds(3))
        let started = ContinuousClock.now
        async let truncated = pair.breaking.truncate(pair.inode, size: 0)
        let recall = try await self.recall(pair.events)
        let remaining = try await recall.prolong()
        #expect(remaining > .seconds(3))
        let again = await #expect(throws: LeaseholdError.self) { try await recall.prolong() }
        #expect(again?.code == .invalidArgument)
        // Past the first deadline (3 s), well within the prolonged one (6 s).
        try await Task.sleep(until: started + .milliseconds(3_600), clock: .continuous)
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

    @Test("a session that answers its recalls by itself lets a program simply await a truncate that recalls its layout: returned after quiescing, nobody evicted")
    func responder() async throws {
        let pair = try await self.setUp(recallTimeout: .seconds(10))
        let quiesced = Mutex<[LayoutRecallNotice]>([])
        pair.held.answerRecalls(
            layouts: { notice in quiesced.withLock { $0.append(notice) } },
            pins: { notice in Issue.record("no pin was recalled, got \(notice)") }
        )
        // The same program awaits the truncate directly, with no task of its own answering
        // (without the responder this is `ignored` above: revoked and evicted).
        let change = try await pair.breaking.truncate(pair.inode, size: 4 * 4_096)
        #expect(change.returnedLayouts == [pair.layout.stateID.id])
        #expect(change.revokedLayouts.isEmpty && change.evictedSessions.isEmpty)
        #expect(quiesced.withLock { $0.map(\.range) } == [BlockRange(start: 4, end: 8)])
        #expect(quiesced.withLock { $0.map(\.stateID.id) } == [pair.layout.stateID.id])
        #expect(pair.held.leaseState == .active)
        #expect(!pair.events.all.contains { if case .layoutRecall = $0 { true } else { false } }, "an answered recall does not also reach events")
        try await pair.stop()
    }

    @Test("the responder unpins a recalled pin after its closure; a closure that throws hands its recall to events instead")
    func responderFallsBack() async throws {
        let pair = try await self.setUp(recallTimeout: .seconds(10))
        let pin = try await pair.held.pin(pair.inode, ranges: [ByteRange(offset: 0, length: 4_096)], kind: .longTerm)
        struct NotQuiesced: Error {}
        let stopped = Mutex<[PinID]>([])
        pair.held.answerRecalls(layouts: { _ in throw NotQuiesced() }, pins: { notice in stopped.withLock { $0.append(notice.pin) } })
        async let truncated = pair.breaking.truncate(pair.inode, size: 0)
        // The layout's closure threw: the recall is the application's, on events.
        let recall = try await self.recall(pair.events)
        try await recall.returnLayout()
        let change = try await truncated
        #expect(change.recalledPins == [pin.pin])
        #expect(change.evictedSessions.isEmpty)
        let admin = try await pair.cluster.client()
        try await eventually("the responder unpinned") { try await admin.pins().isEmpty }
        #expect(stopped.withLock { $0 } == [pin.pin])
        // Released by the unpin, not revoked at a deadline: the event history says so.
        let released = try await admin.events().compactMap { event -> PinReleaseReason? in
            if case .pinReleased(let id, let reason) = event.kind, id == pin.pin { return reason }
            return nil
        }
        #expect(released == [.unpinned])
        #expect(pair.held.leaseState == .active)
        admin.close()
        try await pair.stop()
    }

    @Test("a process that takes a session over with a responder answers the recall replayed to it")
    func responderOnResume() async throws {
        let pair = try await self.setUp(recallTimeout: .seconds(10))
        // The holder's process goes away; its session stays, and a truncate recalls the
        // layout while nobody is connected.
        pair.holder.close()
        async let truncated = pair.breaking.truncate(pair.inode, size: 0)
        let admin = try await pair.cluster.client()
        try await eventually("the recall is outstanding") {
            guard case .recalling? = try await admin.layouts().first?.state else { return false }
            return true
        }
        let successor = try await pair.cluster.client("nic-1")
        let quiesced = Mutex(0)
        let resumed = try await successor.resumeSession(
            pair.held.id, secret: pair.held.secret,
            recalls: RecallResponder(layouts: { _ in quiesced.withLock { $0 += 1 } }, pins: { _ in })
        )
        let change = try await truncated
        #expect(change.returnedLayouts == [pair.layout.stateID.id], "answered from the replay, not revoked")
        #expect(change.evictedSessions.isEmpty)
        #expect(quiesced.withLock { $0 } == 1)
        #expect(resumed.leaseState == .active)
        admin.close()
        successor.close()
        try await pair.stop()
    }

    @Test("with every other slot busy, a recall answer still gets the slot kept for it; other calls never take that slot")
    func answerSlot() async {
        let pool = SlotPool(count: 3)
        let a = await pool.acquire()
        let b = await pool.acquire()
        #expect(Set([a.slot, b.slot]) == [0, 1])
        let answer = await pool.acquire(answering: true)
        #expect(answer.slot == 2)
        pool.release(answer)
        // Slot 2 is free now, but only for answers: a call waits for slot 0 instead.
        let waiting = Task { await pool.acquire() }
        pool.release(a)
        #expect(await waiting.value.slot == 0)
        #expect(await pool.acquire(answering: true).slot == 2)

        // Two slots: one for calls, one kept. A second answer waits, and a freed slot
        // goes to it before any call.
        let two = SlotPool(count: 2)
        let call = await two.acquire()
        let kept = await two.acquire(answering: true)
        #expect(call.slot == 0 && kept.slot == 1)
        let secondAnswer = Task { await two.acquire(answering: true) }
        while !two.hasAnswerWaiter { await Task.yield() }
        let laterCall = Task { await two.acquire() }
        two.release(call)
        let handed = await secondAnswer.value
        #expect(handed.slot == 0, "the freed slot went to the waiting answer")
        two.release(kept)
        two.release(handed)
        #expect(await laterCall.value.slot == 0)

        // One slot: nothing is kept; an answer shares it.
        let one = SlotPool(count: 1)
        #expect(one.reserved == nil)
        #expect(await one.acquire(answering: true).slot == 0)
    }

    @Test("a recall leaves only once its step is durable: lost with its batch, the next leader's recall has higher numbers and is answered")
    func recallWaitsForCommit() async throws {
        let cluster = try await TestCluster.start(standby: true)
        let sink = HoldingSink()
        let failures = Mutex<[String]>([])
        let lead: @Sendable (UInt64) async throws -> Void = { term in
            try await cluster.server.lead(sink: sink, term: term, gate: { true }, onFailure: { failure in failures.withLock { $0.append("\(failure)") } })
        }
        try await lead(1)
        // Reconnecting slowly, so that both clients come back after the new term began
        // (this test is not about a client that reaches a standby).
        let slow: (inout ClientConfiguration) -> Void = { $0.reconnectBackoff = (.seconds(1), .seconds(1)) }
        let holder = try await cluster.client("nic-1", slow)
        let breaker = try await cluster.client("truncater", slow)
        let held = try await holder.openSession(name: "holder", ttl: .seconds(20))
        let breaking = try await breaker.openSession(name: "breaker", ttl: .seconds(20))
        let events = EventLog(held)
        let inode = try await breaking.createInode()
        _ = try await breaking.allocate(inode, ByteRange(offset: 0, length: 8 * 4_096))
        let layout = try await held.layoutGet(inode, ranges: [ByteRange(offset: 0, length: 8 * 4_096)], iomode: .readWrite)
        let recalls: @Sendable () -> [LayoutRecall] = {
            events.all.compactMap { event in
                if case .layoutRecall(let recall) = event { return recall }
                return nil
            }
        }

        // A first recall, answered: the numbers the holder has seen.
        async let first = breaking.truncate(inode, size: 6 * 4_096)
        try await eventually("the first recall") { recalls().count == 1 }
        try await recalls()[0].returnLayout()
        _ = try await first
        let seen = recalls()[0].notice.recall

        // The second recall's step is never durable: its batch is held, then lost.
        sink.hold()
        let lost = Task { try await breaking.truncate(inode, size: 4 * 4_096) }
        try await eventually("the truncate's step reached the sink") { sink.heldCount >= 1 }
        try await Task.sleep(for: .milliseconds(300))
        #expect(recalls().count == 1, "a recall left before its step was durable")
        sink.loseHeld()
        try await eventually("the journal stopped") { !failures.withLock { $0 }.isEmpty }
        cluster.server.standDown(leader: nil, term: 1, reason: "test: the node was lost")
        try await lead(2)

        // Both clients resume on the new term; the truncate is retried with its slot and
        // sequence, and its recall reaches the holder with a fresh recall id.
        try await eventually("the recall of the retried truncate", timeout: .seconds(20)) { recalls().count == 2 }
        let again = recalls()[1]
        #expect(again.notice.recall > seen)
        #expect(again.notice.stateID.id == layout.stateID.id)
        try await again.returnLayout()
        let change = try await lost.value
        #expect(change.returnedLayouts == [layout.stateID.id])
        #expect(change.evictedSessions.isEmpty)
        #expect(held.leaseState == .active)
        holder.close()
        breaker.close()
        try await cluster.stop()
    }
}
