// MARK: - Pins
//
// A pin references the physical blocks mapped in its ranges when it is granted. Its
// extents are indexed by (inode, file block) in `pinIndex`; while the blocks stay mapped
// that is all the pin costs. If a mapping change cuts them, the busy runs they become
// name the pin among their holders until it ends. Unpin never waits.

extension Coordinator {
    mutating func pin(_ request: PinRequest, caller: Caller, session: SessionID, tag: SlotTag) -> Decision {
        let key = SlotKey(session: session, slot: tag.slot)
        do throws(LeaseholdError) {
            let blocks = try self.validatePin(request, caller: caller, session: session)
            let breaking = self.breaks(on: request.inode, overlapping: blocks)
            if !breaking.isEmpty {
                let inode = request.inode
                guard let wait = request.wait else {
                    throw .rangeBreaking("inode \(inode) has a mapping change in progress over the pinned range; retry")
                }
                if breaking.contains(where: { $0.waitingOnSessions.contains(session) }) {
                    throw .rangeBreaking(
                        "inode \(inode): the mapping change over this range waits for pins of this session; unpin them or retry (waiting would deadlock)"
                    )
                }
                self.pinWaits[key] = PinWait(key: key, tag: tag, request: request, caller: caller)
                self.inodePinWaits[inode, default: []].append(key)
                self.timers.schedule(.wait(key), at: self.now + Swift.min(wait, self.configuration.maxWait))
                return .pending
            }
            let firstHole = self.inodes.withValue(forKey: request.inode) { inode in
                blocks.lazy.compactMap { inode.map.firstHole(in: $0) }.first
            } ?? nil
            if let hole = firstHole {
                guard request.allocate else {
                    throw .notMapped(inode: request.inode, holeOffset: self.byteOffset(hole))
                }
                let span = BlockRange(start: blocks.first!.start, end: blocks.last!.end)
                return self.startAllocationForPin(request, span: span, session: session, tag: tag)
            }
            return .reply(.success(.pinned(self.grantPin(request, blocks: blocks, session: session, allocation: nil))))
        } catch {
            return .reply(.failure(error))
        }
    }

    /// Checks everything about a pin request that does not depend on breaks or holes.
    /// - Returns: the outward block ranges, coalesced.
    func validatePin(_ request: PinRequest, caller: Caller, session: SessionID) throws(LeaseholdError) -> [BlockRange] {
        try self.checkRegularInode(request.inode)
        switch (self.pinSetting, request.kind) {
        case (.deny, _):
            throw .permissionDenied("pins are disabled on this volume (pin setting 'deny')")
        case (.shortTermOnly, .longTerm):
            throw .permissionDenied("this volume allows only short-term pins (pin setting 'shortTermOnly')")
        default:
            break
        }
        if case .shortTerm(let ttl) = request.kind {
            guard ttl > .zero, ttl <= self.configuration.maxShortTermPin else {
                throw .invalidArgument("a short-term pin needs an expiry above 0 and at most \(self.configuration.maxShortTermPin); got \(ttl)")
            }
        }
        if let wait = request.wait, wait <= .zero {
            throw .invalidArgument("a pin wait must be above 0; got \(wait)")
        }
        let blocks = try self.outwardRanges(request.ranges)
        let quotas = self.configuration.quotas
        let used = self.usage[caller.identity, default: IdentityUsage()]
        if let limit = quotas.pinsPerIdentity, used.pins >= limit {
            throw .resourceExhausted(limit: "pinsPerIdentity", message: "'\(caller.identity)' holds \(used.pins) pins, its quota")
        }
        if let limit = quotas.pinsPerSession, let held = self.sessions.withValue(forKey: session, { $0.pinCount }), held >= limit {
            throw .resourceExhausted(limit: "pinsPerSession", message: "session \(session) holds \(held) pins, the quota of one session")
        }
        if let limit = quotas.pinnedBlocksPerIdentity {
            let wanted = request.allocate
                ? blocks.totalCount
                : self.inodes.withValue(forKey: request.inode) { inode in blocks.reduce(0) { $0 + inode.map.mappedCount(in: $1) } }!
            if used.pinnedBlocks + wanted > limit {
                throw .resourceExhausted(
                    limit: "pinnedBlocksPerIdentity",
                    message: "'\(caller.identity)' pins \(used.pinnedBlocks) blocks; \(wanted) more would pass its quota of \(limit)"
                )
            }
        }
        if let limit = quotas.busyBlocksPerIdentity, used.busyBlocks >= limit {
            throw .resourceExhausted(
                limit: "busyBlocksPerIdentity",
                message: "'\(caller.identity)' holds \(used.busyBlocks) busy blocks, its quota; unpin to free them"
            )
        }
        return blocks
    }

