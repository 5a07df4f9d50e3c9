/// The answer to a request: a response or a typed error. Replies of mutations are stored
/// in the session's slot and returned again for a retransmission.
/// Indirect: one pointer wide, so storing it in slots and passing it around is cheap.
public indirect enum Reply: Hashable, Sendable, Codable {
    case success(Response)
    case failure(LeaseholdError)

    public var error: LeaseholdError? {
        if case .failure(let error) = self { return error }
        return nil
    }

    public var response: Response? {
        if case .success(let response) = self { return response }
        return nil
    }
}

/// Every successful outcome.
public enum Response: Hashable, Sendable, Codable {
    case sessionOpened(SessionGrant)
    /// The TTL now remaining on the server (full TTL after a renewal).
    case keptAlive(ttl: Duration)
    case sessionResumed(SessionResumed)
    case sessionClosed(SessionClosed)
    case pushesAcknowledged(upTo: UInt64)
    case waitsCancelled(count: Int)

    case inodeCreated(InodeID)
    case mappingChanged(MappingChange)
    case allocated(Allocation)
    case markedWritten(generation: UInt64, blocks: UInt64)

    case pinned(PinGrant)
    case unpinned(PinID)

    case layout(LayoutGrantReply)
    case layoutReturned(LayoutReturned)
    case layoutCommitted(generation: UInt64, size: UInt64)
    case recallProlonged(RecallID, remaining: Duration)

    case targetRegistered(StorageTarget)
    case fenceAcknowledged(StorageTarget)
    case fences([Fence])

    case sessionEvicted(Fence)
    case targetDeregistered(name: String)
    case forceReleased(blocks: UInt64)
    case quarantineDeleted(InodeID, blocks: UInt64)
    case pinSettingChanged(PinSetting)

    case status(VolumeStatus)
    case busyExtents([BusyExtentInfo])
    case freeExtents([BlockRange])
    case pins([PinInfo])
    case layouts([LayoutInfo])
    case sessions([SessionInfo])
    case inodes([InodeInfo])
    case inode(InodeDetail)
    case targets([TargetInfo])
    case invariants([InvariantViolation])
    /// `more`: the history holds events after these (read on from the last one).
    case events([Event], more: Bool)
}

/// `openSession`.
public struct SessionGrant: Hashable, Sendable, Codable {
    public var session: SessionID
    public var secret: SessionSecret
    public var ttl: Duration
    public var slots: Int

    public init(
        session: SessionID,
        secret: SessionSecret,
        ttl: Duration,
        slots: Int
    ) {
        self.session = session
        self.secret = secret
        self.ttl = ttl
        self.slots = slots
    }
}

/// `resumeSession`: the session's settings and every push not yet acknowledged, in order.
public struct SessionResumed: Hashable, Sendable, Codable {
    public var session: SessionID
    public var ttl: Duration
    public var slots: Int
    public var replay: [Push]

    public init(
        session: SessionID,
        ttl: Duration,
        slots: Int,
        replay: [Push]
    ) {
        self.session = session
        self.ttl = ttl
        self.slots = slots
        self.replay = replay
    }
}

/// `closeSession`: what was given back voluntarily.
public struct SessionClosed: Hashable, Sendable, Codable {
    public var unpinned: [PinID]
    public var returnedLayouts: [LayoutID]

    public init(
        unpinned: [PinID],
        returnedLayouts: [LayoutID]
    ) {
        self.unpinned = unpinned
        self.returnedLayouts = returnedLayouts
    }
}

/// truncate, punchHole and deleteInode.
public struct MappingChange: Hashable, Sendable, Codable {
    public var inode: InodeID
    public var size: UInt64
    public var generation: UInt64
    public var freedBlocks: UInt64
    public var busyBlocks: UInt64
    public var quarantinedBlocks: UInt64
    public var quarantineInode: InodeID?
    /// The breaker's own layouts returned implicitly, and recalled layouts returned.
    public var returnedLayouts: [LayoutID]
    public var revokedLayouts: [LayoutID]
    public var evictedSessions: [SessionID]
    /// Long-term pins sent a pinRecall.
    public var recalledPins: [PinID]
    /// Whether the inode was removed (deleteInode).
    public var deleted: Bool

