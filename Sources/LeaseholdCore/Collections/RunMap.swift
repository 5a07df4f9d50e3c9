/// What a run of blocks carries in a ``RunMap``.
///
/// A payload may depend on the position in the run: an extent's physical block moves
/// with the file block, a set of holders does not. `advanced(by:)` gives the payload of
/// the part of a run that starts `offset` blocks in; two neighbouring runs coalesce when
/// the left one, advanced by its length, equals the right one.
public protocol RunPayload: Equatable, Sendable {
    func advanced(by offset: UInt64) -> Self
}

/// Runs of consecutive blocks, each with a payload: sorted, non-overlapping, never empty,
/// and coalesced (no two touching runs whose payloads continue each other).
///
/// Extent maps, busy blocks and block references are all run maps. Every change goes
/// through ``update(_:_:)``, which splits the runs at the range's edges, transforms each
/// piece (gaps included), and coalesces the result with its neighbours, in
/// O((k + 1) log n) for k runs touched. The keys it touched are remembered until
/// ``drainChanges()`` so that only changed rows are persisted.
public struct RunMap<Payload: RunPayload>: Sendable {
    /// One stored run: its length and the payload of its first block.
    public struct Run: Hashable, Sendable {
        public var count: UInt64
        public var payload: Payload

        public init(count: UInt64, payload: Payload) {
            self.count = count
            self.payload = payload
        }

        public static func == (lhs: Run, rhs: Run) -> Bool {
            lhs.count == rhs.count && lhs.payload == rhs.payload
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(self.count)
        }
    }

    /// A run as seen by readers: its block range and the payload at its first block.
    public struct Segment: Equatable, Sendable {
        public var range: BlockRange
        public var payload: Payload

        public init(range: BlockRange, payload: Payload) {
            self.range = range
            self.payload = payload
        }
    }

    private(set) var runs = OrderedMap<UInt64, Run>()
    /// Blocks covered by runs.
    public private(set) var blockCount: UInt64 = 0
    /// Start keys written or removed since the last ``drainChanges()``.
    private var touched = DirtyKeys<UInt64>()
    /// False for maps that are never persisted (derived indexes): nothing is recorded.
    private let tracksChanges: Bool

    /// - Parameter tracksChanges: record changed runs for ``drainChanges()``.
    public init(tracksChanges: Bool = true) {
        self.tracksChanges = tracksChanges
    }

    /// Number of runs.
    public var runCount: Int { self.runs.count }
    public var isEmpty: Bool { self.runs.isEmpty }

    // MARK: - Reading

    /// The run containing `block`, clipped to start at `block`.
    public func segment(containing block: UInt64) -> Segment? {
        guard let (start, run) = self.runs.floor(block), block < start + run.count else { return nil }
        return Segment(
            range: BlockRange(start: block, end: start + run.count),
            payload: run.payload.advanced(by: block - start)
        )
    }

    /// The runs overlapping `range`, clipped to it, in order.
    public func segments(overlapping range: BlockRange) -> [Segment] {
        var result: [Segment] = []
        self.forEachSegment(overlapping: range) { result.append($0) }
        return result
    }

    /// Calls `body` with each run overlapping `range`, clipped to it, in order.
    public func forEachSegment(overlapping range: BlockRange, _ body: (Segment) throws -> Void) rethrows {
        guard !range.isEmpty else { return }
        // Neighbour queries instead of an iterator: no allocation for the common case of
        // one or two runs.
        var next = self.runs.floor(range.start).flatMap { $0.key + $0.value.count > range.start ? $0 : nil }
            ?? self.runs.higher(range.start)
        while let (start, run) = next, start < range.end {
            let clipped = BlockRange(start: Swift.max(start, range.start), end: Swift.min(start + run.count, range.end))
            try body(Segment(range: clipped, payload: run.payload.advanced(by: clipped.start - start)))
            next = self.runs.higher(start)
        }
    }

