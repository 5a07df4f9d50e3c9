/// A DMA pin: the userspace twin of `get_user_pages`.
///
/// Lifecycle: granted atomically over one or more byte ranges; it references the
/// physical blocks mapped there at grant time. A mapping change that cuts those blocks
/// makes them busy (or quarantined) instead of free, under the `busy`/`quarantine`
/// policies; `wait` waits for the pin, `fail` refuses. A long-term pin in a broken range
/// gets a `pinRecall`. The pin ends by `unpin` (voluntary; its busy blocks free after
/// `releaseDelay`), by its own expiry (short-term pins), or by eviction of its session
/// (its blocks stay busy behind the session's fence).
public struct Pin: Sendable, Equatable {
    public var id: PinID
    public var session: SessionID
    public var inode: InodeID
    /// The byte ranges asked for.
    public var ranges: TinyArray<ByteRange>
    public var kind: PinKind
    public var token: FencingToken
    /// The physical blocks this pin references, with the file blocks they were mapped at.
    public var extents: TinyArray<PinnedExtent>
    /// How many referenced blocks are now busy or quarantined (for the busy quota).
    public var busyBlocks: UInt64

    /// Blocks referenced.
    public var blockCount: UInt64 { self.extents.reduce(0) { $0 + $1.count } }
}

/// Short-term pins carry their own expiry (at most `maxShortTermPin`); long-term pins
/// last until unpinned and must answer recalls.
public enum PinKind: Hashable, Sendable, Codable {
    case shortTerm(ttl: Duration)
    case longTerm

    public var isLongTerm: Bool { self == .longTerm }
}

/// A run of physical blocks a pin references, and the file blocks they were mapped at.
public struct PinnedExtent: Hashable, Sendable, Codable {
    public var fileBlock: UInt64
    public var physicalBlock: UInt64
    public var count: UInt64

    public init(fileBlock: UInt64, physicalBlock: UInt64, count: UInt64) {
        self.fileBlock = fileBlock
        self.physicalBlock = physicalBlock
        self.count = count
    }

    public var physicalRange: BlockRange { BlockRange(start: self.physicalBlock, count: self.count) }
    public var fileRange: BlockRange { BlockRange(start: self.fileBlock, count: self.count) }
}

/// The volume-wide pin setting (the seed's option 5, "disable DAX").
public enum PinSetting: String, Hashable, Sendable, Codable, CaseIterable {
    case allow
    case shortTermOnly
    case deny
}

/// The persisted row of a pin.
public struct PinRecord: Hashable, Sendable, Codable {
    public var id: PinID
    public var session: SessionID
    public var inode: InodeID
    public var ranges: TinyArray<ByteRange>
    public var kind: PinKind
    public var token: FencingToken
    public var extents: TinyArray<PinnedExtent>
    public var busyBlocks: UInt64

    public init(
        id: PinID,
        session: SessionID,
        inode: InodeID,
        ranges: TinyArray<ByteRange>,
        kind: PinKind,
        token: FencingToken,
        extents: TinyArray<PinnedExtent>,
        busyBlocks: UInt64
    ) {
        self.id = id
        self.session = session
        self.inode = inode
        self.ranges = ranges
        self.kind = kind
        self.token = token
        self.extents = extents
        self.busyBlocks = busyBlocks
    }
}

extension Pin {
    public var record: PinRecord {
        PinRecord(
            id: self.id,
            session: self.session,
            inode: self.inode,
            ranges: self.ranges,
            kind: self.kind,
            token: self.token,
            extents: self.extents,
            busyBlocks: self.busyBlocks
        )
    }

    public init(record: PinRecord) {
        self.init(
            id: record.id,
            session: record.session,
            inode: record.inode,
            ranges: record.ranges,
            kind: record.kind,
            token: record.token,
            extents: record.extents,
            busyBlocks: record.busyBlocks
        )
    }
}
