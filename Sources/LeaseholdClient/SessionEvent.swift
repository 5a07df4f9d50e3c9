import LeaseholdCore

/// What happens to a session, in the order the application should react to it.
public enum SessionEvent: Sendable {
    /// Return the layout range before the deadline (``LayoutRecall/returnLayout()``) or
    /// ask for more time once (``LayoutRecall/prolong()``); otherwise the layout is
    /// revoked and the session evicted.
    case layoutRecall(LayoutRecall)
    /// Stop DMA through the pin and unpin it (``PinRecall/unpin()``), or prolong once.
    case pinRecall(PinRecall)
    /// The session was evicted: storage targets reject its tokens up to `maxToken`. Its
    /// DMA must already have stopped (see ``jeopardy(deadline:)``).
    case fenced(FenceNotice)
    /// The server has not seen a renewal for 2/3 of the TTL.
    case expiring(remaining: Duration)
    /// The local lease deadline passed without a renewal: **stop all DMA now**. The
    /// server cannot have expired the session yet; it may still come back
    /// (``renewed``) if the connection recovers in time.
    case jeopardy(deadline: ContinuousClock.Instant)
    /// A renewal succeeded after jeopardy: DMA may resume.
    case renewed
    /// The connection was re-established and the session resumed (pushes it missed
    /// were replayed before this event).
    case resumed(epoch: UInt64)
    /// The session is gone (expired, evicted or closed); every further call fails.
    case ended(LeaseholdError?)
}

/// A recall of part of a layout, with the ways to answer it.
public struct LayoutRecall: Sendable {
    public let notice: LayoutRecallNotice
    let session: LeaseholdSession

    /// Returns the recalled range (the stateid of the recall, so ranges granted later
    /// stay).
    @discardableResult
    public func returnLayout() async throws -> LayoutReturned {
        let blockSize = self.session.connection.hello.limits.blockSize
        let range = ByteRange(offset: self.notice.range.start * blockSize, length: self.notice.range.count * blockSize)
        return try await self.session.layoutReturn(self.notice.stateID, ranges: [range])
    }

    /// `recallInProgress`: one more recall timeout, once.
    /// - Returns: the time now left.
    @discardableResult
    public func prolong() async throws -> Duration {
        try await self.session.prolongRecall(self.notice.recall)
    }
}

/// A recall of a long-term pin, with the ways to answer it.
public struct PinRecall: Sendable {
    public let notice: PinRecallNotice
    let session: LeaseholdSession

    /// Unpins: the caller promises its DMA through the pin has stopped.
    public func unpin() async throws {
        try await self.session.unpin(self.notice.pin)
    }

    /// One more recall timeout, once.
    @discardableResult
    public func prolong() async throws -> Duration {
        try await self.session.prolongRecall(self.notice.recall)
    }
}
