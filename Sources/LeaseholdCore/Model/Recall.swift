/// A recall of a layout or of a long-term pin, sent when a mapping change needs it back.
///
/// Lifecycle: pushed once its step is durable (nothing numbered leaves ahead of the
/// journal), with a deadline of `recallTimeout` from the step. The holder answers by
/// returning the layout range or unpinning; it may answer `recallInProgress` once to extend the deadline by one more
/// `recallTimeout` (Lustre prolongs a busy lock), and that it did is persisted. Past the
/// deadline the grant is revoked, which evicts the holder's session. A recall outlives
/// the break that sent it: if the break times out, the recall carries on.
/// Can transition to: outstanding -> prolonged -> answered | revoked.
public struct Recall: Sendable, Equatable {
    public var id: RecallID
    /// The session that must answer.
    public var session: SessionID
    public var inode: InodeID
    public var target: RecallTarget
    /// Whether the deadline was extended once already.
    public var prolonged: Bool
    /// Runtime only: when the grant is revoked unless answered (re-armed at recovery).
    public var deadline: Instant
    /// Runtime only: when it was sent (at recovery, when it was sent again); for the
    /// recall-latency metric.
    public var sentAt: Instant

    public var record: RecallRecord {
        RecallRecord(id: self.id, session: self.session, inode: self.inode, target: self.target, prolonged: self.prolonged)
    }
}

/// What a recall asks back.
public enum RecallTarget: Hashable, Sendable, Codable {
    /// The given file-block range of a layout.
    case layout(LayoutID, range: BlockRange)
    /// A long-term pin.
    case pin(PinID)
}

/// The persisted row of a recall.
public struct RecallRecord: Hashable, Sendable, Codable {
    public var id: RecallID
    public var session: SessionID
    public var inode: InodeID
    public var target: RecallTarget
    public var prolonged: Bool

    public init(id: RecallID, session: SessionID, inode: InodeID, target: RecallTarget, prolonged: Bool) {
        self.id = id
        self.session = session
        self.inode = inode
        self.target = target
        self.prolonged = prolonged
    }
}
