import DequeModule

/// A client session.
///
/// Lifecycle: `openSession` creates it with a secret, a TTL and a fixed number of
/// request slots. `keepAlive` renews it; at 2/3 of the TTL without renewal it gets a
/// `sessionExpiring` push; at the TTL it expires, which evicts it (pins dropped, layouts
/// revoked, a fence appended). `resumeSession` binds it to a new connection and replays
/// unacknowledged pushes. `closeSession` ends it voluntarily, without a fence.
/// Can transition to: live -> closed | evicted (expired, admin, missed recall).
public struct Session: Sendable, Equatable {
    public var id: SessionID
    /// The TLS certificate name of the client that opened it.
    public var identity: String
    /// A free-form client name, for operators.
    public var name: String
    public var secret: SessionSecret
    public var ttl: Duration
    /// The per-slot reply cache: exactly-once requests.
    public var slots: [Slot]
    /// Number of the last push sent (pushes are numbered from 1 per session).
    public var lastPush: UInt64
    /// The highest fencing token handed to this session.
    public var maxToken: FencingToken

    // Runtime only, re-armed at recovery.
    /// When the session expires unless renewed.
    public var deadline: Instant
    /// Whether `sessionExpiring` was pushed since the last renewal.
    public var warned: Bool
    /// Pushes not yet acknowledged, oldest first (bounded).
    public var outbox: Deque<Push>

    /// The persisted fields.
    public var record: SessionRecord {
        SessionRecord(
            id: self.id,
            identity: self.identity,
            name: self.name,
            secret: self.secret,
            ttl: self.ttl,
            slotCount: self.slots.count,
            lastPush: self.lastPush,
            maxToken: self.maxToken
        )
    }
}

/// One request slot of a session: the last sequence seen and its reply.
public struct Slot: Sendable, Equatable {
    /// Last sequence accepted in this slot (0 = none yet).
    public var sequence: UInt64
    /// The stored reply of `sequence`, or `nil` while it is pending or after it was cancelled.
    public var reply: Reply?
    /// Whether the request `sequence` is waiting inside the Coordinator.
    public var pending: Bool
    /// The last completed sequence and its reply: the slot's persisted row.
    public var stored: SlotRecord?

    public init(sequence: UInt64 = 0, reply: Reply? = nil, pending: Bool = false, stored: SlotRecord? = nil) {
        self.sequence = sequence
        self.reply = reply
        self.pending = pending
        self.stored = stored
    }
}

/// The persisted row of a session.
public struct SessionRecord: Hashable, Sendable, Codable {
    public var id: SessionID
    public var identity: String
    public var name: String
    public var secret: SessionSecret
    public var ttl: Duration
    public var slotCount: Int
    public var lastPush: UInt64
    public var maxToken: FencingToken
}

/// The persisted row of a slot: the last completed sequence and its reply.
public struct SlotRecord: Hashable, Sendable, Codable {
    public var sequence: UInt64
    public var reply: Reply

    public init(sequence: UInt64, reply: Reply) {
        self.sequence = sequence
        self.reply = reply
    }
}

/// Names one slot of one session.
public struct SlotKey: Hashable, Comparable, Sendable, Codable {
    public var session: SessionID
    public var slot: UInt32

    public init(session: SessionID, slot: UInt32) {
        self.session = session
        self.slot = slot
    }

    public static func < (lhs: SlotKey, rhs: SlotKey) -> Bool {
        (lhs.session, lhs.slot) < (rhs.session, rhs.slot)
    }
}
