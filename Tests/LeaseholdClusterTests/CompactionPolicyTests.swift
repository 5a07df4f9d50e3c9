import LeaseholdCluster
import Testing

/// The compaction trigger (docs/cluster.md, "Compaction"): a checkpoint is due by
/// entries, by the bytes this leader wrote, or by the age of the oldest entry after the
/// checkpoint, whichever comes first; after a checkpoint it measures again.
@Suite("Compaction policy")
struct CompactionPolicyTests {
    static var policy: CompactionPolicy {
        var policy = CompactionPolicy()
        policy.entries = 100
        policy.bytes = 1_000
        policy.age = .seconds(60)
        return policy
    }

    @Test("each bound triggers alone; nothing is due while no entry follows the checkpoint")
    func bounds() {
        let start = ContinuousClock.now
        // Entries.
        var trigger = CompactionTrigger(policy: Self.policy, bytesWritten: 5_000)
        #expect(trigger.due(entriesAfterCheckpoint: 99, bytesWritten: 5_999, now: start) == nil)
        #expect(trigger.due(entriesAfterCheckpoint: 100, bytesWritten: 5_999, now: start) == .entries(100))
        // Bytes: counted from what the sink had written when measuring started.
        trigger = CompactionTrigger(policy: Self.policy, bytesWritten: 5_000)
        #expect(trigger.due(entriesAfterCheckpoint: 3, bytesWritten: 6_000, now: start) == .bytes(1_000))
        // Age: from the first check that saw an entry after the checkpoint.
        trigger = CompactionTrigger(policy: Self.policy, bytesWritten: 0)
        #expect(trigger.due(entriesAfterCheckpoint: 1, bytesWritten: 10, now: start) == nil)
        #expect(trigger.due(entriesAfterCheckpoint: 2, bytesWritten: 20, now: start + .seconds(59)) == nil)
        #expect(trigger.due(entriesAfterCheckpoint: 2, bytesWritten: 20, now: start + .seconds(60)) == .age(.seconds(60)))
        // An empty log after the checkpoint is never due, however old or large.
        trigger = CompactionTrigger(policy: Self.policy, bytesWritten: 0)
        #expect(trigger.due(entriesAfterCheckpoint: 0, bytesWritten: 1 << 30, now: start) == nil)
        #expect(trigger.due(entriesAfterCheckpoint: 0, bytesWritten: 1 << 30, now: start + .seconds(3_600)) == nil)
    }

    @Test("after a checkpoint bytes and age count again from there")
    func measuresAgain() {
        let start = ContinuousClock.now
        var trigger = CompactionTrigger(policy: Self.policy, bytesWritten: 0)
        #expect(trigger.due(entriesAfterCheckpoint: 5, bytesWritten: 400, now: start) == nil)
        #expect(trigger.due(entriesAfterCheckpoint: 9, bytesWritten: 1_200, now: start + .seconds(10)) == .bytes(1_200))
        trigger.compacted(bytesWritten: 1_200)
        #expect(trigger.due(entriesAfterCheckpoint: 1, bytesWritten: 1_900, now: start + .seconds(65)) == nil, "700 bytes and a fresh age since the checkpoint")
        #expect(trigger.due(entriesAfterCheckpoint: 4, bytesWritten: 2_199, now: start + .seconds(124)) == nil)
        #expect(trigger.due(entriesAfterCheckpoint: 4, bytesWritten: 2_199, now: start + .seconds(125)) == .age(.seconds(60)))
        // Entries drained to none (another checkpoint): the age restarts with the next entry.
        #expect(trigger.due(entriesAfterCheckpoint: 0, bytesWritten: 2_199, now: start + .seconds(126)) == nil)
        #expect(trigger.due(entriesAfterCheckpoint: 1, bytesWritten: 2_199, now: start + .seconds(127)) == nil)
        #expect(trigger.due(entriesAfterCheckpoint: 1, bytesWritten: 2_199, now: start + .seconds(186)) == nil)
        #expect(trigger.due(entriesAfterCheckpoint: 1, bytesWritten: 2_199, now: start + .seconds(187)) == .age(.seconds(60)))
    }
}
