/// When the leader writes a checkpoint (docs/cluster.md, "Compaction"): the log after the
/// checkpoint is bounded by entries, by bytes and by age, whichever comes first.
///
/// Lifecycle: one ``CompactionTrigger`` per leadership. It starts when the node takes
/// over, with nothing measured; every check is told how many entries follow the
/// checkpoint and how many bytes this leader's sink has written so far, and says whether
/// a checkpoint is due and why; after a checkpoint it starts measuring again. Bytes and
/// age count what this leader wrote and saw: the entries a previous leader left after its
/// last checkpoint are bounded by that leader's own trigger (less than `bytes`, younger
/// than `age`), so the log never holds much more than twice a bound.
public struct CompactionPolicy: Sendable, Hashable {
    /// A checkpoint once this many entries follow the last one.
    public var entries: UInt64 = 10_000
    /// ... or once the entries this leader wrote since then hold this many bytes.
    public var bytes: UInt64 = 64 << 20
    /// ... or once an entry after the checkpoint has been there this long (and at least
    /// one follows it).
    public var age: Duration = .seconds(600)
    /// How often the leader looks.
    public var check: Duration = .seconds(10)

    public init() {}
}

/// One leadership's measure of the log after the checkpoint (``CompactionPolicy``). Pure:
/// the caller passes the time.
public struct CompactionTrigger: Sendable {
    public enum Reason: Sendable, Hashable, CustomStringConvertible {
        case entries(UInt64)
        case bytes(UInt64)
        case age(Duration)

        public var description: String {
            switch self {
            case .entries(let count): "\(count) entries follow the checkpoint"
            case .bytes(let bytes): "\(bytes) bytes written since the checkpoint"
            case .age(let age): "the oldest entry after the checkpoint is \(age) old"
            }
        }
    }

    public let policy: CompactionPolicy
    /// The sink's byte count when measuring (re)started.
    private var bytesMark: UInt64
    /// When this leader first saw an entry after the checkpoint; `nil` while none follow.
    private var pendingSince: ContinuousClock.Instant?

    public init(policy: CompactionPolicy, bytesWritten: UInt64) {
        self.policy = policy
        self.bytesMark = bytesWritten
    }

    /// Whether a checkpoint is due, and why.
    public mutating func due(entriesAfterCheckpoint entries: UInt64, bytesWritten: UInt64, now: ContinuousClock.Instant) -> Reason? {
        guard entries > 0 else {
            self.pendingSince = nil
            return nil
        }
        if entries >= self.policy.entries { return .entries(entries) }
        let bytes = bytesWritten &- self.bytesMark
        if bytes >= self.policy.bytes { return .bytes(bytes) }
        let since = self.pendingSince ?? now
        self.pendingSince = since
        if now - since >= self.policy.age { return .age(now - since) }
        return nil
    }

    /// A checkpoint was written: measure from here.
    public mutating func compacted(bytesWritten: UInt64) {
        self.bytesMark = bytesWritten
        self.pendingSince = nil
    }
}