    /// Grants a pin over mapped ranges (no hole, no break).
    mutating func grantPin(_ request: PinRequest, blocks: [BlockRange], session: SessionID, allocation: Allocation?) -> PinGrant {
        var extents: TinyArray<PinnedExtent> = []
        self.inodes.withValue(forKey: request.inode) { inode in
            for range in blocks {
                inode.map.forEachExtent(in: range) {
                    extents.append(PinnedExtent(fileBlock: $0.fileBlock, physicalBlock: $0.physicalBlock, count: $0.count))
                }
            }
        }
        let id = PinID(rawValue: self.nextID(\.lastPin))
        let token = self.nextToken()
        let pin = Pin(
            id: id,
            session: session,
            inode: request.inode,
            ranges: TinyArray(request.ranges),
            kind: request.kind,
            token: token,
            extents: extents,
            busyBlocks: 0
        )
        self.pins[id] = pin
        self.dirty.pins.insert(id)
        self.sessionPins[Pair(session, id)] = true
        self.sessions.modifyValue(forKey: session) { $0.pinCount += 1 }
        self.indexPin(id, inode: request.inode, extents: extents)
        let identity = self.sessions.withValue(forKey: session) { $0.identity }!
        self.changeUsage(of: identity) {
            $0.pins += 1
            $0.pinnedBlocks += pin.blockCount
        }
        var expiresIn: Duration?
        if case .shortTerm(let ttl) = request.kind {
            self.timers.schedule(.pin(id), at: self.now + ttl)
            expiresIn = ttl
        }
        self.emit(.pinGranted(id, session: session, inode: request.inode, blocks: pin.blockCount))
        return PinGrant(pin: id, token: token, extents: extents, expiresIn: expiresIn, allocation: allocation)
    }

    mutating func unpin(_ id: PinID, session: SessionID) throws(LeaseholdError) -> Response {
        guard let pin = self.pins[id] else {
            throw .notFound("pin \(id) does not exist (already unpinned, expired or revoked)")
        }
        guard pin.session == session else {
            throw .permissionDenied("pin \(id) belongs to session \(pin.session)")
        }
        self.removePin(id, reason: .unpinned)
        return .unpinned(id)
    }

    mutating func pinExpired(_ id: PinID) {
        self.removePin(id, reason: .expired)
    }

    /// Ends a pin: drops its block references (busy blocks it alone held start their
    /// release delay), answers its recall, and wakes breaks waiting for it.
    mutating func removePin(_ id: PinID, reason: PinReleaseReason) {
        guard let pin = self.pins.removeValue(forKey: id) else { return }
        self.dirty.pins.insert(id)
        self.sessionPins.removeValue(forKey: Pair(pin.session, id))
        self.sessions.modifyValue(forKey: pin.session) { $0.pinCount -= 1 }
        self.timers.cancel(.pin(id))
        if let identity = self.sessions.withValue(forKey: pin.session, { $0.identity }) {
            self.changeUsage(of: identity) {
                $0.pins -= 1
                $0.pinnedBlocks -= pin.blockCount
                $0.busyBlocks -= pin.busyBlocks
            }
        }
        if let recall = self.pinRecalls[id] {
            self.resolveRecall(recall, answered: reason != .evicted)
        }
        self.unindexPin(id, inode: pin.inode, extents: pin.extents)
        if pin.busyBlocks > 0 {
            for extent in pin.extents {
                self.removeHolder(.pin(id), from: extent.physicalRange, delay: self.configuration.releaseDelay)
            }
        }
        self.emit(.pinReleased(id, reason: reason))
        self.poke(pin.inode)
    }

