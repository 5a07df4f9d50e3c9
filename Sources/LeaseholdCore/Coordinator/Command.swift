/// Who sends a request: the identity from the TLS client certificate and its roles.
public struct Caller: Hashable, Sendable, Codable {
    public var identity: String
    /// May inspect and intervene (evict, deregister, force-release, delete quarantine).
    public var isAdmin: Bool
    /// May register as a storage target and acknowledge fences.
    public var isTarget: Bool

    public init(identity: String, isAdmin: Bool = false, isTarget: Bool = false) {
        self.identity = identity
        self.isAdmin = isAdmin
        self.isTarget = isTarget
    }
}

/// The exactly-once tag of a mutation: a slot of the session and a sequence in it.
public struct SlotTag: Hashable, Sendable, Codable {
    public var slot: UInt32
    public var sequence: UInt64

    public init(slot: UInt32, sequence: UInt64) {
        self.slot = slot
        self.sequence = sequence
    }
}

/// One request to the Coordinator.
public struct Request: Sendable, Equatable, Codable {
    public var caller: Caller
    /// The session the request acts in; required by every command but `openSession`,
    /// `resumeSession`, target and admin commands.
    public var session: SessionID?
    /// Required on every mutation (see ``Command/isMutation``).
    public var tag: SlotTag?
    public var command: Command

    public init(caller: Caller, session: SessionID? = nil, tag: SlotTag? = nil, command: Command) {
        self.caller = caller
        self.session = session
        self.tag = tag
        self.command = command
    }
}

/// What to do with pins that conflict with a truncate, punch or delete (the seed's
/// options 1 to 4; option 5 is the volume's ``PinSetting``).
public enum TruncatePolicy: Hashable, Sendable, Codable {
    /// Do not wait: pinned blocks become busy at commit, the rest go free (default).
    case busy
    /// Wait until conflicting pins are gone; long-term pins are recalled, then revoked.
    case wait(timeout: Duration)
    /// Refuse with `busy` if any pin conflicts; nothing changes.
    case fail
    /// Like `busy`, but pinned blocks move to a new quarantine inode.
    case quarantine(keep: Bool)
}

/// A pin request.
public struct PinRequest: Hashable, Sendable, Codable {
    public var inode: InodeID
    /// Byte ranges, taken all or none.
    public var ranges: [ByteRange]
    public var kind: PinKind
    /// Allocate holes first instead of failing with `notMapped`.
    public var allocate: Bool
    /// Wait this long for a break over the ranges instead of failing with `rangeBreaking`.
    public var wait: Duration?

    public init(inode: InodeID, ranges: [ByteRange], kind: PinKind, allocate: Bool = false, wait: Duration? = nil) {
        self.inode = inode
        self.ranges = ranges
        self.kind = kind
        self.allocate = allocate
        self.wait = wait
    }
}

/// A page of a listing: entries after `after` (an id), at most `limit`.
public struct Page: Hashable, Sendable, Codable {
    public var after: UInt64
    public var limit: Int

    public init(after: UInt64 = 0, limit: Int = 1_000) {
        self.after = after
        self.limit = limit
    }
}

/// Every operation of SEMANTICS.md.
public enum Command: Sendable, Equatable, Codable {
    // MARK: Sessions
    /// Opens a session. The secret comes from the edge (the Core has no randomness).
    case openSession(name: String, ttl: Duration?, slots: Int?, secret: SessionSecret)
    case keepAlive
    case resumeSession(SessionID, secret: SessionSecret)
    case closeSession
    /// Acknowledges pushes up to and including `number`.
    case acknowledgePushes(upTo: UInt64)
    /// Cancels the session's waiting requests (its connection closed).
    case cancelWaits

    // MARK: Inodes and allocation
    case createInode
    case deleteInode(InodeID, policy: TruncatePolicy, expectedGeneration: UInt64?)
    case allocate(InodeID, ByteRange, waitForBusy: Duration?, expectedGeneration: UInt64?)
    case markWritten(InodeID, ByteRange)

    // MARK: Pins
    case pin(PinRequest)
    case unpin(PinID)

    // MARK: Breaks
    case truncate(InodeID, size: UInt64, policy: TruncatePolicy, expectedGeneration: UInt64?)
    case punchHole(InodeID, ByteRange, policy: TruncatePolicy, expectedGeneration: UInt64?)

    // MARK: Layouts and recalls
    case layoutGet(InodeID, ranges: [ByteRange], iomode: IOMode)
    /// Returns the given ranges, or the whole layout when `nil`.
    case layoutReturn(LayoutStateID, ranges: [ByteRange]?)
    case layoutCommit(LayoutStateID, newSize: UInt64?, written: [ByteRange])
    /// `recallInProgress`: extends a recall's deadline once.
    case prolongRecall(RecallID)

