import LeaseholdCore

/// A clock that moves only when told: tests drive lease expiry, recall deadlines and
/// release delays in microseconds instead of sleeping.
public struct ManualClock: Sendable {
    public private(set) var now: Instant

    public init(start: Instant = Instant(nanoseconds: 1_000_000_000)) {
        self.now = start
    }

    public mutating func advance(by duration: Duration) {
        self.now = self.now + duration
    }
}
