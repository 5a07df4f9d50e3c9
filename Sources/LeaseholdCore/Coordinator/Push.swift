/// A message from the server to one session, numbered per session from 1. The client
/// acknowledges pushes; unacknowledged ones are kept (bounded) and replayed on resume.
/// Their deadlines keep running while the client is away.
public struct Push: Hashable, Sendable, Codable {
    public var number: UInt64
    public var body: PushBody

    public init(number: UInt64, body: PushBody) {
        self.number = number
        self.body = body
    }
}

/// What a push says.
public enum PushBody: Hashable, Sendable, Codable {
    /// Return `range` of the layout before the deadline, or it is revoked and the session
    /// evicted.
    case layoutRecall(LayoutRecallNotice)
    /// Unpin the long-term pin before the deadline, or the session is evicted.
    case pinRecall(PinRecallNotice)
    /// The session was evicted; its tokens up to `maxToken` are fenced.
    case fenced(FenceNotice)
    /// No renewal for 2/3 of the TTL: the session expires in `remaining`.
    case sessionExpiring(remaining: Duration)
}

public struct LayoutRecallNotice: Hashable, Sendable, Codable {
    public var recall: RecallID
    public var stateID: LayoutStateID
    public var inode: InodeID
    public var range: BlockRange
    /// Time left to answer when the push was made.
    public var deadlineIn: Duration

    public init(
        recall: RecallID,
        stateID: LayoutStateID,
        inode: InodeID,
        range: BlockRange,
        deadlineIn: Duration
    ) {
        self.recall = recall
        self.stateID = stateID
        self.inode = inode
        self.range = range
        self.deadlineIn = deadlineIn
    }
}

public struct PinRecallNotice: Hashable, Sendable, Codable {
    public var recall: RecallID
    public var pin: PinID
    public var inode: InodeID
    public var deadlineIn: Duration

    public init(
        recall: RecallID,
        pin: PinID,
        inode: InodeID,
        deadlineIn: Duration
    ) {
        self.recall = recall
        self.pin = pin
        self.inode = inode
        self.deadlineIn = deadlineIn
    }
}

public struct FenceNotice: Hashable, Sendable, Codable {
    public var revision: FenceRevision
    public var maxToken: FencingToken
    public var reason: EvictionReason

    public init(
        revision: FenceRevision,
        maxToken: FencingToken,
        reason: EvictionReason
    ) {
        self.revision = revision
        self.maxToken = maxToken
        self.reason = reason
    }
}

/// A push addressed to a session.
public struct SessionPush: Hashable, Sendable {
    public var session: SessionID
    public var push: Push

    public init(session: SessionID, push: Push) {
        self.session = session
        self.push = push
    }
}
