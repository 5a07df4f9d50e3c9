/// A point on the server's monotonic clock, in nanoseconds from an arbitrary origin.
///
/// The Core never reads a clock: every `handle` and `tick` receives the current instant
/// as an argument. Instants are never persisted; after a restart every deadline is
/// re-armed in full from the new clock (SEMANTICS.md, "Restart and grace").
public struct Instant: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// Nanoseconds since the clock's origin.
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) {
        self.nanoseconds = nanoseconds
    }

    /// The origin of a clock.
    public static let zero = Instant(nanoseconds: 0)

    public static func < (lhs: Instant, rhs: Instant) -> Bool {
        lhs.nanoseconds < rhs.nanoseconds
    }

    /// The instant `duration` later, saturating at the end of time instead of trapping.
    public static func + (lhs: Instant, rhs: Duration) -> Instant {
        let delta = rhs.nanosecondsClamped
        let (sum, overflow) = lhs.nanoseconds.addingReportingOverflow(delta)
        return Instant(nanoseconds: overflow ? .max : sum)
    }

    /// The instant `duration` earlier, saturating at the origin.
    public static func - (lhs: Instant, rhs: Duration) -> Instant {
        let delta = rhs.nanosecondsClamped
        return Instant(nanoseconds: lhs.nanoseconds > delta ? lhs.nanoseconds - delta : 0)
    }

    /// The time from `rhs` to `lhs`, or zero when `rhs` is later.
    public static func - (lhs: Instant, rhs: Instant) -> Duration {
        guard lhs > rhs else { return .zero }
        return .nanoseconds(Int64(clamping: lhs.nanoseconds - rhs.nanoseconds))
    }

    public var description: String {
        "t+\(Duration.nanoseconds(Int64(clamping: self.nanoseconds)))"
    }
}

extension Duration {
    /// Whole nanoseconds in this duration, clamped to `0...UInt64.max`.
    public var nanosecondsClamped: UInt64 {
        let (seconds, attoseconds) = self.components
        if seconds < 0 || (seconds == 0 && attoseconds < 0) { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .max }
        let (sum, overflow2) = whole.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000))
        return overflow2 ? .max : sum
    }
}
