/// What the Coordinator decided about one request.
public enum Decision: Hashable, Sendable {
    /// Reply now (after the step's change set is durable).
    case reply(Reply)
    /// The request waits inside the Coordinator; a later step completes it (see
    /// ``Effects/completions``).
    case pending
}

/// A waiting request that a step completed.
public struct Completion: Hashable, Sendable {
    public var session: SessionID
    public var tag: SlotTag
    public var reply: Reply

    public init(session: SessionID, tag: SlotTag, reply: Reply) {
        self.session = session
        self.tag = tag
        self.reply = reply
    }
}

/// Everything a step asks the edges to do, as plain values.
///
/// Order of release: everything goes out only after `changes` is durable: the reply,
/// `completions`, `pushes` (recalls included), `fences` and `events`. Nothing numbered
/// (an id, a recall id, a push number, a fence revision) leaves before the step that
/// numbered it is durable, so a restart or a takeover that reloads the counters from the
/// log always numbers above everything a client has seen (invariant 9; an earlier design
/// sent recalls at once, and after a crash the same recall id and push number could go
/// to a different recall, which the client dropped as a duplicate).
public struct Effects: Hashable, Sendable {
    /// Rows to persist before anything is released.
    public var changes = ChangeSet()
    /// Session pushes (recalls, fenced, sessionExpiring) in number order: send after commit.
    public var pushes: [SessionPush] = []
    /// Waiting requests this step resolved: reply after commit.
    public var completions: [Completion] = []
    /// New fence feed entries: send to every connected storage target after commit.
    public var fences: [Fence] = []
    /// Admin events: send to watchers after commit.
    public var events: [Event] = []
    /// Sessions that ended (closed or evicted): the edge drops their connections' binding.
    public var endedSessions: [SessionID] = []
    /// When `tick` must run next, if anything is scheduled.
    public var nextDeadline: Instant?
    /// What the step measured, for the edge's metrics.
    public var observations = Observations()

    public init() {}

    /// Nothing to send or wake besides the reply: no pushes, completions,
    /// fences, events or ended sessions.
    public var isQuiet: Bool {
        self.pushes.isEmpty && self.completions.isEmpty && self.fences.isEmpty && self.events.isEmpty
            && self.endedSessions.isEmpty
    }
}

/// Figures a step measured for the edge's metrics: neither persisted nor sent, and
/// empty for most steps. Durations are in the Coordinator's time.
public struct Observations: Hashable, Sendable {
    /// Recalls this step sent.
    public var recallsSent = 0
    /// For each recall answered in this step (returned, unpinned, or the grant given up
    /// by closing the session): how long after it was sent.
    public var recallsAnswered: [Duration] = []
    /// Recalls that ended unanswered: their grant was revoked with the session.
    public var recallsRevoked = 0
    /// For each session this step expired: how long after its deadline (never negative:
    /// expiry is never early).
    public var expiryLateness: [Duration] = []

    public init() {}

    public var isEmpty: Bool {
        self.recallsSent == 0 && self.recallsAnswered.isEmpty && self.recallsRevoked == 0 && self.expiryLateness.isEmpty
    }
}

/// The result of one `handle` or `tick`.
public struct Output: Hashable, Sendable {
    /// `nil` for `tick`.
    public var decision: Decision?
    public var effects: Effects

    public init(decision: Decision?, effects: Effects) {
        self.decision = decision
        self.effects = effects
    }

    /// The immediate reply, if the decision was one.
    public var reply: Reply? {
        if case .reply(let reply) = self.decision { return reply }
        return nil
    }
}
