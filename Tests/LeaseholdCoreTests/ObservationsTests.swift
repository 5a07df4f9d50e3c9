import LeaseholdTestSupport
import Testing

@testable import LeaseholdCore

/// The figures steps report for metrics: expiry lateness, recall latency, recalls sent,
/// answered and revoked.
@Suite("Observations for metrics")
struct ObservationsTests {
    @Test("an expiry is never early, and its lateness is the time past the deadline")
    func expiryLateness() {
        var h = Harness()
        let a = h.openSession("alice", ttl: .seconds(10))
        var output = h.advance(by: .milliseconds(9_999))
        #expect(output.effects.observations.expiryLateness.isEmpty)
        #expect(h.coordinator.sessions[a] != nil)
        output = h.advance(by: .milliseconds(51))
        #expect(output.effects.observations.expiryLateness == [.milliseconds(50)])
        #expect(h.coordinator.sessions[a] == nil)
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("a recall answered after 3 s reports 3 s; one left to its deadline counts as revoked")
    func recallLatencyAndRevocation() throws {
        var h = Harness()
        let a = h.openSession("alice", ttl: .seconds(300))
        let b = h.openSession("bob", ttl: .seconds(300))
        let c = h.openSession("carol", ttl: .seconds(300))
        let inode = h.file(in: a, blocks: 8)
        let layout = try h.layoutGet(in: a, inode, [h.blocks(0, 8)])
        _ = try h.begin(.truncate(inode, size: 0, policy: .busy, expectedGeneration: nil), in: b)
        #expect(h.lastOutput?.effects.observations.recallsSent == 1)
        h.advance(by: .seconds(3))
        try h.layoutReturn(in: a, layout.stateID)
        #expect(h.lastOutput?.effects.observations.recallsAnswered == [.seconds(3)])
        #expect(h.lastOutput?.effects.observations.recallsRevoked == 0)

        let second = h.file(in: c, blocks: 4)
        _ = try h.layoutGet(in: c, second, [h.blocks(0, 4)])
        _ = try h.begin(.truncate(second, size: 0, policy: .busy, expectedGeneration: nil), in: b)
        let output = h.advance(by: .seconds(10))
        #expect(output.effects.observations.recallsRevoked == 1)
        #expect(output.effects.observations.recallsAnswered.isEmpty)
        #expect(h.coordinator.sessions[c] == nil, "revocation evicts the holder")
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("a plain step observes nothing")
    func quietStep() throws {
        var h = Harness()
        let a = h.openSession("alice")
        let inode = h.file(in: a, blocks: 2)
        _ = try h.pin(in: a, inode, [h.blocks(0, 1)])
        #expect(h.lastOutput?.effects.observations.isEmpty == true)
    }
}

/// A storm of due timers is fired in slices of `maxTimersPerStep`, never early, and the
/// invariants hold between slices.
@Suite("Timer budget per step")
struct TimerBudgetTests {
    @Test("1,000 sessions expiring at one instant go in slices of 100 per tick; a request in an overdue session expires it first")
    func expiryStormInSlices() async throws {
        // CPU-bound (1,000 sessions, the invariants checked after every step): on a
        // low-priority thread of its own, not on the two cooperative threads the timing
        // tests beside it need.
        let failures = try await onOwnThread { () -> [String] in
            var checks = OffContextChecks()
            var configuration = Harness.configuration()
            configuration.maxTimersPerStep = 100
            configuration.quotas.sessionsPerIdentity = nil
            var h = Harness(configuration: configuration)
            var sessions: [SessionID] = []
            for _ in 0..<1_000 { sessions.append(h.openSession("client", ttl: .seconds(10))) }
            // Their warnings (at 2/3 of the TTL) are due first: 1,000 timers, 10 ticks.
            h.advance(by: .seconds(7))
            for _ in 0..<9 where !h.coordinator.isSettled { h.advance(by: .zero) }
            checks.check(h.coordinator.isSettled)
            checks.check(h.coordinator.sessions.count == 1_000, "a warning is not an expiry")

            var output = h.advance(by: .seconds(4))
            checks.check(output.effects.observations.expiryLateness.count == 100)
            checks.check(h.coordinator.sessions.count == 900)
            checks.check(!h.coordinator.isSettled)
            checks.check(output.effects.nextDeadline.map { $0 <= h.now } == true, "the edge is told to tick again at once")
            // Requests leave the backlog to ticks (maxTimersPerRequest = 0)...
            let lateComer = h.openSession("late-comer", ttl: .seconds(10))
            checks.check(h.lastOutput?.effects.observations.expiryLateness.isEmpty == true)
            _ = h.createInode(in: lateComer)
            checks.check(h.lastOutput?.effects.observations.expiryLateness.isEmpty == true)
            checks.check(h.coordinator.sessions.count == 900 + 1)
            // ...except a request in an overdue session itself: it expires first, and the
            // session sees its TTL exactly.
            let overdue = sessions[999]
            checks.check(h.coordinator.sessions[overdue] != nil)
            var refused: LeaseholdError?
            do { _ = try h.call(.keepAlive, in: overdue) } catch let error as LeaseholdError { refused = error } catch { checks.check(false, "\(error)") }
            checks.check(refused?.code == .sessionExpired || refused?.code == .fenced, "a keepalive in an overdue session: \(String(describing: refused))")
            checks.check(h.lastOutput?.effects.observations.expiryLateness == [.seconds(1)])
            checks.check(h.coordinator.sessions[overdue] == nil)
            var ticks = 0
            while !h.coordinator.isSettled {
                output = h.advance(by: .zero)
                ticks += 1
                checks.check(output.effects.observations.expiryLateness.count <= 100)
            }
            checks.check(ticks == 9)
            checks.check(h.coordinator.sessions.count == 1, "only the late-comer is left")
            checks.check(h.violations.isEmpty, "\(h.violations.prefix(3))")
            return checks.failures
        }
        #expect(failures.isEmpty, "\(failures)")
    }
}
