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
    case pins([PinInfo])
    case layouts([LayoutInfo])
    case sessions([SessionInfo])
    case inodes([InodeInfo])
    case inode(InodeDetail)
    case targets([TargetInfo])
    case invariants([InvariantViolation])
    case events([Event])
}

/// `openSession`.
public struct SessionGrant: Hashable, Sendable, Codable {
    public var session: SessionID
    public var secret: SessionSecret
    public var ttl: Duration
    public var slots: Int
}

/// `resumeSession`: the session's settings and every push not yet acknowledged, in order.
public struct SessionResumed: Hashable, Sendable, Codable {
    public var session: SessionID
    public var ttl: Duration
    public var slots: Int
    public var replay: [Push]
}

/// `closeSession`: what was given back voluntarily.
public struct SessionClosed: Hashable, Sendable, Codable {
    public var unpinned: [PinID]
    public var returnedLayouts: [LayoutID]
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
}

/// layoutReturn.
public struct LayoutReturned: Hashable, Sendable, Codable {
    public var stateID: LayoutStateID
    /// Ranges still granted; empty when the layout is gone.
    public var remaining: [BlockRange]
    public var returnedBlocks: UInt64
}
