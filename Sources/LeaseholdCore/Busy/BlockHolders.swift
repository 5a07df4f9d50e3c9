/// What keeps a physical block from being reused: a live pin, or a fence that is not
/// yet resolved (or still inside its `releaseDelay`).
public enum Holder: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    case pin(PinID)
    case fence(FenceRevision)

    public var description: String {
        switch self {
        case .pin(let id): "pin \(id)"
        case .fence(let revision): "fence \(revision)"
        }
    }
}

/// The holders of a run of blocks: a small sorted set (usually one element).
public struct HolderSet: RunPayload, Hashable, Sendable, Codable, Sequence {
    public private(set) var holders: [Holder]

    public init(_ holders: [Holder] = []) {
        self.holders = Array(Set(holders)).sorted()
    }

    public var isEmpty: Bool { self.holders.isEmpty }
    public var count: Int { self.holders.count }

    public func contains(_ holder: Holder) -> Bool {
        self.holders.contains(holder)
    }

    public func inserting(_ holder: Holder) -> HolderSet {
        var copy = self
        if let index = copy.holders.firstIndex(where: { $0 >= holder }) {
            if copy.holders[index] != holder { copy.holders.insert(holder, at: index) }
        } else {
            copy.holders.append(holder)
        }
        return copy
    }

    public func union(_ other: HolderSet) -> HolderSet {
        other.holders.reduce(self) { $0.inserting($1) }
    }

    public func removing(_ holder: Holder) -> HolderSet {
        var copy = self
        copy.holders.removeAll { $0 == holder }
        return copy
    }

    public var pins: [PinID] {
        self.holders.compactMap { if case .pin(let id) = $0 { id } else { nil } }
    }

    public var fences: [FenceRevision] {
        self.holders.compactMap { if case .fence(let revision) = $0 { revision } else { nil } }
    }

    public func advanced(by offset: UInt64) -> HolderSet { self }

    public func makeIterator() -> IndexingIterator<[Holder]> { self.holders.makeIterator() }
}

/// The state of a run of busy (or quarantined) blocks. Runs split where any of it
/// differs, so a busy extent is a maximal run with the same holders and state.
public struct BusyState: RunPayload, Hashable, Sendable {
    /// The live pins and unreleased fences keeping the blocks from reuse. Not persisted:
    /// rebuilt from pins and fences at recovery.
    public var holders: HolderSet
    /// Set when the quarantine policy moved the blocks to this quarantine inode.
    public var quarantine: InodeID?
    /// Runtime: when the blocks became busy (for operators).
    public var since: Instant
    /// Runtime: when the last holder went away plus the delay that still applies; the
    /// blocks go free then. `nil` while something holds them.
    public var releaseAt: Instant?

    public init(holders: HolderSet, quarantine: InodeID? = nil, since: Instant, releaseAt: Instant? = nil) {
        self.holders = holders
        self.quarantine = quarantine
        self.since = since
        self.releaseAt = releaseAt
    }

    public func advanced(by offset: UInt64) -> BusyState { self }
}

/// The persisted row of a busy run: which blocks, and the quarantine inode if any.
/// Holders are not stored: they are rebuilt from pins and fences at recovery.
public struct BusyRecord: Hashable, Sendable, Codable {
    public var count: UInt64
    public var quarantine: InodeID?

    public init(count: UInt64, quarantine: InodeID?) {
        self.count = count
        self.quarantine = quarantine
    }
}