    // MARK: Storage targets
    case registerTarget
    case acknowledgeFence(FenceRevision)
    /// Fences after `revision` still in the feed.
    case readFences(after: FenceRevision)

    // MARK: Admin actions
    case evictSession(SessionID)
    case deregisterTarget(name: String)
    case forceRelease(BlockRange)
    case deleteQuarantineInode(InodeID)
    case setPinSetting(PinSetting)

    // MARK: Admin queries
    case status
    case listBusyExtents(Page)
    /// Free extents starting at or after `page.after` (a block number), in block order.
    case listFreeExtents(Page)
    case listPins(Page)
    case listLayouts(Page)
    case listSessions(Page)
    case listInodes(Page)
    case showInode(InodeID)
    case listTargets
    case checkInvariants
    case readEvents(after: EventRevision, limit: Int)

    /// Mutations carry a slot tag and their replies are cached for exactly-once retries.
    public var isMutation: Bool {
        switch self {
        case .createInode, .deleteInode, .allocate, .markWritten, .pin, .unpin, .truncate, .punchHole,
            .layoutGet, .layoutReturn, .layoutCommit, .prolongRecall:
            true
        default:
            false
        }
    }

    /// Admin queries a standby answers from the log it applied (docs/cluster.md): they
    /// read the persisted state only (the event history included: it is durable).
    /// Watching events is not one: a watch follows the leader's commits.
    public var isAdminQuery: Bool {
        switch self {
        case .status, .listBusyExtents, .listFreeExtents, .listPins, .listLayouts, .listSessions, .listInodes, .showInode, .listTargets, .checkInvariants,
            .readEvents:
            true
        default:
            false
        }
    }

    /// Commands that act inside an existing session.
    public var needsSession: Bool {
        switch self {
        case .openSession, .resumeSession, .registerTarget, .acknowledgeFence, .readFences,
            .evictSession, .deregisterTarget, .forceRelease, .deleteQuarantineInode, .setPinSetting,
            .status, .listBusyExtents, .listFreeExtents, .listPins, .listLayouts, .listSessions, .listInodes, .showInode,
            .listTargets, .checkInvariants, .readEvents:
            false
        default:
            true
        }
    }

    /// Commands that need the admin role.
    public var needsAdmin: Bool {
        switch self {
        case .evictSession, .deregisterTarget, .forceRelease, .deleteQuarantineInode, .setPinSetting,
            .status, .listBusyExtents, .listFreeExtents, .listPins, .listLayouts, .listSessions, .listInodes, .showInode,
            .listTargets, .checkInvariants, .readEvents:
            true
        default:
            false
        }
    }

    /// Commands that need the target role.
    public var needsTarget: Bool {
        switch self {
        case .registerTarget, .acknowledgeFence, .readFences: true
        default: false
        }
    }

    /// A short name for logs and metrics.
    public var name: String {
        switch self {
        case .openSession: "openSession"
        case .keepAlive: "keepAlive"
        case .resumeSession: "resumeSession"
        case .closeSession: "closeSession"
        case .acknowledgePushes: "acknowledgePushes"
        case .cancelWaits: "cancelWaits"
        case .createInode: "createInode"
        case .deleteInode: "deleteInode"
        case .allocate: "allocate"
        case .markWritten: "markWritten"
        case .pin: "pin"
        case .unpin: "unpin"
        case .truncate: "truncate"
        case .punchHole: "punchHole"
        case .layoutGet: "layoutGet"
        case .layoutReturn: "layoutReturn"
        case .layoutCommit: "layoutCommit"
        case .prolongRecall: "prolongRecall"
        case .registerTarget: "registerTarget"
        case .acknowledgeFence: "acknowledgeFence"
        case .readFences: "readFences"
        case .evictSession: "evictSession"
        case .deregisterTarget: "deregisterTarget"
        case .forceRelease: "forceRelease"
        case .deleteQuarantineInode: "deleteQuarantineInode"
        case .setPinSetting: "setPinSetting"
        case .status: "status"
        case .listBusyExtents: "listBusyExtents"
        case .listFreeExtents: "listFreeExtents"
        case .listPins: "listPins"
        case .listLayouts: "listLayouts"
        case .listSessions: "listSessions"
        case .listInodes: "listInodes"
        case .showInode: "showInode"
        case .listTargets: "listTargets"
        case .checkInvariants: "checkInvariants"
        case .readEvents: "readEvents"
        }
    }
}
