/// An entry of the admin event stream (`leaseholdctl watch`). Revisions never repeat or
/// go backwards, also across restarts; the Coordinator keeps a bounded history.
public struct Event: Hashable, Sendable, Codable {
    public var revision: EventRevision
    public var kind: EventKind

    public init(revision: EventRevision, kind: EventKind) {
        self.revision = revision
        self.kind = kind
    }
}

/// What happened.
public enum EventKind: Hashable, Sendable, Codable {
    case sessionOpened(SessionID, identity: String)
    case sessionClosed(SessionID)
    case sessionEvicted(SessionID, reason: EvictionReason, fence: FenceRevision)
    case inodeCreated(InodeID)
    case inodeDeleted(InodeID)
    case allocated(InodeID, generation: UInt64, blocks: UInt64)
    case mappingChanged(InodeID, generation: UInt64, freed: UInt64, busy: UInt64, quarantined: UInt64)
    case pinGranted(PinID, session: SessionID, inode: InodeID, blocks: UInt64)
    case pinReleased(PinID, reason: PinReleaseReason)
    case layoutGranted(LayoutStateID, session: SessionID, inode: InodeID)
    case layoutReturned(LayoutStateID, remainingBlocks: UInt64)
    case layoutRevoked(LayoutID, session: SessionID)
    case recallSent(RecallID, session: SessionID, target: RecallTarget)
    case recallProlonged(RecallID)
    case recallAnswered(RecallID)
    case fenceAppended(FenceRevision, session: SessionID)
    case fenceResolved(FenceRevision)
    case fenceAcknowledged(FenceRevision, target: String)
    case targetRegistered(String)
    case targetDeregistered(String)
    case busyReleased(BlockRange)
    case forceReleased(BlockRange, by: String)
    case quarantineCreated(InodeID, source: InodeID)
    case quarantineDeleted(InodeID)
    case pinSettingChanged(PinSetting)
}

/// Why a pin ended.
public enum PinReleaseReason: String, Hashable, Sendable, Codable {
    case unpinned
    case expired
    case sessionClosed
    case evicted
}
