import LeaseholdCluster
import Testing

/// The compaction policy (docs/cluster.md, "Compaction"): a checkpoint is due by
/// entries, by bytes or by the age of the oldest entry after the checkpoint, whichever
/// comes first, and never for an empty tail. The tail is measured in etcd (`LogTests`
/// below in `LogCompactorTests` checks the measures across leaders).
@Suite("Compaction policy")
struct CompactionPolicyTests {
    static var policy: CompactionPolicy {
        var policy = CompactionPolicy()
        policy.entries = 100
        policy.bytes = 1_000
        policy.age = .seconds(60)
        return policy
    }

    @Test("each bound triggers alone; below every bound, or with nothing after the checkpoint, nothing is due")
    func bounds() {
        let policy = Self.policy
        #expect(policy.due(.init(entries: 99, bytes: 999, age: .seconds(59))) == nil)
        #expect(policy.due(.init(entries: 100, bytes: 0, age: nil)) == .entries(100))
        #expect(policy.due(.init(entries: 3, bytes: 1_000, age: nil)) == .bytes(1_000))
        #expect(policy.due(.init(entries: 1, bytes: 10, age: .seconds(60))) == .age(.seconds(60)))
        #expect(policy.due(.init(entries: 1, bytes: 10, age: nil)) == nil, "an entry without a time ages nothing")
        #expect(policy.due(.init(entries: 0, bytes: 1 << 30, age: .seconds(3_600))) == nil, "an empty tail is never due")
        // The defaults: 10,000 entries, 64 MiB, 10 minutes.
        let defaults = CompactionPolicy()
        #expect(defaults.due(.init(entries: 9_999, bytes: (64 << 20) - 1, age: .seconds(599))) == nil)
        #expect(defaults.due(.init(entries: 10_000, bytes: 0, age: nil)) == .entries(10_000))
    }
}
