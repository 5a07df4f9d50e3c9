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
