/// The volume's free space: coalesced free extents indexed by start and by length, like
/// XFS's by-block and by-size free-space trees.
///
/// Allocation is best fit with locality: a request first tries the blocks right after a
/// hint (the physical end of the file's neighbouring extent), then the smallest extent
/// that holds the whole request (preferring one at or after the hint among equals), and
/// only when no single extent is large enough, several fragments, largest first. Every
/// operation is O(log n) per extent touched. Busy blocks are never in here, so they can
/// never be handed out.
public struct FreeSpace: Sendable, Equatable {
    struct LengthKey: Comparable, Hashable, Sendable {
        var count: UInt64
        var start: UInt64

        static func < (lhs: LengthKey, rhs: LengthKey) -> Bool {
            (lhs.count, lhs.start) < (rhs.count, rhs.start)
        }
    }

    /// start -> count.
    private(set) var byStart = OrderedMap<UInt64, UInt64>()
    private var byLength = OrderedMap<LengthKey, Bool>()
    /// Total free blocks.
    public private(set) var blockCount: UInt64 = 0
    private var touched = DirtyKeys<UInt64>()

    public init() {}

    /// Free space holding exactly `ranges` as given (recovery, tests): nothing is
    /// repaired, so the invariant checker sees a damaged image as it is.
    public init(restoring ranges: [BlockRange]) {
        for range in ranges where !range.isEmpty { self.setExtent(start: range.start, count: range.count) }
        self.touched.removeAll()
    }

    public static func == (lhs: FreeSpace, rhs: FreeSpace) -> Bool {
        lhs.blockCount == rhs.blockCount && lhs.byStart == rhs.byStart
    }

    /// Number of free extents.
    public var extentCount: Int { self.byStart.count }

    /// The largest free extent, or `nil` when nothing is free.
    public var largestExtent: BlockRange? {
        guard let (key, _) = self.byLength.last else { return nil }
        return BlockRange(start: key.start, count: key.count)
    }

    /// Every free extent in block order.
    public var extents: [BlockRange] {
        self.byStart.map { BlockRange(start: $0.key, count: $0.value) }
    }

    /// At most `limit` free extents starting at or after `block`, in block order.
    public func extents(from block: UInt64, limit: Int) -> [BlockRange] {
        self.byStart.elements(from: block).prefix(limit).map { BlockRange(start: $0.key, count: $0.value) }
    }

    /// The free extent containing `block`.
    public func extent(containing block: UInt64) -> BlockRange? {
        guard let (start, count) = self.byStart.floor(block), block < start + count else { return nil }
        return BlockRange(start: start, count: count)
    }

    /// Free blocks of `range`.
    public func freeCount(in range: BlockRange) -> UInt64 {
        var total: UInt64 = 0
        var from = range.start
        if let (start, count) = self.byStart.floor(range.start), start + count > range.start { from = start }
        for (start, count) in self.byStart.elements(from: from) {
            if start >= range.end { break }
            total += BlockRange(start: start, count: count).intersection(range)?.count ?? 0
        }
        return total
    }

    // MARK: - Freeing

    /// Returns `range` to free space, coalescing with free neighbours.
    /// - Precondition: no block of `range` is free already (a double free is a bug).
    public mutating func free(_ range: BlockRange) {
        guard !range.isEmpty else { return }
        var start = range.start
        var end = range.end
        if let (leftStart, leftCount) = self.byStart.lower(range.end) {
            precondition(leftStart + leftCount <= range.start, "double free of \(range): overlaps free [\(leftStart), +\(leftCount))")
        }
        if let (leftStart, leftCount) = self.byStart.lower(start), leftStart + leftCount == start {
            self.removeExtent(start: leftStart, count: leftCount)
            start = leftStart
        }
        if let rightCount = self.byStart[end] {
            self.removeExtent(start: end, count: rightCount)
            end += rightCount
        }
        self.setExtent(start: start, count: end - start)
    }

    // MARK: - Allocation

