import DequeModule

// MARK: - Sessions
//
// A session lives from openSession to closeSession or eviction. Its expiry is driven
// only by the `now` of each step, never early: one timer per session fires first at 2/3
// of the TTL (the `sessionExpiring` push) and then at the TTL (eviction). keepAlive
// moves the timer; it changes nothing durable, so it is not persisted per call.

extension Coordinator {
    /// The live session `id`, or the error that tells the client what became of it.
    func liveSession(_ id: SessionID) throws(LeaseholdError) -> Session {
        if let session = self.sessions[id] { return session }
        if let (reason, fence) = self.evicted[id] {
            let code: LeaseholdError.Code = reason == .expired ? .sessionExpired : .fenced
            throw LeaseholdError(
                code: code,
                message: "session \(id) was evicted (\(reason.rawValue)); its tokens are fenced at fence revision \(fence)",
                details: .init(fenceRevision: fence)
            )
        }
        if id.rawValue >= 1 && id.rawValue <= self.counters.lastSession {
            throw LeaseholdError(code: .sessionExpired, message: "session \(id) has ended (closed or expired); open a new one")
        }
        throw .notFound("session \(id) does not exist")
    }

    /// The identity of a live session, read in place (no copy of the session).
    func identity(of id: SessionID) throws(LeaseholdError) -> String {
        if let identity = self.sessions.withValue(forKey: id, { $0.identity }) { return identity }
        _ = try self.liveSession(id)
        preconditionFailure("unreachable: liveSession throws for a missing session")
    }

    mutating func openSession(caller: Caller, name: String, ttl: Duration?, slots: Int?, secret: SessionSecret) throws(LeaseholdError) -> Response {
        let configuration = self.configuration
        guard name.utf8.count <= configuration.maxNameLength else {
            throw .invalidArgument("session name is \(name.utf8.count) bytes; at most \(configuration.maxNameLength) are allowed")
        }
        let slotCount = slots ?? configuration.defaultSlots
        guard slotCount >= 1, slotCount <= configuration.maximumSlots else {
            throw .invalidArgument("slot count \(slotCount) must be between 1 and \(configuration.maximumSlots)")
        }
        var granted = ttl ?? configuration.defaultTTL
        granted = Swift.min(Swift.max(granted, configuration.minimumTTL), configuration.maximumTTL)
        if let limit = configuration.quotas.sessionsPerIdentity, self.usage[caller.identity, default: IdentityUsage()].sessions >= limit {
            throw .resourceExhausted(limit: "sessionsPerIdentity", message: "'\(caller.identity)' already has \(limit) sessions, its quota")
        }

        let id = SessionID(rawValue: self.nextID(\.lastSession))
        let session = Session(
            id: id,
            identity: caller.identity,
            name: name,
            secretDigest: SessionSecretDigest(of: secret),
            ttl: granted,
            slotCount: slotCount,
            slots: [],
            lastPush: 0,
            deadline: self.now + granted,
            warned: false,
            outbox: Deque()
        )
        self.sessions[id] = session
        self.dirty.sessions.insert(id)
        self.usage[caller.identity, default: IdentityUsage()].sessions += 1
        self.armSessionTimer(session)
        self.emit(.sessionOpened(id, identity: caller.identity))
        return .sessionOpened(SessionGrant(session: id, secret: secret, ttl: granted, slots: slotCount))
    }

    mutating func keepAlive(_ id: SessionID) -> Response {
        self.renew(id)
        return .keptAlive(ttl: self.sessions.withValue(forKey: id) { $0.ttl }!)
    }

    mutating func resumeSession(_ id: SessionID, secret: SessionSecret, caller: Caller) throws(LeaseholdError) -> Response {
        let session = try self.liveSession(id)
        guard session.secretDigest.matches(secret) else {
            throw .permissionDenied("wrong secret for session \(id)")
        }
        guard session.identity == caller.identity else {
            throw .permissionDenied("session \(id) belongs to '\(session.identity)', not '\(caller.identity)'")
        }
        self.renew(id)
        return .sessionResumed(SessionResumed(session: id, ttl: session.ttl, slots: session.slotCount, replay: Array(session.outbox)))
    }

