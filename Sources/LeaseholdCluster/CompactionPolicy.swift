/// When the leader writes a checkpoint (docs/cluster.md, "Compaction"): the log after the
/// checkpoint is bounded by entries, by bytes and by age, whichever comes first.
///
/// Every measure is read from etcd, so it holds across leaders: the entries are the head's
/// index minus the checkpoint's, the bytes are the head's `log_bytes` minus the
/// checkpoint's (every log transaction adds what it writes to the head), and the age is
/// that of the oldest entry after the checkpoint by the wall clock its leader wrote into
/// it. A takeover therefore inherits the previous leader's tail as it is, and a leader
/// that changes often still compacts on time.
public struct CompactionPolicy: Sendable, Hashable {
    /// A checkpoint once this many entries follow the last one.
    public var entries: UInt64 = 10_000
    /// ... or once the entries after it hold this many bytes (parts included).
    public var bytes: UInt64 = 64 << 20
    /// ... or once the oldest entry after it is this old.
    public var age: Duration = .seconds(600)
    /// How often the leader looks.
    public var check: Duration = .seconds(10)

    public init() {}

    /// The log after the checkpoint, as etcd holds it.
    public struct Tail: Sendable, Hashable {
        public var entries: UInt64
        public var bytes: UInt64
        /// The age of its oldest entry; `nil` when there is none, or its time is unknown
        /// (an entry written before entries carried one).
        public var age: Duration?

        public init(entries: UInt64, bytes: UInt64, age: Duration?) {
            self.entries = entries
            self.bytes = bytes
            self.age = age
        }
    }

    public enum Reason: Sendable, Hashable, CustomStringConvertible {
        case entries(UInt64)
        case bytes(UInt64)
        case age(Duration)

        public var description: String {
            switch self {
            case .entries(let count): "\(count) entries follow the checkpoint"
            case .bytes(let bytes): "the entries after the checkpoint hold \(bytes) bytes"
            case .age(let age): "the oldest entry after the checkpoint is \(age) old"
            }
        }
    }

    /// Whether `tail` calls for a checkpoint, and why; never for an empty tail.
    public func due(_ tail: Tail) -> Reason? {
        guard tail.entries > 0 else { return nil }
        if tail.entries >= self.entries { return .entries(tail.entries) }
        if tail.bytes >= self.bytes { return .bytes(tail.bytes) }
        if let age = tail.age, age >= self.age { return .age(age) }
        return nil
    }
}
