/// A half-open range of block numbers `start..<end`, physical or file-relative.
public struct BlockRange: Hashable, Sendable, Codable, CustomStringConvertible {
    public var start: UInt64
    public var end: UInt64

    /// Creates `start..<end`; `end` must not be below `start`.
    public init(start: UInt64, end: UInt64) {
        precondition(start <= end, "BlockRange end \(end) is below its start \(start)")
        self.start = start
        self.end = end
    }

    /// Creates the range of `count` blocks from `start`.
    public init(start: UInt64, count: UInt64) {
        self.init(start: start, end: start + count)
    }

    public var count: UInt64 { self.end - self.start }
    public var isEmpty: Bool { self.start == self.end }

    public func contains(_ block: UInt64) -> Bool {
        block >= self.start && block < self.end
    }

    public func contains(_ other: BlockRange) -> Bool {
        other.start >= self.start && other.end <= self.end
    }

    public func overlaps(_ other: BlockRange) -> Bool {
        self.start < other.end && other.start < self.end
    }

    /// The blocks in both ranges, or `nil` when they do not overlap.
    public func intersection(_ other: BlockRange) -> BlockRange? {
        let start = max(self.start, other.start)
        let end = min(self.end, other.end)
        return start < end ? BlockRange(start: start, end: end) : nil
    }

    public var description: String { "[\(self.start), \(self.end))" }
}

extension Array where Element == BlockRange {
    /// Sorts the ranges and merges overlapping or touching ones.
    public func coalesced() -> [BlockRange] {
        var result: [BlockRange] = []
        for range in self.sorted(by: { $0.start < $1.start }) where !range.isEmpty {
            if let last = result.last, range.start <= last.end {
                result[result.count - 1].end = Swift.max(last.end, range.end)
            } else {
                result.append(range)
            }
        }
        return result
    }

    /// Whether any range of the array overlaps `range`.
    public func anyOverlaps(_ range: BlockRange) -> Bool {
        self.contains { $0.overlaps(range) }
    }

    /// Total number of blocks, counting overlaps once per range.
    public var totalCount: UInt64 { self.reduce(0) { $0 + $1.count } }
}
