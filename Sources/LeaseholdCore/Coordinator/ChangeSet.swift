/// What one step changed, as rows to write: each row carries its key and either the new
/// row or `nil` for a deletion. Only changed rows are listed, so the journal never
/// rewrites whole tables. Within one change set a key appears at most once per table
/// except where a later row supersedes an earlier one; apply rows in order. Change sets of
/// consecutive steps concatenate (later rows win), which is what group commit does with
/// every change set queued during one transaction.
public struct ChangeSet: Hashable, Sendable {
    /// One row of one table.
    public enum Row: Hashable, Sendable {
        case volume(VolumeRecord)
        case counters(Counters)
        case inode(InodeID, InodeRecord?)
        /// Extent rows by (inode, first file block).
        case extent(ExtentKey, MappedExtent?)
        /// Free extents by first block: count.
        case freeExtent(UInt64, count: UInt64?)
        /// Busy runs by first block.
        case busy(UInt64, BusyRecord?)
        case session(SessionID, SessionRecord?)
        case slot(SlotKey, SlotRecord?)
        case pin(PinID, PinRecord?)
        case layout(LayoutID, LayoutRecord?)
        case recall(RecallID, RecallRecord?)
        case fence(FenceRevision, Fence?)
        case target(String, StorageTarget?)
        /// An event appended to the history (events are never changed once written).
        case event(Event)
        /// The history's oldest events went: every event below this revision is deleted.
        case eventsDropped(before: EventRevision)
    }

    public var rows: [Row]

    public init(rows: [Row] = []) {
        self.rows = rows
    }

    /// Whether nothing changed (nothing to commit).
    public var isEmpty: Bool { self.rows.isEmpty }

    /// Appends a later change set: its rows win over this one's.
    public mutating func merge(_ later: ChangeSet) {
        self.rows.append(contentsOf: later.rows)
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
