/// The position of a batch in the journal: the term of the node that wrote it (0 on a
/// single node; in cluster mode the create revision of the leader key it wrote under) and
/// its index, which grows by one per batch and never repeats. Positions order by index;
/// the term tells writers apart.
public struct LogPosition: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var term: UInt64
    public var index: UInt64

    public init(term: UInt64, index: UInt64) {
        self.term = term
        self.index = index
    }

    /// Before the first batch.
    public static let zero = LogPosition(term: 0, index: 0)

    public static func < (lhs: LogPosition, rhs: LogPosition) -> Bool {
        (lhs.index, lhs.term) < (rhs.index, rhs.term)
    }

    /// The position of the next batch written in `term`.
    public func next(term: UInt64) -> LogPosition {
        LogPosition(term: term, index: self.index + 1)
    }

    public var description: String { "\(self.term):\(self.index)" }
}
