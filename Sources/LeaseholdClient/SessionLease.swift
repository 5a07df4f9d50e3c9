import LeaseholdCore

/// The client's local view of one session's lease, as a pure state machine: the instant
/// comes with every event, so tests drive it with a manual clock, and
/// ``LeaseholdSession`` only runs what it returns.
///
/// Lifecycle: `active` → (the local deadline passes without an acknowledged renewal)
/// `jeopardy` → (a renewal sent before the deadline is acknowledged by the leader)
/// `active`, … → `ended` for good (closed, expired, evicted, superseded, client closed).
///
/// The jeopardy rule is conservative, across failovers too: the local deadline is
/// `send time of the newest acknowledged renewal + TTL − margin`. The server counts its
/// TTL from when it read the renewal, which is after the send, so the application stops
/// DMA before the server could end the session. A renewal counts only when the node that
/// acknowledged it leads the newest term the client has seen (a deposed leader that does
/// not know it yet cannot extend anything), and a retried renewal counts from its first
/// send. The instants are `ContinuousClock`'s, which on Linux is CLOCK_BOOTTIME (the
/// Swift runtime's `swift_get_time`): it keeps counting while the host is suspended or
/// its VM paused, so a host that wakes after its deadline is in jeopardy at once
/// (``state(at:)``), before any timer fires.
struct SessionLease {
    typealias Instant = ContinuousClock.Instant

    enum Change: Equatable {
        case none
        /// The deadline passed: tell the application to stop DMA.
        case jeopardy(deadline: Instant)
        /// A renewal brought the session back from jeopardy.
        case renewed
    }

    private(set) var ttl: Duration
    let margin: Duration?
    /// The send time of the newest acknowledged renewal (or of the open/resume).
    private(set) var renewedFrom: Instant
    /// The newest term seen; renewals from older terms are ignored.
    private(set) var newestTerm: UInt64
    private(set) var phase: LeaseholdSession.LeaseState = .active

    init(ttl: Duration, margin: Duration?, grantedAt sent: Instant, term: UInt64) {
        self.ttl = ttl
        self.margin = margin
        self.renewedFrom = sent
        self.newestTerm = term
    }

    /// The margin: the configured one, or max(TTL / 10, 100 ms).
    var effectiveMargin: Duration { self.margin ?? Swift.max(self.ttl / 10, .milliseconds(100)) }

    /// When the application must have stopped DMA unless a renewal succeeds first.
    var deadline: Instant { self.renewedFrom + self.ttl - self.effectiveMargin }

    /// The state at `now`: past the deadline it is jeopardy even before ``tick(now:)``
    /// said so.
    func state(at now: Instant) -> LeaseholdSession.LeaseState {
        if self.phase == .active, now >= self.deadline { return .jeopardy }
        return self.phase
    }

    /// A node told of `term` (a hello of any role).
    mutating func observe(term: UInt64) {
        self.newestTerm = Swift.max(self.newestTerm, term)
    }

    /// A renewal (keepalive or resume) sent at `sent` was acknowledged with `ttl` by the
    /// leader of `term`.
    mutating func acknowledged(sentAt sent: Instant, ttl: Duration, term: UInt64, now: Instant) -> Change {
        guard self.phase != .ended, term >= self.newestTerm else { return .none }
        self.newestTerm = term
        self.ttl = ttl
        self.renewedFrom = Swift.max(self.renewedFrom, sent)
        guard self.phase == .jeopardy, now < self.deadline else { return .none }
        self.phase = .active
        return .renewed
    }

    /// Time passed: whether the lease entered jeopardy.
    mutating func tick(now: Instant) -> Change {
        guard self.phase == .active, now >= self.deadline else { return .none }
        self.phase = .jeopardy
        return .jeopardy(deadline: self.deadline)
    }

    /// When ``tick(now:)`` has something to say next (`nil`: only a renewal changes
    /// anything).
    var nextWake: Instant? { self.phase == .active ? self.deadline : nil }

    /// Ends the lease: whether it was not ended before.
    mutating func end() -> Bool {
        guard self.phase != .ended else { return false }
        self.phase = .ended
        return true
    }
}
