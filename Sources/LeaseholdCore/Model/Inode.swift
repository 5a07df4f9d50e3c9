/// An inode: a file of the volume, or a quarantine inode holding blocks that a
/// `quarantine` truncate moved out of a file while they were pinned.
///
/// Every size or mapping change bumps `generation`. A quarantine inode refuses pins,
/// layouts and truncates and is readable by admins only.
public struct Inode: Sendable, Equatable {
    public var id: InodeID
    public var generation: UInt64
    /// Size in bytes. No block is mapped at or beyond `ceil(size / blockSize)`.
    public var size: UInt64
    public var kind: InodeKind
    public var map: ExtentMap

    public init(id: InodeID, generation: UInt64 = 1, size: UInt64 = 0, kind: InodeKind = .regular, map: ExtentMap = ExtentMap()) {
        self.id = id
        self.generation = generation
        self.size = size
        self.kind = kind
        self.map = map
    }

    public var isQuarantine: Bool {
        if case .quarantine = self.kind { return true }
        return false
    }

    /// The persisted fields (the extent map is persisted run by run).
    public var record: InodeRecord {
        InodeRecord(id: self.id, generation: self.generation, size: self.size, kind: self.kind)
    }
}

/// Whether an inode is a regular file or a quarantine inode.
public enum InodeKind: Hashable, Sendable, Codable {
    case regular
    case quarantine(QuarantineSource)
}

/// Where a quarantine inode's blocks came from.
public struct QuarantineSource: Hashable, Sendable, Codable {
    /// The inode the blocks were cut from.
    public var inode: InodeID
    /// That inode's generation before the cut.
    public var generation: UInt64
    /// Byte offset of the cut in the source inode.
    public var fileOffset: UInt64
    /// `keep`: the blocks stay until an admin deletes the quarantine inode; otherwise they
    /// follow the busy release rule and the inode disappears when it is empty.
    public var keep: Bool

    public init(inode: InodeID, generation: UInt64, fileOffset: UInt64, keep: Bool) {
        self.inode = inode
        self.generation = generation
        self.fileOffset = fileOffset
        self.keep = keep
    }
}

/// The persisted row of an inode.
public struct InodeRecord: Hashable, Sendable, Codable {
    public var id: InodeID
    public var generation: UInt64
    public var size: UInt64
    public var kind: InodeKind

    public init(id: InodeID, generation: UInt64, size: UInt64, kind: InodeKind) {
        self.id = id
        self.generation = generation
        self.size = size
        self.kind = kind
    }
}
