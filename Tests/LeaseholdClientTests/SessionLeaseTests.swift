@testable import LeaseholdClient
import Testing

/// The jeopardy rule on a manual clock: the deadline counts from the send time of the
/// newest renewal the leader of the newest term acknowledged; nothing else extends it.
@Suite("Client session lease state machine")
struct SessionLeaseTests {
    static let ttl = Duration.seconds(15)

    @Test("active until send time + TTL − margin; jeopardy from then on, even before the watchdog ticks")
    func deadline() {
        let t0 = ContinuousClock.now
        var lease = SessionLease(ttl: Self.ttl, margin: .seconds(1), grantedAt: t0, term: 3)
        #expect(lease.deadline == t0 + .seconds(14))
        #expect(lease.tick(now: t0 + .seconds(13)) == .none)
        #expect(lease.state(at: t0 + .seconds(13)) == .active)
        // A host suspended past its deadline wakes in jeopardy: the state says so at once.
        #expect(lease.state(at: t0 + .seconds(60)) == .jeopardy)
        #expect(lease.tick(now: t0 + .seconds(60)) == .jeopardy(deadline: t0 + .seconds(14)))
        #expect(lease.tick(now: t0 + .seconds(61)) == .none, "announced once")
        #expect(lease.nextWake == nil)
    }

    @Test("the default margin is max(TTL / 10, 100 ms)")
    func defaultMargin() {
        let t0 = ContinuousClock.now
        #expect(SessionLease(ttl: .seconds(15), margin: nil, grantedAt: t0, term: 0).deadline == t0 + .milliseconds(13_500))
        #expect(SessionLease(ttl: .milliseconds(500), margin: nil, grantedAt: t0, term: 0).deadline == t0 + .milliseconds(400))
    }

    @Test("an acknowledged renewal moves the deadline to its send time + TTL − margin, never backwards; a retried one counts from its first send")
    func renewal() {
        let t0 = ContinuousClock.now
        var lease = SessionLease(ttl: Self.ttl, margin: .seconds(1), grantedAt: t0, term: 3)
        #expect(lease.acknowledged(sentAt: t0 + .seconds(5), ttl: Self.ttl, term: 3, now: t0 + .seconds(9)) == .none)
        #expect(lease.deadline == t0 + .seconds(19), "from the send (5 s), not the reply (9 s)")
        // A slow reply to an older renewal does not pull it back.
        #expect(lease.acknowledged(sentAt: t0 + .seconds(2), ttl: Self.ttl, term: 3, now: t0 + .seconds(10)) == .none)
        #expect(lease.deadline == t0 + .seconds(19))
    }

    @Test("a renewal acknowledged by the leader of an older term than the newest seen extends nothing")
    func olderTerm() {
        let t0 = ContinuousClock.now
        var lease = SessionLease(ttl: Self.ttl, margin: .seconds(1), grantedAt: t0, term: 3)
        lease.observe(term: 4)
        #expect(lease.acknowledged(sentAt: t0 + .seconds(10), ttl: Self.ttl, term: 3, now: t0 + .seconds(10)) == .none)
        #expect(lease.deadline == t0 + .seconds(14), "the deposed leader's reply did not count")
        #expect(lease.acknowledged(sentAt: t0 + .seconds(10), ttl: Self.ttl, term: 4, now: t0 + .seconds(10)) == .none)
        #expect(lease.deadline == t0 + .seconds(24))
        #expect(lease.newestTerm == 4)
    }

    @Test("out of jeopardy only by a renewal whose new deadline is still ahead")
    func recovery() {
        let t0 = ContinuousClock.now
        var lease = SessionLease(ttl: Self.ttl, margin: .seconds(1), grantedAt: t0, term: 1)
        #expect(lease.tick(now: t0 + .seconds(14)) == .jeopardy(deadline: t0 + .seconds(14)))
        // A renewal sent long ago and answered only now: its deadline has passed as well.
        #expect(lease.acknowledged(sentAt: t0 + .seconds(1), ttl: Self.ttl, term: 1, now: t0 + .seconds(16)) == .none)
        #expect(lease.phase == .jeopardy)
        #expect(lease.acknowledged(sentAt: t0 + .seconds(15), ttl: Self.ttl, term: 1, now: t0 + .seconds(16)) == .renewed)
        #expect(lease.state(at: t0 + .seconds(16)) == .active)
        #expect(lease.nextWake == t0 + .seconds(29))
    }

    @Test("ended for good: nothing brings it back")
    func ended() {
        let t0 = ContinuousClock.now
        var lease = SessionLease(ttl: Self.ttl, margin: .seconds(1), grantedAt: t0, term: 1)
        #expect(lease.end() == true)
        #expect(lease.end() == false)
        #expect(lease.acknowledged(sentAt: t0 + .seconds(1), ttl: Self.ttl, term: 1, now: t0 + .seconds(1)) == .none)
        #expect(lease.tick(now: t0 + .seconds(100)) == .none)
        #expect(lease.state(at: t0 + .seconds(100)) == .ended)
    }
}
