/// The Coordinator's deadlines, ordered by instant. Nothing here reads a clock: `tick`
/// passes the current instant and every due timer fires in order.
struct TimerQueue: Sendable, Equatable {
    /// What a timer is for.
    enum Target: Hashable, Comparable, Sendable {
        /// The session's next check: its `sessionExpiring` warning, then its expiry.
        case session(SessionID)
        /// A short-term pin's own expiry.
        case pin(PinID)
        /// A recall's deadline.
        case recall(RecallID)
        /// A waiting request's timeout.
        case wait(SlotKey)
        /// A resolved fence's release delay.
        case fence(FenceRevision)
        /// Busy blocks whose release delay ends.
        case release(UInt64)
    }

    struct Key: Hashable, Comparable, Sendable {
        var at: Instant
        var target: Target

        static func < (lhs: Key, rhs: Key) -> Bool {
            (lhs.at, lhs.target) < (rhs.at, rhs.target)
        }
    }

    private var queue = OrderedMap<Key, Bool>()
    private var scheduled: [Target: Instant] = [:]
    /// The earliest key, cached: every step asks whether anything is due.
    private var earliest: Key?

    /// Sets (or moves) the timer of `target`.
    mutating func schedule(_ target: Target, at instant: Instant) {
        let key = Key(at: instant, target: target)
        if let old = self.scheduled[target] {
            if old == instant { return }
            self.remove(Key(at: old, target: target))
        }
        self.scheduled[target] = instant
        self.queue[key] = true
        if self.earliest.map({ key < $0 }) ?? true { self.earliest = key }
    }

    mutating func cancel(_ target: Target) {
        guard let old = self.scheduled.removeValue(forKey: target) else { return }
        self.remove(Key(at: old, target: target))
    }

    private mutating func remove(_ key: Key) {
        self.queue.removeValue(forKey: key)
        if key == self.earliest { self.earliest = self.queue.first?.key }
    }

    func instant(of target: Target) -> Instant? {
        self.scheduled[target]
    }

    /// The earliest timer.
    var next: Instant? { self.earliest?.at }

    /// Removes and returns the earliest timer due at `now`.
    mutating func popDue(_ now: Instant) -> Target? {
        guard let key = self.earliest, key.at <= now else { return nil }
        self.scheduled.removeValue(forKey: key.target)
        self.remove(key)
        return key.target
    }
}
