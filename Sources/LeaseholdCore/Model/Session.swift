import DequeModule

/// A client session.
///
/// Lifecycle: `openSession` creates it with a secret (kept only as its digest), a TTL and a fixed number of
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
    /// The digest of the secret `resumeSession` must present.
    public var secretDigest: SessionSecretDigest
    public var ttl: Duration
    /// Number of request slots the session was granted.
    public var slotCount: Int
    /// The per-slot reply cache (exactly-once requests), grown up to the highest slot
    /// used so far: most clients use a few of their slots.
    public var slots: [Slot]
    /// Number of the last push sent (pushes are numbered from 1 per session).
    public var lastPush: UInt64

    // Runtime only, re-armed at recovery.
    /// When the session expires unless renewed.
    public var deadline: Instant
    /// Whether `sessionExpiring` was pushed since the last renewal.
    public var warned: Bool
    /// Pushes not yet acknowledged, oldest first (bounded).
    public var outbox: Deque<Push>
    /// Live pins of the session (the `pinsPerSession` quota).
    public var pinCount = 0

    /// Slot `index` (it must be below `slotCount`).
    public func slot(_ index: Int) -> Slot {
        index < self.slots.count ? self.slots[index] : Slot()
    }

    /// Replaces slot `index`, growing the cache as needed.
    public mutating func setSlot(_ index: Int, _ slot: Slot) {
        if index >= self.slots.count {
            self.slots.append(contentsOf: repeatElement(Slot(), count: index + 1 - self.slots.count))
        }
        self.slots[index] = slot
    }

    /// When the session's timer fires next: the `sessionExpiring` warning at 2/3 of the
    /// TTL, or the expiry once warned.
    public var nextCheck: Instant {
        self.warned ? self.deadline : self.deadline - self.ttl / 3
    }

    /// The persisted fields.
    public var record: SessionRecord {
        SessionRecord(
            id: self.id,
            identity: self.identity,
            name: self.name,
            secretDigest: self.secretDigest,
            ttl: self.ttl,
            slotCount: self.slotCount,
            lastPush: self.lastPush
        )
    }
}

/// One request slot of a session: the last sequence seen and the last reply stored.
public struct Slot: Sendable, Equatable {
    /// Last sequence accepted in this slot (0 = none yet).
    public var sequence: UInt64
    /// Whether the request `sequence` is waiting inside the Coordinator.
    public var pending: Bool
    /// The last completed sequence and its reply: the slot's persisted row.
    public var stored: SlotRecord?

    public init(sequence: UInt64 = 0, pending: Bool = false, stored: SlotRecord? = nil) {
        self.sequence = sequence
        self.pending = pending
        self.stored = stored
    }

    /// The stored reply of `sequence`; `nil` while it is pending or after its wait was
    /// cancelled.
    public var reply: Reply? {
        guard let stored = self.stored, stored.sequence == self.sequence else { return nil }
        return stored.reply
    }
}

/// The persisted row of a session.
public struct SessionRecord: Hashable, Sendable, Codable {
    public var id: SessionID
    public var identity: String
    public var name: String
    /// The secret's digest; the secret itself is never persisted.
    public var secretDigest: SessionSecretDigest
    public var ttl: Duration
    public var slotCount: Int
    public var lastPush: UInt64

    public init(
        id: SessionID, identity: String, name: String, secretDigest: SessionSecretDigest, ttl: Duration, slotCount: Int, lastPush: UInt64
    ) {
        self.id = id
        self.identity = identity
        self.name = name
        self.secretDigest = secretDigest
        self.ttl = ttl
        self.slotCount = slotCount
        self.lastPush = lastPush
    }
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
