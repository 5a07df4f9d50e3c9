/// Volume figures for `leaseholdctl status`.
public struct VolumeStatus: Hashable, Sendable, Codable {
    public var epoch: UInt64
    public var blockSize: UInt64
    public var blockCount: UInt64
    public var freeBlocks: UInt64
    public var mappedBlocks: UInt64
    public var busyBlocks: UInt64
    public var quarantinedBlocks: UInt64
    public var largestFreeExtent: UInt64
    public var freeExtents: Int
    public var inodes: Int
    public var quarantineInodes: Int
    public var sessions: Int
    public var pins: Int
    public var layouts: Int
    public var outstandingRecalls: Int
    public var pendingBreaks: Int
    public var targets: Int
    public var unresolvedFences: Int
    public var fenceRevision: FenceRevision
    public var eventRevision: EventRevision
    public var pinSetting: PinSetting
}

/// A busy extent: a maximal run of busy blocks with the same holders and state.
public struct BusyExtentInfo: Hashable, Sendable, Codable {
    public struct PinHolder: Hashable, Sendable, Codable {
        public var pin: PinID
        public var session: SessionID
        public var identity: String
        public var kind: PinKind
    }

    public struct FenceHolder: Hashable, Sendable, Codable {
        public var revision: FenceRevision
        public var session: SessionID
        public var identity: String
        /// Registered targets that have not acknowledged the fence yet.
        public var waitingForTargets: [String]
        /// Time left of the release delay once every target acknowledged.
        public var releaseIn: Duration?
    }

    public var range: BlockRange
    /// The quarantine inode, when the blocks are quarantined rather than busy.
    public var quarantine: InodeID?
    public var pins: [PinHolder]
    public var fences: [FenceHolder]
    public var age: Duration
    /// Time until the blocks go free; `nil` while something holds them or a kept
    /// quarantine inode owns them.
    public var releaseIn: Duration?
}

public struct PinInfo: Hashable, Sendable, Codable {
    public var pin: PinID
    public var session: SessionID
    public var identity: String
    public var inode: InodeID
    public var ranges: [ByteRange]
    public var kind: PinKind
    public var token: FencingToken
    public var blocks: UInt64
    public var busyBlocks: UInt64
    public var expiresIn: Duration?
    public var recall: RecallID?
}

public struct LayoutInfo: Hashable, Sendable, Codable {
    public enum State: Hashable, Sendable, Codable {
        case granted
        case recalling(deadlineIn: Duration, prolonged: Bool)
    }

    public var stateID: LayoutStateID
    public var session: SessionID
    public var identity: String
    public var inode: InodeID
    public var iomode: IOMode
    public var ranges: [BlockRange]
    public var token: FencingToken
    public var state: State
}

public struct SessionInfo: Hashable, Sendable, Codable {
    public var session: SessionID
    public var identity: String
    public var name: String
    public var ttl: Duration
    public var expiresIn: Duration
    public var pins: Int
    public var layouts: Int
    public var unacknowledgedPushes: Int
    public var lastPush: UInt64
}

public struct InodeInfo: Hashable, Sendable, Codable {
    public var inode: InodeID
    public var generation: UInt64
    public var size: UInt64
    public var kind: InodeKind
    public var mappedBlocks: UInt64
    public var extents: Int
    public var pendingBreaks: Int
}

public struct InodeDetail: Hashable, Sendable, Codable {
    public var info: InodeInfo
    public var extents: [MappedExtent]
    public var layouts: [LayoutInfo]
    public var pins: [PinInfo]
}

public struct TargetInfo: Hashable, Sendable, Codable {
    public var name: String
    public var acknowledged: FenceRevision
    /// Fence revisions appended since its acknowledgement.
    public var lag: UInt64
}

/// One broken invariant found by the checker.
public struct InvariantViolation: Hashable, Sendable, Codable, CustomStringConvertible {
    /// 1 to 6, as numbered in SEMANTICS.md.
    public var invariant: Int
    public var message: String

    public init(invariant: Int, message: String) {
        self.invariant = invariant
        self.message = message
    }

    public var description: String { "invariant \(self.invariant): \(self.message)" }
}