    mutating func indexPin<S: Sequence<PinnedExtent>>(_ id: PinID, inode: InodeID, extents: S) {
        for extent in extents {
            self.pinIndex[PinIndexKey(inode: inode, fileBlock: extent.fileBlock, pin: id)] =
                PinIndexEntry(physicalBlock: extent.physicalBlock, count: extent.count)
            self.longestPinExtent = Swift.max(self.longestPinExtent, extent.count)
        }
    }

    mutating func unindexPin<S: Sequence<PinnedExtent>>(_ id: PinID, inode: InodeID, extents: S) {
        for extent in extents {
            self.pinIndex.removeValue(forKey: PinIndexKey(inode: inode, fileBlock: extent.fileBlock, pin: id))
        }
    }

    /// Calls `body` with every pin extent of `inode` whose file blocks overlap `range`.
    func forEachPinExtent(inode: InodeID, overlapping range: BlockRange, _ body: (PinID, PinnedExtent) -> Void) {
        let from = range.start > self.longestPinExtent ? range.start - self.longestPinExtent : 0
        for (key, entry) in self.pinIndex.elements(from: PinIndexKey(inode: inode, fileBlock: from, pin: PinID(rawValue: 0))) {
            guard key.inode == inode, key.fileBlock < range.end else { break }
            let extent = PinnedExtent(fileBlock: key.fileBlock, physicalBlock: entry.physicalBlock, count: entry.count)
            if extent.fileRange.overlaps(range) { body(key.pin, extent) }
        }
    }

    /// Pins that conflict with a mapping change of `range` on `inode`: those referencing
    /// blocks still mapped there, where they were pinned.
    func conflictingPins(inode: InodeID, range: BlockRange) -> [PinID] {
        var result: Set<PinID> = []
        self.inodes.withValue(forKey: inode) { inode in
            self.forEachPinExtent(inode: inode.id, overlapping: range) { pin, extent in
                guard !result.contains(pin), let overlap = extent.fileRange.intersection(range) else { return }
                inode.map.forEachExtent(in: overlap) { mapped in
                    if mapped.physicalBlock == extent.physicalBlock + (mapped.fileBlock - extent.fileBlock) { result.insert(pin) }
                }
            }
        }
        return result.sorted()
    }

    // MARK: Waiting pins

    mutating func endPinWait(_ key: SlotKey) {
        guard let wait = self.pinWaits.removeValue(forKey: key) else { return }
        self.inodePinWaits[wait.request.inode]?.removeAll { $0 == key }
        if self.inodePinWaits[wait.request.inode]?.isEmpty == true { self.inodePinWaits[wait.request.inode] = nil }
        self.timers.cancel(.wait(key))
    }

    /// Lets waiting pins of `inode` go on, first come first served, once no break
    /// overlaps their ranges.
    mutating func retryPinWaits(on inode: InodeID) {
        for key in self.inodePinWaits[inode] ?? [] {
            guard let wait = self.pinWaits[key] else { continue }
            let blocks = (try? self.outwardRanges(wait.request.ranges)) ?? []
            guard self.breaks(on: inode, overlapping: blocks).isEmpty else { continue }
            self.endPinWait(key)
            var request = wait.request
            request.wait = nil
            let decision = self.pin(request, caller: wait.caller, session: key.session, tag: wait.tag)
            if case .reply(let reply) = decision {
                self.complete(key, tag: wait.tag, with: reply)
            }
        }
    }

    /// Fails at once the waiting pins that a `wait` break now waits for (the kernel's
    /// GUP A/B deadlock): their session's own pins hold the break up.
    mutating func failDeadlockedPinWaits(on inode: InodeID, sessions: Set<SessionID>, range: BlockRange) {
        for key in self.inodePinWaits[inode] ?? [] where sessions.contains(key.session) {
            guard let wait = self.pinWaits[key] else { continue }
            let blocks = (try? self.outwardRanges(wait.request.ranges)) ?? []
            guard blocks.anyOverlaps(range) else { continue }
            self.endPinWait(key)
            self.complete(key, tag: wait.tag, with: .failure(.rangeBreaking(
                "inode \(inode): the mapping change over this range waits for pins of this session; unpin them or retry (waiting would deadlock)"
            )))
        }
    }
}