    /// The parts of `range` that no run covers, in order.
    public func gaps(in range: BlockRange) -> [BlockRange] {
        var result: [BlockRange] = []
        var cursor = range.start
        self.forEachSegment(overlapping: range) { segment in
            if segment.range.start > cursor { result.append(BlockRange(start: cursor, end: segment.range.start)) }
            cursor = segment.range.end
        }
        if cursor < range.end { result.append(BlockRange(start: cursor, end: range.end)) }
        return result
    }

    /// Blocks of `range` covered by runs.
    public func coveredCount(in range: BlockRange) -> UInt64 {
        var total: UInt64 = 0
        self.forEachSegment(overlapping: range) { total += $0.range.count }
        return total
    }

    /// The end of the last run, or 0 when empty.
    public var endOfLastRun: UInt64 {
        guard let (start, run) = self.runs.last else { return 0 }
        return start + run.count
    }

    /// The run with the greatest start below `block`, unclipped (it may contain `block`).
    public func segment(startingBefore block: UInt64) -> Segment? {
        guard let (start, run) = self.runs.lower(block) else { return nil }
        return Segment(range: BlockRange(start: start, count: run.count), payload: run.payload)
    }

    /// The first run that starts at or after `block`, unclipped.
    public func segment(startingAtOrAfter block: UInt64) -> Segment? {
        guard let (start, run) = self.runs.ceiling(block) else { return nil }
        return Segment(range: BlockRange(start: start, count: run.count), payload: run.payload)
    }

    /// Every run, unclipped, in order.
    public var allSegments: [Segment] {
        self.runs.map { Segment(range: BlockRange(start: $0.key, count: $0.value.count), payload: $0.value.payload) }
    }

    // MARK: - Changing

    /// Replaces the payload of every block in `range`.
    ///
    /// `transform` is called once per piece of `range`: each stored run clipped to the
    /// range (with its payload advanced to the piece's start) and each gap (with `nil`).
    /// It returns the piece's new payload, or `nil` to leave the piece uncovered.
    public mutating func update(_ range: BlockRange, _ transform: (BlockRange, Payload?) throws -> Payload?) rethrows {
        guard !range.isEmpty else { return }
        var old: [(start: UInt64, run: Run)] = []
        var next = self.runs.floor(range.start).flatMap { $0.key + $0.value.count > range.start ? $0 : nil }
            ?? self.runs.higher(range.start)
        while let (start, run) = next, start < range.end {
            old.append((start, run))
            next = self.runs.higher(start)
        }

        var pieces: [(start: UInt64, run: Run)] = []
        if let first = old.first, first.start < range.start {
            pieces.append((first.start, Run(count: range.start - first.start, payload: first.run.payload)))
        }
        var cursor = range.start
        for (start, run) in old {
            let clipped = BlockRange(start: Swift.max(start, range.start), end: Swift.min(start + run.count, range.end))
            if clipped.start > cursor {
                let gap = BlockRange(start: cursor, end: clipped.start)
                if let payload = try transform(gap, nil) { pieces.append((gap.start, Run(count: gap.count, payload: payload))) }
            }
            if let payload = try transform(clipped, run.payload.advanced(by: clipped.start - start)) {
                pieces.append((clipped.start, Run(count: clipped.count, payload: payload)))
            }
            cursor = clipped.end
        }
        if cursor < range.end {
            let gap = BlockRange(start: cursor, end: range.end)
            if let payload = try transform(gap, nil) { pieces.append((gap.start, Run(count: gap.count, payload: payload))) }
        }
        if let last = old.last, last.start + last.run.count > range.end {
            pieces.append(
                (
                    range.end,
                    Run(
                        count: last.start + last.run.count - range.end,
                        payload: last.run.payload.advanced(by: range.end - last.start)
                    )
                )
            )
        }

        // Neighbours that touch the span may coalesce with its new first or last piece.
        let spanStart = old.first.map { Swift.min($0.start, range.start) } ?? range.start
        let spanEnd = old.last.map { Swift.max($0.start + $0.run.count, range.end) } ?? range.end
        if let (start, run) = self.runs.lower(spanStart), start + run.count == spanStart {
            old.insert((start, run), at: 0)
            pieces.insert((start, run), at: 0)
        }
        if let run = self.runs[spanEnd] {
            old.append((spanEnd, run))
            pieces.append((spanEnd, run))
        }

        var merged: [(start: UInt64, run: Run)] = []
        merged.reserveCapacity(pieces.count)
        for piece in pieces {
            if let last = merged.last, last.start + last.run.count == piece.start,
                last.run.payload.advanced(by: last.run.count) == piece.run.payload
            {
                merged[merged.count - 1].run.count += piece.run.count
            } else {
                merged.append(piece)
            }
        }

        // Both lists are sorted by start: walk them together, writing only what changed.
        var index = 0
        for (start, run) in merged {
            while index < old.count && old[index].start < start {
                self.runs.removeValue(forKey: old[index].start)
                self.touch(old[index].start)
                index += 1
            }
            if index < old.count && old[index].start == start {
                if old[index].run != run {
                    self.runs[start] = run
                    self.touch(start)
                }
                index += 1
            } else {
                self.runs[start] = run
                self.touch(start)
            }
        }
        while index < old.count {
            self.runs.removeValue(forKey: old[index].start)
            self.touch(old[index].start)
            index += 1
        }
        self.blockCount = self.blockCount - old.reduce(0) { $0 + $1.run.count } + merged.reduce(0) { $0 + $1.run.count }
    }