    /// Takes `count` blocks, as few fragments as possible, near `hint` when given.
    /// - Returns: the allocated ranges in allocation order, or `nil` (changing nothing)
    ///   when fewer than `count` blocks are free.
    public mutating func allocate(_ count: UInt64, near hint: UInt64? = nil) -> [BlockRange]? {
        guard count > 0 else { return [] }
        guard count <= self.blockCount else { return nil }
        if let hint, let extent = self.extent(containing: hint), extent.end - hint >= count {
            let taken = BlockRange(start: hint, count: count)
            self.take(taken, from: extent)
            return [taken]
        }
        var result: [BlockRange] = []
        var remaining = count
        while remaining > 0 {
            if let (key, _) = self.byLength.ceiling(LengthKey(count: remaining, start: hint ?? 0)) {
                let taken = BlockRange(start: key.start, count: remaining)
                self.take(taken, from: BlockRange(start: key.start, count: key.count))
                result.append(taken)
                remaining = 0
            } else {
                let (key, _) = self.byLength.last!
                let extent = BlockRange(start: key.start, count: key.count)
                self.take(extent, from: extent)
                result.append(extent)
                remaining -= extent.count
            }
        }
        return result
    }

    /// Removes exactly `range` from free space (recovery checks and tests).
    /// - Returns: false, changing nothing, unless every block of `range` is free.
    @discardableResult
    public mutating func remove(_ range: BlockRange) -> Bool {
        guard !range.isEmpty else { return true }
        guard let extent = self.extent(containing: range.start), extent.contains(range) else { return false }
        self.take(range, from: extent)
        return true
    }

    private mutating func take(_ taken: BlockRange, from extent: BlockRange) {
        self.removeExtent(start: extent.start, count: extent.count)
        if taken.start > extent.start {
            self.setExtent(start: extent.start, count: taken.start - extent.start)
        }
        if taken.end < extent.end {
            self.setExtent(start: taken.end, count: extent.end - taken.end)
        }
    }

    private mutating func setExtent(start: UInt64, count: UInt64) {
        self.byStart[start] = count
        self.byLength[LengthKey(count: count, start: start)] = true
        self.blockCount += count
        self.touched.insert(start)
    }

    private mutating func removeExtent(start: UInt64, count: UInt64) {
        self.byStart.removeValue(forKey: start)
        self.byLength.removeValue(forKey: LengthKey(count: count, start: start))
        self.blockCount -= count
        self.touched.insert(start)
    }

    // MARK: - Persistence and checks

    /// Free extents changed since the last call: start -> count, or `nil` when removed.
    public mutating func drainChanges() -> [(start: UInt64, count: UInt64?)] {
        guard !self.touched.isEmpty else { return [] }
        let changes = self.touched.elements.map { (start: $0, count: self.byStart[$0]) }
        self.touched.removeAll()
        return changes
    }

    /// Every defect: overlapping or touching (uncoalesced) extents, indexes that disagree,
    /// a wrong total. Empty when well formed.
    public func structuralProblems() -> [String] {
        var problems = self.byStart.structuralProblems() + self.byLength.structuralProblems()
        var previousEnd: UInt64?
        var total: UInt64 = 0
        for (start, count) in self.byStart {
            total += count
            if count == 0 { problems.append("empty free extent at \(start)") }
            if let previousEnd {
                if previousEnd > start { problems.append("free extents overlap at \(start)") }
                if previousEnd == start { problems.append("free extents touch at \(start) but are not coalesced") }
            }
            previousEnd = start + count
            if self.byLength[LengthKey(count: count, start: start)] == nil {
                problems.append("free extent [\(start), +\(count)) missing from the by-length index")
            }
        }
        if self.byLength.count != self.byStart.count {
            problems.append("by-length index has \(self.byLength.count) extents, by-start \(self.byStart.count)")
        }
        if total != self.blockCount { problems.append("free total \(self.blockCount) but extents hold \(total)") }
        return problems
    }
}
