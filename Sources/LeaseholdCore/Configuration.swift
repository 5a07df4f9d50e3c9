/// Settings of a Coordinator; the defaults are those of SEMANTICS.md.
public struct CoordinatorConfiguration: Hashable, Sendable {
    public var geometry: VolumeGeometry = .default
    public var defaultTTL: Duration = .seconds(10)
    public var minimumTTL: Duration = .seconds(1)
    public var maximumTTL: Duration = .seconds(300)
    public var defaultSlots: Int = 64
    public var maximumSlots: Int = 1_024
    /// Longest own expiry of a short-term pin.
    public var maxShortTermPin: Duration = .seconds(30)
    /// Time a holder has to answer a recall (once more if it prolongs).
    public var recallTimeout: Duration = .seconds(10)
    /// Time after the last holder of a busy block went away before it is free again.
    public var releaseDelay: Duration = .seconds(5)
    /// Cap of every wait.
    public var maxWait: Duration = .seconds(60)
    /// Unacknowledged pushes kept per session; older ones are dropped beyond this.
    public var maxPushBacklog: Int = 4_096
    /// Admin events the durable history keeps for `readEvents` and watchers; older ones
    /// are dropped (on disk too) as new ones come. 0 keeps none: watchers get live
    /// events only (and a batch then writes no event rows at all).
    public var eventHistory: Int = 10_000
    /// The longest history `eventHistory` may ask for.
    public static let maxEventHistory = 1_000_000
    /// Evicted sessions remembered to answer `fenced`/`sessionExpired` precisely.
    public var evictionMemory: Int = 65_536
    /// Most entries a listing returns in one page.
    public var maxPageSize: Int = 10_000
    /// Longest session name.
    public var maxNameLength: Int = 256
    /// Most byte ranges in one pin, layoutGet, layoutReturn or layoutCommit.
    public var maxRangesPerRequest: Int = 1_024
    /// Most due timers (expiries, recall deadlines, release delays, wait timeouts) one
    /// `tick` fires; the rest stay due, `nextDeadline` stays in the past, and the edge
    /// runs the next tick (leaseholdd paces those ticks). A storm of 10,000 expiries then
    /// goes in slices that other requests interleave with, instead of one step and one
    /// commit that hold everything up. A timer that fires a little later is always the
    /// safe side: a session, pin or busy extent lives slightly longer, never shorter.
    public var maxTimersPerStep: Int = 256
    /// Most due timers a request's step fires on its way (0: requests leave them all to
    /// ticks, so that a storm cannot be drained through the requests either).
    public var maxTimersPerRequest: Int = 0
    public var quotas = Quotas()

    public init() {}
}

/// Per-identity limits; `nil` is unlimited. Exceeding one is `resourceExhausted`
/// naming it.
public struct Quotas: Hashable, Sendable {
    public var sessionsPerIdentity: Int? = 100_000
    public var pinsPerIdentity: Int? = 10_000_000
    /// Live pins of one session.
    public var pinsPerSession: Int? = 1_000_000
    public var pinnedBlocksPerIdentity: UInt64?
    /// Busy (or quarantined) blocks held by the identity's live pins.
    public var busyBlocksPerIdentity: UInt64?

    public init() {}
}
