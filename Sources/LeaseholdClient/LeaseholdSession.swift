import LeaseholdCore
import LeaseholdMessages
import LeaseholdWire
import Synchronization

/// A session: the identity that owns pins and layouts on the server, kept alive by this
/// library.
///
/// Lifecycle: opened by ``LeaseholdClient/openSession(name:ttl:slots:)``; renewed with a
/// keepalive every TTL/3; resumed automatically after a reconnect (pins and layouts
/// stay, missed pushes are replayed); ended by ``close()``, by expiry or by eviction
/// (``SessionEvent/ended(_:)``). If no renewal succeeds for TTL minus a margin, the
/// session is in **jeopardy** (``SessionEvent/jeopardy(deadline:)``): the application
/// must stop DMA before the server could possibly expire it.
///
/// Every mutation takes a slot and a sequence number and keeps them through retries, so
/// a request whose reply was lost is answered from the server's reply cache instead of
/// running twice.
public final class LeaseholdSession: Sendable {
    /// Local view of the lease.
    public enum LeaseState: Sendable, Equatable {
        case active
        case jeopardy
        case ended
    }

    struct State {
        var lease: SessionLease
        var endError: LeaseholdError?
        var contiguousPush: UInt64 = 0
        var pushesAbove: Set<UInt64> = []
        var acknowledged: UInt64 = 0
        var acknowledging = false
        var tasks: [Task<Void, Never>] = []
        /// Set by ``answerRecalls(layouts:pins:)``.
        var responder: RecallResponder?
    }

    /// The session's id.
    public let id: SessionID
    /// The secret that resumes it (keep it private).
    public let secret: SessionSecret
    /// Pushes and lease changes, in order.
    public let events: AsyncStream<SessionEvent>
    let eventSink: AsyncStream<SessionEvent>.Continuation
    let connection: ClientConnection
    let slots: SlotPool
    let state: Mutex<State>

    init(grant: SessionGrant, connection: ClientConnection, sentAt: ContinuousClock.Instant, sequenceBase: UInt64 = 0) {
        self.id = grant.session
        self.secret = grant.secret
        self.connection = connection
        self.slots = SlotPool(count: grant.slots, base: sequenceBase)
        let lease = SessionLease(ttl: grant.ttl, margin: connection.configuration.jeopardyMargin, grantedAt: sentAt, term: connection.newestTerm)
        self.state = Mutex(State(lease: lease))
        (self.events, self.eventSink) = AsyncStream<SessionEvent>.makeStream()
    }

    /// Starts the keepalive and the jeopardy watchdog.
    func start() {
        self.connection.register(session: self.id, self)
        let keepAlive = Task { [weak self] in
            while let self, self.leaseState != .ended {
                let ttl = self.ttl
                try? await Task.sleep(for: ttl / 3)
                guard self.leaseState != .ended else { return }
                _ = try? await self.keepAlive()
            }
        }
        let watchdog = Task { [weak self] in
            while let self {
                let (change, wake, ttl, ended) = self.state.withLock { state in
                    (state.lease.tick(now: .now), state.lease.nextWake, state.lease.ttl, state.lease.phase == .ended)
                }
                if ended { return }
                if case .jeopardy(let deadline) = change { self.eventSink.yield(.jeopardy(deadline: deadline)) }
                if let wake, wake > .now {
                    try? await Task.sleep(until: wake, clock: .continuous)
                } else {
                    // In jeopardy only a renewal changes anything.
                    try? await Task.sleep(for: Swift.max(ttl / 50, .milliseconds(5)))
                }
            }
        }
        self.state.withLock { $0.tasks = [keepAlive, watchdog] }
    }

    /// The local lease state: past the local deadline it is `jeopardy` at once, even on a
    /// host that was suspended (before the watchdog wakes up to announce it).
    public var leaseState: LeaseState { self.state.withLock { $0.lease.state(at: .now) } }

    /// The TTL the server granted.
    public var ttl: Duration { self.state.withLock { $0.lease.ttl } }

