/// A mapping change in progress: truncate, punchHole, deleteInode or allocate.
///
/// Lifecycle (SEMANTICS.md, "Breaks"): validated, then queued on its inode; overlapping
/// mapping changes of one inode run one at a time, first come first served. From the
/// moment it is queued its outward range refuses new pins and layouts from every
/// session. When it starts it recalls the other sessions' overlapping layouts, returns
/// the breaker's own, and applies its pin policy. It commits once every recalled layout
/// is returned or revoked and, for `wait`, no conflicting pin is left; or it ends with
/// `timedOut` (nothing changed, recalls carry on), or is cancelled with its connection.
/// Breaks are runtime state: a restart forgets them and clients retry.
/// Can transition to: queued -> started -> (waitingForSpace ->) committed | timedOut | cancelled.
struct Break: Sendable, Equatable {
    enum Operation: Sendable, Equatable {
        case truncate(size: UInt64)
        case punch(ByteRange)
        case delete
        case allocate(ByteRange, waitForBusy: Duration?)
        /// `pin(allocate: true)` over holes: allocate, then grant the pin.
        case allocateThenPin(PinRequest)
    }

    enum Phase: Sendable, Equatable {
        case queued
        case started
        /// An allocation waiting for busy blocks to become free.
        case waitingForSpace
    }

    /// The request that started it; also its identity.
    var key: SlotKey
    var tag: SlotTag
    var inode: InodeID
    var operation: Operation
    var policy: TruncatePolicy
    /// Outward block range: refuses pins and layouts, recalls layouts, finds conflicting pins.
    var range: BlockRange
    var phase: Phase = .queued
    /// False for a truncate that grows the file: it changes no mapping.
    var recallsLayouts = true
    /// Layout and pin recalls this break waits for.
    var recalls: Set<RecallID> = []
    /// Sessions whose pins a `wait` break waits for (the no-deadlock rule).
    var waitingOnSessions: Set<SessionID> = []
    var returnedLayouts: [LayoutID] = []
    var revokedLayouts: [LayoutID] = []
    var evictedSessions: [SessionID] = []
    var recalledPins: [PinID] = []

    var isAllocation: Bool {
        switch self.operation {
        case .allocate, .allocateThenPin: true
        default: false
        }
    }
}

/// A pin waiting for a break over its ranges to end.
struct PinWait: Sendable, Equatable {
    var key: SlotKey
    var tag: SlotTag
    var request: PinRequest
    var caller: Caller
}