    private mutating func touch(_ start: UInt64) {
        if self.tracksChanges { self.touched.insert(start) }
    }

    /// Removes every run from `range`.
    /// - Returns: the removed pieces, in order.
    @discardableResult
    public mutating func remove(_ range: BlockRange) -> [Segment] {
        var removed: [Segment] = []
        self.update(range) { piece, payload in
            if let payload { removed.append(Segment(range: piece, payload: payload)) }
            return nil
        }
        return removed
    }

    /// Covers `range` with `payload` at its first block; the range must be uncovered.
    public mutating func insert(_ range: BlockRange, payload: Payload) {
        self.update(range) { piece, existing in
            precondition(existing == nil, "RunMap.insert over covered blocks \(piece)")
            return payload.advanced(by: piece.start - range.start)
        }
    }

    // MARK: - Persistence

    /// The runs changed since the last call: a key maps to its run, or to `nil` when it
    /// was removed. Reading it resets the record.
    public mutating func drainChanges() -> [(start: UInt64, run: Run?)] {
        guard !self.touched.isEmpty else { return [] }
        let changes = self.touched.elements.map { (start: $0, run: self.runs[$0]) }
        self.touched.removeAll()
        return changes
    }

    /// Whether changes are waiting to be drained.
    public var hasChanges: Bool { !self.touched.isEmpty }

    /// Rebuilds a map from stored runs (recovery). Runs must be sorted-able and disjoint.
    public init(restoring stored: [(start: UInt64, run: Run)]) {
        self.tracksChanges = true
        for (start, run) in stored where run.count > 0 {
            self.runs[start] = run
            self.blockCount += run.count
        }
    }

    /// Every structural defect: empty or overlapping runs, uncoalesced neighbours, a
    /// wrong block count, or tree damage. Empty when well formed.
    public func structuralProblems() -> [String] {
        var problems = self.runs.structuralProblems()
        var previous: (start: UInt64, run: Run)?
        var total: UInt64 = 0
        for (start, run) in self.runs {
            total += run.count
            if run.count == 0 { problems.append("empty run at \(start)") }
            if let previous {
                let previousEnd = previous.start + previous.run.count
                if previousEnd > start {
                    problems.append("runs at \(previous.start) and \(start) overlap")
                } else if previousEnd == start && previous.run.payload.advanced(by: previous.run.count) == run.payload {
                    problems.append("runs at \(previous.start) and \(start) are not coalesced")
                }
            }
            previous = (start, run)
        }
        if total != self.blockCount { problems.append("block count \(self.blockCount) but runs cover \(total)") }
        return problems
    }
}

extension RunMap: Equatable {
    public static func == (lhs: RunMap, rhs: RunMap) -> Bool {
        // Only the runs matter, not whether changes are being recorded.
        lhs.blockCount == rhs.blockCount && lhs.runs == rhs.runs
    }
}