    public init(
        inode: InodeID,
        size: UInt64,
        generation: UInt64,
        freedBlocks: UInt64,
        busyBlocks: UInt64,
        quarantinedBlocks: UInt64,
        quarantineInode: InodeID? = nil,
        returnedLayouts: [LayoutID],
        revokedLayouts: [LayoutID],
        evictedSessions: [SessionID],
        recalledPins: [PinID],
        deleted: Bool
    ) {
        self.inode = inode
        self.size = size
        self.generation = generation
        self.freedBlocks = freedBlocks
        self.busyBlocks = busyBlocks
        self.quarantinedBlocks = quarantinedBlocks
        self.quarantineInode = quarantineInode
        self.returnedLayouts = returnedLayouts
        self.revokedLayouts = revokedLayouts
        self.evictedSessions = evictedSessions
        self.recalledPins = recalledPins
        self.deleted = deleted
    }
}

/// allocate.
public struct Allocation: Hashable, Sendable, Codable {
    public var inode: InodeID
    public var size: UInt64
    public var generation: UInt64
    /// The newly mapped (unwritten) extents.
    public var extents: [MappedExtent]
    public var returnedLayouts: [LayoutID]
    public var revokedLayouts: [LayoutID]
    public var evictedSessions: [SessionID]

    public init(
        inode: InodeID,
        size: UInt64,
        generation: UInt64,
        extents: [MappedExtent],
        returnedLayouts: [LayoutID],
        revokedLayouts: [LayoutID],
        evictedSessions: [SessionID]
    ) {
        self.inode = inode
        self.size = size
        self.generation = generation
        self.extents = extents
        self.returnedLayouts = returnedLayouts
        self.revokedLayouts = revokedLayouts
        self.evictedSessions = evictedSessions
    }
}

/// pin.
public struct PinGrant: Hashable, Sendable, Codable {
    public var pin: PinID
    public var token: FencingToken
    public var extents: TinyArray<PinnedExtent>
    /// Short-term pins: time until the pin's own expiry.
    public var expiresIn: Duration?
    /// Set when `allocate: true` filled holes first.
    public var allocation: Allocation?

    public init(
        pin: PinID,
        token: FencingToken,
        extents: TinyArray<PinnedExtent>,
        expiresIn: Duration? = nil,
        allocation: Allocation? = nil
    ) {
        self.pin = pin
        self.token = token
        self.extents = extents
        self.expiresIn = expiresIn
        self.allocation = allocation
    }
}

/// One run of a layout's extent list.
public struct LayoutExtent: Hashable, Sendable, Codable {
    public enum State: String, Hashable, Sendable, Codable {
        case written
        case unwritten
        case hole
    }

    public var fileRange: BlockRange
    /// The physical start, `nil` for a hole.
    public var physicalBlock: UInt64?
    public var state: State

    public init(
        fileRange: BlockRange,
        physicalBlock: UInt64? = nil,
        state: State
    ) {
        self.fileRange = fileRange
        self.physicalBlock = physicalBlock
        self.state = state
    }
}

/// layoutGet.
public struct LayoutGrantReply: Hashable, Sendable, Codable {
    public var stateID: LayoutStateID
    public var iomode: IOMode
    public var token: FencingToken
    /// Every range the layout now grants.
    public var ranges: [BlockRange]
    /// The extent list of the requested ranges, with holes and unwritten runs marked.
    public var extents: [LayoutExtent]

    public init(
        stateID: LayoutStateID,
        iomode: IOMode,
        token: FencingToken,
        ranges: [BlockRange],
        extents: [LayoutExtent]
    ) {
        self.stateID = stateID
        self.iomode = iomode
        self.token = token
        self.ranges = ranges
        self.extents = extents
    }
}

/// layoutReturn.
public struct LayoutReturned: Hashable, Sendable, Codable {
    public var stateID: LayoutStateID
    /// Ranges still granted; empty when the layout is gone.
    public var remaining: [BlockRange]
    public var returnedBlocks: UInt64

    public init(
        stateID: LayoutStateID,
        remaining: [BlockRange],
        returnedBlocks: UInt64
    ) {
        self.stateID = stateID
        self.remaining = remaining
        self.returnedBlocks = returnedBlocks
    }
}