    /// When the application must have stopped DMA unless a renewal succeeds first: the
    /// send time of the newest renewal that the leader acknowledged, plus the TTL, minus
    /// the margin (``ClientConfiguration/jeopardyMargin``). On Linux the clock is
    /// CLOCK_BOOTTIME, which counts while the host sleeps.
    public var localDeadline: ContinuousClock.Instant { self.state.withLock { $0.lease.deadline } }

    // MARK: - Requests

    /// - Parameter answering: a call that never waits on the server (the answers to
    ///   recalls: unpin, layoutReturn, prolongRecall), which may take the slot kept for
    ///   those (``SlotPool``).
    func perform(_ command: Command, answering: Bool = false) async throws -> Response {
        if command.isMutation {
            let tag = await self.slots.acquire(answering: answering)
            defer { self.slots.release(tag) }
            return try await self.retrying(WireRequestBody(session: self.id, tag: tag, command: .core(command)))
        }
        return try await self.retrying(WireRequestBody(session: self.id, command: .core(command)))
    }

    /// ``perform(_:answering:)`` of a call outside the slots that also tells the term of
    /// the node that answered (renewals).
    func performTracked(_ command: Command, answerWithin: Duration? = nil) async throws -> (response: Response, term: UInt64) {
        try await self.retryingTracked(WireRequestBody(session: self.id, command: .core(command)), answerWithin: answerWithin)
    }

    /// Sends until a reply arrives: a lost connection (or a node that no longer leads) is
    /// retried with the same tag after the reconnect and the session's resume, on
    /// whichever node leads then.
    func retrying(_ body: WireRequestBody, duringResume: Bool = false) async throws -> Response {
        try await self.retryingTracked(body, duringResume: duringResume).response
    }

    func retryingTracked(_ body: WireRequestBody, duringResume: Bool = false, answerWithin: Duration? = nil) async throws -> (response: Response, term: UInt64) {
        let request = try body.wire()
        while true {
            if let error = self.endedError { throw error }
            let response: WireResponse
            let term: UInt64
            do {
                (response, term) = try await self.connection.sendTracked(request, duringResume: duringResume, answerWithin: answerWithin)
            } catch let lost as ConnectionLost {
                if duringResume { throw lost }
                continue
            }
            switch try Reply(wire: response) {
            case .success(let result):
                return (result, term)
            case .failure(let error) where error.code == .sessionExpired || error.code == .fenced:
                self.end(error)
                throw error
            case .failure(let error) where error.code == .unavailable && body.tag != nil:
                // The server is shutting down: the request did not run; retry it with
                // the same tag once it is back.
                try? await Task.sleep(for: .milliseconds(50))
                continue
            case .failure(let error):
                throw error
            }
        }
    }

    var endedError: LeaseholdError? {
        self.state.withLock { state in
            guard state.lease.phase == .ended else { return nil }
            return state.endError ?? LeaseholdError(code: .sessionExpired, message: "session \(self.id) has ended")
        }
    }

    /// Ends the session locally: no more requests, keepalives or events after
    /// `preceding` (the push that told of the end, if any) and `.ended`.
    func end(_ error: LeaseholdError?, preceding: SessionEvent? = nil) {
        let (first, tasks, lapsed) = self.state.withLock { state -> (Bool, [Task<Void, Never>], SessionLease.Change) in
            // A deadline that passed before the end was learned is told first, in order
            // (the watchdog may not have woken up yet).
            let lapsed = error == nil ? .none : state.lease.tick(now: .now)
            guard state.lease.end() else { return (false, [], .none) }
            state.endError = error
            defer { state.tasks = [] }
            return (true, state.tasks, lapsed)
        }
        guard first else { return }
        for task in tasks { task.cancel() }
        self.connection.unregister(session: self.id)
        if case .jeopardy(let deadline) = lapsed { self.eventSink.yield(.jeopardy(deadline: deadline)) }
        if let preceding { self.eventSink.yield(preceding) }
        self.eventSink.yield(.ended(error))
        self.eventSink.finish()
    }

