/// Where a run of file blocks lives on the volume, and whether it holds written data.
public struct PhysicalMapping: RunPayload, Hashable, Codable {
    /// The physical block of the run's first file block.
    public var physicalBlock: UInt64
    /// False for freshly allocated blocks, which may still hold a previous owner's data
    /// (readers treat them as zeros, like pNFS INVALID_DATA).
    public var written: Bool

    public init(physicalBlock: UInt64, written: Bool) {
        self.physicalBlock = physicalBlock
        self.written = written
    }

    public func advanced(by offset: UInt64) -> PhysicalMapping {
        PhysicalMapping(physicalBlock: self.physicalBlock + offset, written: self.written)
    }
}

/// One mapped run of a file: file blocks `fileBlock..<fileBlock+count` live at physical
/// blocks `physicalBlock..<physicalBlock+count`.
public struct MappedExtent: Hashable, Sendable, Codable, CustomStringConvertible {
    public var fileBlock: UInt64
    public var physicalBlock: UInt64
    public var count: UInt64
    public var written: Bool

    public init(fileBlock: UInt64, physicalBlock: UInt64, count: UInt64, written: Bool) {
        self.fileBlock = fileBlock
        self.physicalBlock = physicalBlock
        self.count = count
        self.written = written
    }

    public var fileRange: BlockRange { BlockRange(start: self.fileBlock, count: self.count) }
    public var physicalRange: BlockRange { BlockRange(start: self.physicalBlock, count: self.count) }

    public var description: String {
        "file \(self.fileRange) -> phys \(self.physicalRange)\(self.written ? "" : " unwritten")"
    }
}

/// An inode's extent map: sorted, non-overlapping runs of file blocks mapped to physical
/// blocks; holes are unmapped. Runs that are contiguous both in the file and on the
/// volume, with the same written state, coalesce into one.
public struct ExtentMap: Sendable, Equatable {
    private(set) var runs = RunMap<PhysicalMapping>()

    public init() {}

    /// An extent map holding `extents` (recovery, tests).
    public init(restoring extents: [MappedExtent]) {
        self.runs = RunMap(
            restoring: extents.map {
                ($0.fileBlock, RunMap.Run(count: $0.count, payload: PhysicalMapping(physicalBlock: $0.physicalBlock, written: $0.written)))
            }
        )
    }

    /// Mapped blocks.
    public var mappedBlockCount: UInt64 { self.runs.blockCount }
    /// Number of runs.
    public var extentCount: Int { self.runs.runCount }
    public var isEmpty: Bool { self.runs.isEmpty }
    /// One past the last mapped file block, or 0.
    public var endOfMapping: UInt64 { self.runs.endOfLastRun }

    /// Every extent in file order.
    public var extents: [MappedExtent] {
        self.runs.allSegments.map(Self.extent)
    }

    /// The extent containing `fileBlock`, clipped to start there.
    public func lookup(_ fileBlock: UInt64) -> MappedExtent? {
        self.runs.segment(containing: fileBlock).map(Self.extent)
    }

    /// The mapped parts of `range`, clipped to it, in file order.
    public func extents(in range: BlockRange) -> [MappedExtent] {
        self.runs.segments(overlapping: range).map(Self.extent)
    }

    /// Calls `body` for each mapped part of `range`, clipped, in file order.
    public func forEachExtent(in range: BlockRange, _ body: (MappedExtent) throws -> Void) rethrows {
        try self.runs.forEachSegment(overlapping: range) { try body(Self.extent($0)) }
    }

    /// The unmapped parts of `range`, in order.
    public func holes(in range: BlockRange) -> [BlockRange] {
        self.runs.gaps(in: range)
    }

    /// The first unmapped file block of `range`, if any.
    public func firstHole(in range: BlockRange) -> UInt64? {
        var cursor = range.start
        var hole: UInt64?
        self.runs.forEachSegment(overlapping: range) { segment in
            if hole == nil && segment.range.start > cursor { hole = cursor }
            cursor = segment.range.end
        }
        if hole == nil && cursor < range.end { hole = cursor }
        return hole
    }

    /// Mapped blocks of `range`.
    public func mappedCount(in range: BlockRange) -> UInt64 {
        self.runs.coveredCount(in: range)
    }

    /// The physical block right after the mapped run that precedes `fileBlock`, shifted
    /// by the distance: where a new run at `fileBlock` would continue its left neighbour.
    /// Falls back to the right neighbour's start minus the distance.
    public func localityHint(for fileBlock: UInt64) -> UInt64? {
        if let left = self.runs.segment(startingBefore: fileBlock) {
            let end = left.range.end
            return left.payload.physicalBlock + left.range.count + (fileBlock > end ? fileBlock - end : 0)
        }
        if let right = self.runs.segment(startingAtOrAfter: fileBlock) {
            let distance = right.range.start - fileBlock
            return right.payload.physicalBlock >= distance ? right.payload.physicalBlock - distance : nil
        }
        return nil
    }

    /// Maps a hole.
    /// - Precondition: `extent.fileRange` is unmapped.
    public mutating func insert(_ extent: MappedExtent) {
        self.runs.insert(
            extent.fileRange,
            payload: PhysicalMapping(physicalBlock: extent.physicalBlock, written: extent.written)
        )
    }

    /// Unmaps `range`, splitting the runs at its edges.
    /// - Returns: the removed extents, in file order.
    @discardableResult
    public mutating func remove(_ range: BlockRange) -> [MappedExtent] {
        self.runs.remove(range).map(Self.extent)
    }

    /// Marks the mapped blocks of `range` written.
    /// - Returns: how many blocks changed from unwritten to written.
    @discardableResult
    public mutating func markWritten(_ range: BlockRange) -> UInt64 {
        var changed: UInt64 = 0
        self.runs.update(range) { piece, mapping in
            guard var mapping else { return nil }
            if !mapping.written {
                changed += piece.count
                mapping.written = true
            }
            return mapping
        }
        return changed
    }

    /// Runs changed since the last call, by file block (`nil` = removed).
    public mutating func drainChanges() -> [(fileBlock: UInt64, extent: MappedExtent?)] {
        self.runs.drainChanges().map { start, run in
            (
                start,
                run.map {
                    MappedExtent(fileBlock: start, physicalBlock: $0.payload.physicalBlock, count: $0.count, written: $0.payload.written)
                }
            )
        }
    }

    public var hasChanges: Bool { self.runs.hasChanges }

    /// Structural defects (see ``RunMap/structuralProblems()``).
    public func structuralProblems() -> [String] {
        self.runs.structuralProblems()
    }

    private static func extent(_ segment: RunMap<PhysicalMapping>.Segment) -> MappedExtent {
        MappedExtent(
            fileBlock: segment.range.start,
            physicalBlock: segment.payload.physicalBlock,
            count: segment.range.count,
            written: segment.payload.written
        )
    }
}
