/// What one step changed, as rows to write: every key maps to its new row, or to `nil`
/// when the row was deleted. Only changed rows are listed, so the journal never rewrites
/// whole tables. Change sets of consecutive steps merge (the later row wins), which is
/// what group commit does with every change set queued during one transaction.
public struct ChangeSet: Hashable, Sendable {
    public var volume: VolumeRecord?
    public var counters: Counters?
    public var inodes: [InodeID: InodeRecord?] = [:]
    /// Extent rows by (inode, first file block).
    public var extents: [ExtentKey: MappedExtent?] = [:]
    /// Free extents by first block: count.
    public var freeExtents: [UInt64: UInt64?] = [:]
    /// Busy runs by first block.
    public var busy: [UInt64: BusyRecord?] = [:]
    public var sessions: [SessionID: SessionRecord?] = [:]
    public var slots: [SlotKey: SlotRecord?] = [:]
    public var pins: [PinID: PinRecord?] = [:]
    public var layouts: [LayoutID: LayoutRecord?] = [:]
    public var recalls: [RecallID: RecallRecord?] = [:]
    public var fences: [FenceRevision: Fence?] = [:]
    public var targets: [String: StorageTarget?] = [:]

    public init() {}

    /// Whether nothing changed (nothing to commit).
    public var isEmpty: Bool {
        self.volume == nil && self.counters == nil && self.inodes.isEmpty && self.extents.isEmpty
            && self.freeExtents.isEmpty && self.busy.isEmpty && self.sessions.isEmpty && self.slots.isEmpty
            && self.pins.isEmpty && self.layouts.isEmpty && self.recalls.isEmpty && self.fences.isEmpty
            && self.targets.isEmpty
    }

    /// Number of rows written or deleted.
    public var rowCount: Int {
        (self.volume == nil ? 0 : 1) + (self.counters == nil ? 0 : 1) + self.inodes.count + self.extents.count
            + self.freeExtents.count + self.busy.count + self.sessions.count + self.slots.count + self.pins.count
            + self.layouts.count + self.recalls.count + self.fences.count + self.targets.count
    }

    /// Folds a later change set into this one.
    public mutating func merge(_ later: ChangeSet) {
        if let volume = later.volume { self.volume = volume }
        if let counters = later.counters { self.counters = counters }
        self.inodes.merge(later.inodes) { $1 }
        self.extents.merge(later.extents) { $1 }
        self.freeExtents.merge(later.freeExtents) { $1 }
        self.busy.merge(later.busy) { $1 }
        self.sessions.merge(later.sessions) { $1 }
        self.slots.merge(later.slots) { $1 }
        self.pins.merge(later.pins) { $1 }
        self.layouts.merge(later.layouts) { $1 }
        self.recalls.merge(later.recalls) { $1 }
        self.fences.merge(later.fences) { $1 }
        self.targets.merge(later.targets) { $1 }
    }
}

/// Names one extent row.
public struct ExtentKey: Hashable, Comparable, Sendable, Codable {
    public var inode: InodeID
    public var fileBlock: UInt64

    public init(inode: InodeID, fileBlock: UInt64) {
        self.inode = inode
        self.fileBlock = fileBlock
    }

    public static func < (lhs: ExtentKey, rhs: ExtentKey) -> Bool {
        (lhs.inode, lhs.fileBlock) < (rhs.inode, rhs.fileBlock)
    }
}

/// The volume row: geometry, settings, and the epoch of the current start.
public struct VolumeRecord: Hashable, Sendable, Codable {
    public var geometry: VolumeGeometry
    public var pinSetting: PinSetting
    public var epoch: UInt64

    public init(geometry: VolumeGeometry, pinSetting: PinSetting, epoch: UInt64) {
        self.geometry = geometry
        self.pinSetting = pinSetting
        self.epoch = epoch
    }
}

/// The last value handed out of every counter. None ever goes backwards.
public struct Counters: Hashable, Sendable, Codable {
    public var lastInode: UInt64 = 0
    public var lastSession: UInt64 = 0
    public var lastPin: UInt64 = 0
    public var lastLayout: UInt64 = 0
    public var lastRecall: UInt64 = 0
    public var lastToken: UInt64 = 0
    public var lastFence: UInt64 = 0
    public var lastEvent: UInt64 = 0

    public init() {}
}