    /// A renewal sent at `sent` was acknowledged with `ttl` by a node of `term`.
    func renewed(sentAt sent: ContinuousClock.Instant, ttl: Duration, term: UInt64) {
        let newest = self.connection.newestTerm
        let change = self.state.withLock { state -> SessionLease.Change in
            state.lease.observe(term: newest)
            return state.lease.acknowledged(sentAt: sent, ttl: ttl, term: term, now: .now)
        }
        if change == .renewed { self.eventSink.yield(.renewed) }
    }

    // MARK: - Pushes

    func deliver(_ push: Push) {
        let fresh = self.state.withLock { state -> Bool in
            guard state.lease.phase != .ended, push.number > state.contiguousPush, !state.pushesAbove.contains(push.number) else { return false }
            state.pushesAbove.insert(push.number)
            while state.pushesAbove.remove(state.contiguousPush + 1) != nil { state.contiguousPush += 1 }
            return true
        }
        guard fresh else { return }
        switch push.body {
        case .layoutRecall(let notice): self.route(LayoutRecall(notice: notice, session: self))
        case .pinRecall(let notice): self.route(PinRecall(notice: notice, session: self))
        case .sessionExpiring(let remaining): self.eventSink.yield(.expiring(remaining: remaining))
        case .fenced(let notice):
            // The same codes the server gives a request of the evicted session.
            self.end(
                LeaseholdError(
                    code: notice.reason == .expired ? .sessionExpired : .fenced,
                    message: "session \(self.id) was evicted (\(notice.reason.rawValue)); its tokens up to \(notice.maxToken) are fenced at fence revision \(notice.revision)",
                    details: .init(fenceRevision: notice.revision)
                ),
                preceding: .fenced(notice)
            )
            return
        }
        self.acknowledgePushes()
    }

    /// Acknowledges the gap-free prefix of pushes received, one request at a time.
    func acknowledgePushes() {
        let upTo = self.state.withLock { state -> UInt64? in
            guard !state.acknowledging, state.contiguousPush > state.acknowledged, state.lease.phase != .ended else { return nil }
            state.acknowledging = true
            return state.contiguousPush
        }
        guard let upTo else { return }
        Task {
            let done = try? await self.retrying(WireRequestBody(session: self.id, command: .core(.acknowledgePushes(upTo: upTo))))
            self.state.withLock { state in
                state.acknowledging = false
                if done != nil { state.acknowledged = Swift.max(state.acknowledged, upTo) }
            }
            if done != nil { self.acknowledgePushes() }
        }
    }

    // MARK: - Public operations

    /// Renews the session now (the library does it every TTL/3).
    /// - Returns: the TTL now remaining on the server.
    @discardableResult
    public func keepAlive() async throws -> Duration {
        let sent = ContinuousClock.now
        // A live leader answers a renewal at once (outside its journal): a connection
        // that does not is to a node that stopped or was cut off, and is dropped so the
        // renewal goes to whichever node leads.
        let (response, term) = try await self.performTracked(.keepAlive, answerWithin: Self.renewalAnswerTime(ttl: self.ttl))
        guard case .keptAlive(let ttl) = response else { throw Self.unexpected("keepAlive") }
        self.renewed(sentAt: sent, ttl: ttl, term: term)
        return ttl
    }

    /// Creates an empty file.
    public func createInode() async throws -> InodeID {
        guard case .inodeCreated(let inode) = try await self.perform(.createInode) else { throw Self.unexpected("createInode") }
        return inode
    }

    /// Truncates the inode to 0 under `policy`, then removes it.
    public func deleteInode(_ inode: InodeID, policy: TruncatePolicy = .busy, expectedGeneration: UInt64? = nil) async throws -> MappingChange {
        guard case .mappingChanged(let change) = try await self.perform(.deleteInode(inode, policy: policy, expectedGeneration: expectedGeneration)) else {
            throw Self.unexpected("deleteInode")
        }
        return change
    }

