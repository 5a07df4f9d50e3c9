/// A pNFS-style layout: one per (session, inode, iomode).
///
/// Lifecycle: `layoutGet` creates it or merges new ranges into it, bumping `seqid`.
/// A mapping change over its ranges by another session recalls it (state `recalling`,
/// with a deadline that the holder may prolong once); the holder returns it whole or in
/// part. A layout with no granted range left is gone (returned). Past a recall deadline
/// it is revoked, which evicts its session. Revocation is whole-layout.
/// Can transition to: granted -> recalling -> returned | revoked.
public struct Layout: Sendable, Equatable {
    public var id: LayoutID
    public var session: SessionID
    public var inode: InodeID
    public var iomode: IOMode
    /// Sequence of the latest change; part of the stateid.
    public var seqid: UInt32
    public var token: FencingToken
    /// Granted file-block ranges, sorted and disjoint, each with the seqid that last
    /// granted it (a return carrying an older seqid never removes it).
    public var grants: [LayoutGrant]

    public var stateID: LayoutStateID { LayoutStateID(id: self.id, seqid: self.seqid) }
    public var ranges: [BlockRange] { self.grants.map(\.range) }

    /// Whether any granted range overlaps `range`.
    public func overlaps(_ range: BlockRange) -> Bool {
        self.grants.contains { $0.range.overlaps(range) }
    }

    /// Adds `ranges` granted at `seqid`, replacing the seqid of overlapping parts.
    public mutating func grant(_ ranges: [BlockRange], seqid: UInt32) {
        for range in ranges {
            var next: [LayoutGrant] = []
            for grant in self.grants {
                next.append(contentsOf: grant.subtracting(range))
            }
            next.append(LayoutGrant(range: range, seqid: seqid))
            self.grants = LayoutGrant.normalized(next)
        }
    }

    /// Removes the parts of `ranges` (all grants when `nil`) granted at or before `seqid`.
    /// - Returns: the number of blocks removed.
    @discardableResult
    public mutating func returnRanges(_ ranges: [BlockRange]?, upTo seqid: UInt32) -> UInt64 {
        var removed: UInt64 = 0
        var next: [LayoutGrant] = []
        for grant in self.grants {
            guard grant.seqid <= seqid else {
                next.append(grant)
                continue
            }
            guard let ranges else {
                removed += grant.range.count
                continue
            }
            var pieces = [grant]
            for range in ranges {
                pieces = pieces.flatMap { $0.subtracting(range) }
            }
            removed += grant.range.count - pieces.reduce(0) { $0 + $1.range.count }
            next.append(contentsOf: pieces)
        }
        self.grants = LayoutGrant.normalized(next)
        return removed
    }

    public var record: LayoutRecord {
        LayoutRecord(
            id: self.id,
            session: self.session,
            inode: self.inode,
            iomode: self.iomode,
            seqid: self.seqid,
            token: self.token,
            grants: self.grants
        )
    }
}

/// Read-only or read-write access through a layout.
public enum IOMode: String, Hashable, Sendable, Codable, CaseIterable {
    case read
    case readWrite
}

/// A granted file-block range and the seqid that granted it.
public struct LayoutGrant: Hashable, Sendable, Codable {
    public var range: BlockRange
    public var seqid: UInt32

    public init(range: BlockRange, seqid: UInt32) {
        self.range = range
        self.seqid = seqid
    }

    /// This grant without the blocks of `other`: zero, one or two pieces.
    func subtracting(_ other: BlockRange) -> [LayoutGrant] {
        guard self.range.overlaps(other) else { return [self] }
        var pieces: [LayoutGrant] = []
        if self.range.start < other.start {
            pieces.append(LayoutGrant(range: BlockRange(start: self.range.start, end: other.start), seqid: self.seqid))
        }
        if other.end < self.range.end {
            pieces.append(LayoutGrant(range: BlockRange(start: other.end, end: self.range.end), seqid: self.seqid))
        }
        return pieces
    }

    /// Sorted, with touching grants of the same seqid merged.
    static func normalized(_ grants: [LayoutGrant]) -> [LayoutGrant] {
        var result: [LayoutGrant] = []
        for grant in grants.sorted(by: { $0.range.start < $1.range.start }) where !grant.range.isEmpty {
            if let last = result.last, last.range.end == grant.range.start, last.seqid == grant.seqid {
                result[result.count - 1].range.end = grant.range.end
            } else {
                result.append(grant)
            }
        }
        return result
    }
}

/// The persisted row of a layout.
public struct LayoutRecord: Hashable, Sendable, Codable {
    public var id: LayoutID
    public var session: SessionID
    public var inode: InodeID
    public var iomode: IOMode
    public var seqid: UInt32
    public var token: FencingToken
    public var grants: [LayoutGrant]

    public init(id: LayoutID, session: SessionID, inode: InodeID, iomode: IOMode, seqid: UInt32, token: FencingToken, grants: [LayoutGrant]) {
        self.id = id
        self.session = session
        self.inode = inode
        self.iomode = iomode
        self.seqid = seqid
        self.token = token
        self.grants = grants
    }
}

extension Layout {
    public init(record: LayoutRecord) {
        self.init(
            id: record.id,
            session: record.session,
            inode: record.inode,
            iomode: record.iomode,
            seqid: record.seqid,
            token: record.token,
            grants: record.grants
        )
    }
}
