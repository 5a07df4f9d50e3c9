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

    public init(
        epoch: UInt64,
        blockSize: UInt64,
        blockCount: UInt64,
        freeBlocks: UInt64,
        mappedBlocks: UInt64,
        busyBlocks: UInt64,
        quarantinedBlocks: UInt64,
        largestFreeExtent: UInt64,
        freeExtents: Int,
        inodes: Int,
        quarantineInodes: Int,
        sessions: Int,
        pins: Int,
        layouts: Int,
        outstandingRecalls: Int,
        pendingBreaks: Int,
        targets: Int,
        unresolvedFences: Int,
        fenceRevision: FenceRevision,
        eventRevision: EventRevision,
        pinSetting: PinSetting
    ) {
        self.epoch = epoch
        self.blockSize = blockSize
        self.blockCount = blockCount
        self.freeBlocks = freeBlocks
        self.mappedBlocks = mappedBlocks
        self.busyBlocks = busyBlocks
        self.quarantinedBlocks = quarantinedBlocks
        self.largestFreeExtent = largestFreeExtent
        self.freeExtents = freeExtents
        self.inodes = inodes
        self.quarantineInodes = quarantineInodes
        self.sessions = sessions
        self.pins = pins
        self.layouts = layouts
        self.outstandingRecalls = outstandingRecalls
        self.pendingBreaks = pendingBreaks
        self.targets = targets
        self.unresolvedFences = unresolvedFences
        self.fenceRevision = fenceRevision
        self.eventRevision = eventRevision
        self.pinSetting = pinSetting
    }
}

/// A busy extent: a maximal run of busy blocks with the same holders and state.
public struct BusyExtentInfo: Hashable, Sendable, Codable {
    public struct PinHolder: Hashable, Sendable, Codable {
        public var pin: PinID
        public var session: SessionID
        public var identity: String
        public var kind: PinKind

        public init(
            pin: PinID,
            session: SessionID,
            identity: String,
            kind: PinKind
        ) {
            self.pin = pin
            self.session = session
            self.identity = identity
            self.kind = kind
        }
    }

    public struct FenceHolder: Hashable, Sendable, Codable {
        public var revision: FenceRevision
        public var session: SessionID
        public var identity: String
        /// Registered targets that have not acknowledged the fence yet.
        public var waitingForTargets: [String]
        /// Time left of the release delay once every target acknowledged.
        public var releaseIn: Duration?

        public init(
            revision: FenceRevision,
            session: SessionID,
            identity: String,
            waitingForTargets: [String],
            releaseIn: Duration? = nil
        ) {
            self.revision = revision
            self.session = session
            self.identity = identity
            self.waitingForTargets = waitingForTargets
            self.releaseIn = releaseIn
        }
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

    public init(
        range: BlockRange,
        quarantine: InodeID? = nil,
        pins: [PinHolder],
        fences: [FenceHolder],
        age: Duration,
        releaseIn: Duration? = nil
    ) {
        self.range = range
        self.quarantine = quarantine
        self.pins = pins
        self.fences = fences
        self.age = age
        self.releaseIn = releaseIn
    }
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
    /// Where the pinned blocks are: each pinned run of the file and its physical blocks.
    public var extents: [PinnedExtent]

    public init(
        pin: PinID,
        session: SessionID,
        identity: String,
        inode: InodeID,
        ranges: [ByteRange],
        kind: PinKind,
        token: FencingToken,
        blocks: UInt64,
        busyBlocks: UInt64,
        expiresIn: Duration? = nil,
        recall: RecallID? = nil,
        extents: [PinnedExtent] = []
    ) {
        self.pin = pin
        self.session = session
        self.identity = identity
        self.inode = inode
        self.ranges = ranges
        self.kind = kind
        self.token = token
        self.blocks = blocks
        self.busyBlocks = busyBlocks
        self.expiresIn = expiresIn
        self.recall = recall
        self.extents = extents
    }
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

    public init(
        stateID: LayoutStateID,
        session: SessionID,
        identity: String,
        inode: InodeID,
        iomode: IOMode,
        ranges: [BlockRange],
        token: FencingToken,
        state: State
    ) {
        self.stateID = stateID
        self.session = session
        self.identity = identity
        self.inode = inode
        self.iomode = iomode
        self.ranges = ranges
        self.token = token
        self.state = state
    }
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

    public init(
        session: SessionID,
        identity: String,
        name: String,
        ttl: Duration,
        expiresIn: Duration,
        pins: Int,
        layouts: Int,
        unacknowledgedPushes: Int,
        lastPush: UInt64
    ) {
        self.session = session
        self.identity = identity
        self.name = name
        self.ttl = ttl
        self.expiresIn = expiresIn
        self.pins = pins
        self.layouts = layouts
        self.unacknowledgedPushes = unacknowledgedPushes
        self.lastPush = lastPush
    }
}

public struct InodeInfo: Hashable, Sendable, Codable {
    public var inode: InodeID
    public var generation: UInt64
    public var size: UInt64
    public var kind: InodeKind
    public var mappedBlocks: UInt64
    public var extents: Int
    public var pendingBreaks: Int

    public init(
        inode: InodeID,
        generation: UInt64,
        size: UInt64,
        kind: InodeKind,
        mappedBlocks: UInt64,
        extents: Int,
        pendingBreaks: Int
    ) {
        self.inode = inode
        self.generation = generation
        self.size = size
        self.kind = kind
        self.mappedBlocks = mappedBlocks
        self.extents = extents
        self.pendingBreaks = pendingBreaks
    }
}

public struct InodeDetail: Hashable, Sendable, Codable {
    public var info: InodeInfo
    public var extents: [MappedExtent]
    public var layouts: [LayoutInfo]
    public var pins: [PinInfo]

    public init(
        info: InodeInfo,
        extents: [MappedExtent],
        layouts: [LayoutInfo],
        pins: [PinInfo]
    ) {
        self.info = info
        self.extents = extents
        self.layouts = layouts
        self.pins = pins
    }
}

public struct TargetInfo: Hashable, Sendable, Codable {
    public var name: String
    public var acknowledged: FenceRevision
    /// Fence revisions appended since its acknowledgement.
    public var lag: UInt64

    public init(
        name: String,
        acknowledged: FenceRevision,
        lag: UInt64
    ) {
        self.name = name
        self.acknowledged = acknowledged
        self.lag = lag
    }
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