    /// Fills the holes of `range` with unwritten blocks; with `waitForBusy`, waits that
    /// long for busy blocks to free instead of failing with `noSpace`.
    public func allocate(_ inode: InodeID, _ range: ByteRange, waitForBusy: Duration? = nil, expectedGeneration: UInt64? = nil) async throws -> Allocation {
        guard case .allocated(let allocation) = try await self.perform(.allocate(inode, range, waitForBusy: waitForBusy, expectedGeneration: expectedGeneration)) else {
            throw Self.unexpected("allocate")
        }
        return allocation
    }

    /// Marks the blocks of `range` written.
    /// - Returns: the inode's generation and the blocks newly marked.
    @discardableResult
    public func markWritten(_ inode: InodeID, _ range: ByteRange) async throws -> (generation: UInt64, blocks: UInt64) {
        guard case .markedWritten(let generation, let blocks) = try await self.perform(.markWritten(inode, range)) else {
            throw Self.unexpected("markWritten")
        }
        return (generation, blocks)
    }

    /// Pins every range (all or none) for DMA.
    /// - Parameters:
    ///   - kind: `.shortTerm(ttl:)` with its own expiry, or `.longTerm` (answers recalls).
    ///   - allocate: fill holes first instead of failing with `notMapped`.
    ///   - wait: wait this long for a break over the ranges instead of `rangeBreaking`.
    public func pin(_ inode: InodeID, ranges: [ByteRange], kind: PinKind, allocate: Bool = false, wait: Duration? = nil) async throws -> PinGrant {
        guard case .pinned(let grant) = try await self.perform(.pin(PinRequest(inode: inode, ranges: ranges, kind: kind, allocate: allocate, wait: wait))) else {
            throw Self.unexpected("pin")
        }
        return grant
    }

    /// Releases a pin: the caller promises its DMA has stopped.
    /// Like `layoutReturn` and `prolongRecall`, it never waits on the server, so it may
    /// take the slot kept for recall answers.
    public func unpin(_ pin: PinID) async throws {
        guard case .unpinned = try await self.perform(.unpin(pin), answering: true) else { throw Self.unexpected("unpin") }
    }

    /// Sets the size; blocks past it are cut out under `policy`.
    public func truncate(_ inode: InodeID, size: UInt64, policy: TruncatePolicy = .busy, expectedGeneration: UInt64? = nil) async throws -> MappingChange {
        guard case .mappingChanged(let change) = try await self.perform(.truncate(inode, size: size, policy: policy, expectedGeneration: expectedGeneration)) else {
            throw Self.unexpected("truncate")
        }
        return change
    }

    /// Cuts out the blocks wholly inside `range` under `policy`.
    public func punchHole(_ inode: InodeID, _ range: ByteRange, policy: TruncatePolicy = .busy, expectedGeneration: UInt64? = nil) async throws -> MappingChange {
        guard case .mappingChanged(let change) = try await self.perform(.punchHole(inode, range, policy: policy, expectedGeneration: expectedGeneration)) else {
            throw Self.unexpected("punchHole")
        }
        return change
    }

    /// Gets (or extends) this session's layout of the inode.
    public func layoutGet(_ inode: InodeID, ranges: [ByteRange], iomode: IOMode) async throws -> LayoutGrantReply {
        guard case .layout(let grant) = try await self.perform(.layoutGet(inode, ranges: ranges, iomode: iomode)) else { throw Self.unexpected("layoutGet") }
        return grant
    }

    /// Returns ranges of a layout, or all of it when `ranges` is `nil`.
    @discardableResult
    public func layoutReturn(_ stateID: LayoutStateID, ranges: [ByteRange]? = nil) async throws -> LayoutReturned {
        guard case .layoutReturned(let returned) = try await self.perform(.layoutReturn(stateID, ranges: ranges), answering: true) else {
            throw Self.unexpected("layoutReturn")
        }
        return returned
    }

