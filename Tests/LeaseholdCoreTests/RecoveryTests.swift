import LeaseholdTestSupport
import Testing

@testable import LeaseholdCore

/// The persisted image is enough to rebuild the Coordinator: what the Store will load.
@Suite("Recovery from the persisted image")
struct RecoveryTests {
    @Test("a restored Coordinator has the same rows, a new epoch, and passes the checker", arguments: TestSeed.seeds(default: [5, 6]))
    func restoreAfterSimulation(seed: UInt64) async throws {
        // CPU-bound: on a low-priority thread of its own, not on the two cooperative
        // threads the timing tests beside it need.
        let failures = try await onOwnThread { () throws -> [String] in
            var failures: [String] = []
            var simulation = Simulation(seed: seed)
            for round in 0..<5 {
                simulation.run(steps: 400)
                if !simulation.problems.isEmpty { failures.append("seed \(seed): \(simulation.problems.prefix(3))") }
                let image = simulation.harness.persisted
                let restored = try Coordinator(restoring: image, configuration: Simulation.configuration(), at: Instant(nanoseconds: 77))
                var expected = image
                expected.volume?.epoch += 1
                var actual = restored.persistentState()
                // Requeued recalls bump push numbers; everything else is identical.
                for (id, session) in actual.sessions { actual.sessions[id]?.lastPush = expected.sessions[id]?.lastPush ?? session.lastPush }
                let differences = actual.differences(from: expected)
                if !differences.isEmpty { failures.append("seed \(seed) round \(round): \(differences.prefix(3))") }
                let violations = InvariantChecker.check(restored)
                if !violations.isEmpty { failures.append("seed \(seed) round \(round): \(violations.prefix(3))") }
            }
            return failures
        }
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test("after a restart nothing is freed, revoked or evicted early: every deadline restarts in full")
    func deadlinesRestartInFull() throws {
        var h = Harness()
        let a = h.openSession("alice", ttl: .seconds(10))
        let b = h.openSession("bob", ttl: .seconds(60))
        let inode = h.file(in: a, blocks: 4)
        try h.pin(in: a, inode, [h.blocks(0, 1)])
        try h.layoutGet(in: a, inode, [h.blocks(2, 2)])
        _ = try h.begin(.punchHole(inode, h.blocks(2, 2), policy: .busy, expectedGeneration: nil), in: b)
        h.send(.keepAlive, in: b)
        h.advance(by: .seconds(9))
        #expect(h.coordinator.persistentState().recalls.count == 1)
        var restored = try Coordinator(restoring: h.persisted, configuration: Harness.configuration(), at: Instant(nanoseconds: 5))
        // 9 s into a 10 s TTL: after the restart the session has a full TTL again.
        _ = restored.tick(at: Instant(nanoseconds: 5) + .seconds(9))
        #expect(restored.persistentState().sessions[a] != nil)
        #expect(restored.persistentState().recalls.count == 1, "the recall (10 s) was re-armed in full, not revoked at 1 s")
        // The recall was pushed again, for the client to see when it resumes.
        guard case .sessionResumed(let resumed)? = restored.handle(
            Request(caller: Caller(identity: "alice"), command: .resumeSession(a, secret: h.secrets[a]!)),
            at: Instant(nanoseconds: 5) + .seconds(9)
        ).reply?.response else {
            Issue.record("resume failed")
            return
        }
        #expect(resumed.replay.contains { if case .layoutRecall = $0.body { true } else { false } })
        #expect(InvariantChecker.check(restored).isEmpty)
    }

    @Test("a damaged image is refused with every problem named")
    func damagedImage() throws {
        var h = Harness()
        let a = h.openSession("alice")
        _ = h.file(in: a, blocks: 4)
        var image = h.persisted
        let (start, count) = image.freeExtents.first!
        image.freeExtents[start] = count - 1
        image.slots[SlotKey(session: SessionID(rawValue: 99), slot: 0)] = SlotRecord(sequence: 1, reply: .success(.unpinned(PinID(rawValue: 1))))
        let error = #expect(throws: RecoveryError.self) {
            _ = try Coordinator(restoring: image, configuration: Harness.configuration(), at: .zero)
        }
        #expect((error?.violations.count ?? 0) >= 2)
    }
}