    mutating func acknowledgePushes(_ id: SessionID, upTo number: UInt64) throws(LeaseholdError) -> Response {
        let last = self.sessions[id]!.lastPush
        guard number <= last else {
            throw .invalidArgument("cannot acknowledge push \(number): the last push of session \(id) is \(last)")
        }
        self.sessions.modifyValue(forKey: id) { session in
            while let first = session.outbox.first, first.number <= number { session.outbox.removeFirst() }
        }
        return .pushesAcknowledged(upTo: number)
    }

    /// Ends a session voluntarily: unpins and returns everything, no fence.
    mutating func closeSession(_ id: SessionID) -> Response {
        _ = self.cancelWaits(of: id)
        var unpinned: [PinID] = []
        for pin in self.pinIDs(of: id) {
            self.removePin(pin, reason: .sessionClosed)
            unpinned.append(pin)
        }
        var returned: [LayoutID] = []
        for layout in self.layoutIDs(of: id) {
            self.removeLayout(layout)
            returned.append(layout)
        }
        self.removeSession(id)
        self.emit(.sessionClosed(id))
        return .sessionClosed(SessionClosed(unpinned: unpinned, returnedLayouts: returned))
    }

    // MARK: Lifecycle helpers

    mutating func renew(_ id: SessionID) {
        let now = self.now
        let next = self.sessions.modifyValue(forKey: id) { session in
            session.deadline = now + session.ttl
            session.warned = false
            return session.nextCheck
        }!
        self.timers.schedule(.session(id), at: next)
    }

    /// Schedules the session's next check: the warning at 2/3 of the TTL, then expiry.
    mutating func armSessionTimer(_ session: Session) {
        self.timers.schedule(.session(session.id), at: session.nextCheck)
    }

    mutating func sessionTimerFired(_ id: SessionID) {
        guard let session = self.sessions[id] else { return }
        if self.expireIfOverdue(id) { return }
        if !session.warned && self.now >= session.deadline - session.ttl / 3 {
            self.sessions.modifyValue(forKey: id) { $0.warned = true }
            self.push(.sessionExpiring(remaining: session.deadline - self.now), to: id)
        }
        self.armSessionTimer(self.sessions[id]!)
    }

    /// Expires a session whose deadline has passed. Its timer does that, but ticks fire a
    /// storm of timers in slices (`maxTimersPerStep`): a request in a session still
    /// waiting for its slice expires it first, so the session sees its TTL exactly.
    /// - Returns: whether it expired.
    @discardableResult
    mutating func expireIfOverdue(_ id: SessionID) -> Bool {
        guard let session = self.sessions[id], self.now >= session.deadline else { return false }
        self.step.effects.observations.expiryLateness.append(self.now - session.deadline)
        self.evict(id, reason: .expired)
        return true
    }

    /// Numbers a push, keeps it until acknowledged, and hands it to the edge, which sends
    /// it once the step is durable (``Effects``).
    mutating func push(_ body: PushBody, to id: SessionID) {
        guard self.sessions[id] != nil else { return }
        let backlog = self.configuration.maxPushBacklog
        let push = self.sessions.modifyValue(forKey: id) { session -> Push in
            session.lastPush += 1
            let push = Push(number: session.lastPush, body: body)
            session.outbox.append(push)
            if session.outbox.count > backlog { session.outbox.removeFirst() }
            return push
        }!
        self.dirty.sessions.insert(id)
        self.step.effects.pushes.append(SessionPush(session: id, push: push))
    }

    /// Removes the session record and its slots; pins and layouts must be gone already.
    mutating func removeSession(_ id: SessionID) {
        guard let session = self.sessions.removeValue(forKey: id) else { return }
        self.dirty.sessions.insert(id)
        for (index, slot) in session.slots.enumerated() where slot.stored != nil {
            self.dirty.slots.insert(SlotKey(session: id, slot: UInt32(index)))
        }
        self.usage[session.identity, default: IdentityUsage()].sessions -= 1
        self.timers.cancel(.session(id))
        self.step.effects.endedSessions.append(id)
    }

    func pinIDs(of session: SessionID) -> [PinID] {
        self.sessionPins.seconds(of: session)
    }

    func layoutIDs(of session: SessionID) -> [LayoutID] {
        self.sessionLayouts.seconds(of: session)
    }
}