    /// A readWrite holder extends the size and marks blocks written.
    @discardableResult
    public func layoutCommit(_ stateID: LayoutStateID, newSize: UInt64? = nil, written: [ByteRange]) async throws -> (generation: UInt64, size: UInt64) {
        guard case .layoutCommitted(let generation, let size) = try await self.perform(.layoutCommit(stateID, newSize: newSize, written: written)) else {
            throw Self.unexpected("layoutCommit")
        }
        return (generation, size)
    }

    /// `recallInProgress`: one more recall timeout, once per recall.
    @discardableResult
    public func prolongRecall(_ recall: RecallID) async throws -> Duration {
        guard case .recallProlonged(_, let remaining) = try await self.perform(.prolongRecall(recall), answering: true) else { throw Self.unexpected("prolongRecall") }
        return remaining
    }

    /// Unpins and returns everything voluntarily (no fence) and ends the session.
    @discardableResult
    public func close() async throws -> SessionClosed {
        guard case .sessionClosed(let closed) = try await self.perform(.closeSession) else { throw Self.unexpected("closeSession") }
        self.end(nil)
        return closed
    }

    /// How long a renewal may go unanswered before its connection counts as dead:
    /// max(TTL / 4, 2 s).
    static func renewalAnswerTime(ttl: Duration) -> Duration { Swift.max(ttl / 4, .seconds(2)) }

    static func unexpected(_ operation: String) -> LeaseholdError {
        .protocolError("the server answered \(operation) with a reply of another operation")
    }
}

// MARK: - Reconnection

extension LeaseholdSession: ConnectionListener {
    func reconnected(_ connection: ClientConnection, epoch: UInt64) async -> ResumeOutcome {
        guard self.leaseState != .ended else { return .done }
        let sent = ContinuousClock.now
        do {
            let (response, term) = try await self.retryingTracked(
                WireRequestBody(command: .core(.resumeSession(self.id, secret: self.secret))),
                duringResume: true
            )
            guard case .sessionResumed(let resumed) = response else { throw Self.unexpected("resumeSession") }
            if let first = resumed.replay.first?.number {
                // Pushes before the first kept one were acknowledged or dropped.
                self.state.withLock { state in
                    if first > state.contiguousPush + 1 {
                        state.contiguousPush = first - 1
                        state.pushesAbove = state.pushesAbove.filter { $0 > first - 1 }
                    }
                }
            }
            self.renewed(sentAt: sent, ttl: resumed.ttl, term: term)
            for push in resumed.replay { self.deliver(push) }
            self.eventSink.yield(.resumed(epoch: epoch))
            return .done
        } catch let error as LeaseholdError {
            if error.code == .sessionExpired || error.code == .fenced || error.code == .notFound || error.code == .permissionDenied {
                self.end(error)
                return .done
            }
            // `unavailable`: the node cannot take it now; another attempt will.
            return .retry
        } catch {
            // The connection dropped again, or the node no longer leads: the next
            // connection resumes.
            return .retry
        }
    }

    func received(_ push: WirePush) {
        guard case .sessionPush(let wire)? = push.body, let decoded = try? Push(wire: wire) else { return }
        self.deliver(decoded)
    }

    /// Another connection (another process, after a takeover with the secret) resumed the
    /// session: this object stops for good instead of resuming it back, and the
    /// application must stop DMA through its pins.
    func superseded() {
        self.end(
            LeaseholdError(
                code: .permissionDenied,
                message: "session \(self.id) was resumed by another connection (superseded): this client no longer holds it; stop DMA through its pins"
            )
        )
    }

    /// The client was closed: the session lives on on the server until its TTL, but this
    /// object stops renewing it and refuses further calls.
    func clientClosed() {
        self.end(LeaseholdError(code: .unavailable, message: "the client of session \(self.id) was closed; the session expires on the server after its TTL"))
    }
}
