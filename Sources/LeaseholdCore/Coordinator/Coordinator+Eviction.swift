// MARK: - Eviction, the fence feed and storage targets
//
// A session is evicted when it expires, when an admin evicts it, or when one of its
// recalls passes its deadline. Eviction drops its pins and revokes its layouts, appends
// a fence to the feed (pushed to every storage target, and `fenced` to the session),
// and hands every block its grants referenced to that fence: those blocks stay busy (or,
// if still mapped, become busy when cut) until every registered target acknowledged the
// fence and `releaseDelay` has passed (with no target registered, the delay alone).

extension Coordinator {
    /// Evicts a live session.
    /// - Returns: the fence appended, or `nil` if the session was not live.
    @discardableResult
    mutating func evict(_ id: SessionID, reason: EvictionReason) -> Fence? {
        guard let session = self.sessions[id] else { return nil }
        for key in self.breaks.keys.filter({ $0.session == id }) {
            let tag = self.breaks[key]!.tag
            self.endBreak(key)
            self.abandon(key, tag: tag)
        }
        for key in self.pinWaits.keys.filter({ $0.session == id }) {
            let tag = self.pinWaits[key]!.tag
            self.endPinWait(key)
            self.abandon(key, tag: tag)
        }

        let pinIDs = self.pinIDs(of: id)
        let layoutIDs = self.layoutIDs(of: id)
        var blocks: [BlockRange] = []
        for pinID in pinIDs {
            blocks.append(contentsOf: self.pins[pinID]!.extents.map(\.physicalRange))
        }
        for layoutID in layoutIDs {
            let layout = self.layouts[layoutID]!
            guard let map = self.inodes[layout.inode]?.map else { continue }
            for range in layout.ranges {
                map.forEachExtent(in: range) { blocks.append($0.physicalRange) }
            }
        }
        let revision = FenceRevision(rawValue: self.nextID(\.lastFence))
        let fence = Fence(
            revision: revision,
            session: id,
            identity: session.identity,
            maxToken: FencingToken(rawValue: self.counters.lastToken),
            reason: reason,
            blocks: blocks.coalesced()
        )
        self.fences[revision] = fence
        self.dirty.fences.insert(revision)
        for range in fence.blocks {
            self.fenceCoverage.update(range) { _, holders in (holders ?? HolderSet()).inserting(.fence(revision)) }
            self.addHolder(.fence(revision), to: range)
        }
        for pinID in pinIDs { self.removePin(pinID, reason: .evicted) }
        for layoutID in layoutIDs { self.revokeLayout(layoutID) }

        self.push(.fenced(FenceNotice(revision: revision, maxToken: fence.maxToken, reason: reason)), to: id)
        self.removeSession(id)
        self.evicted[id] = (reason, revision)
        self.evictedOrder.append(id)
        if self.evictedOrder.count > self.configuration.evictionMemory {
            self.evicted[self.evictedOrder.removeFirst()] = nil
        }
        self.step.effects.fences.append(fence)
        self.emit(.sessionEvicted(id, reason: reason, fence: revision))
        self.emit(.fenceAppended(revision, session: id))
        self.resolveFences()
        return fence
    }

    mutating func adminEvict(_ id: SessionID) throws(LeaseholdError) -> Response {
        _ = try self.liveSession(id)
        return .sessionEvicted(self.evict(id, reason: .admin)!)
    }

    /// The highest revision every registered target acknowledged; with no target,
    /// every fence counts as acknowledged.
    var acknowledgedByAll: FenceRevision {
        self.targets.map(\.value.acknowledged).min() ?? FenceRevision(rawValue: self.counters.lastFence)
    }

    /// Starts the release delay of every fence that all targets have now acknowledged.
    /// The watermark only grows (a new target starts at the latest revision), so fences
    /// are resolved in revision order and each is visited once.
    mutating func resolveFences() {
        let watermark = self.acknowledgedByAll
        guard watermark > self.fencesResolvedThrough else { return }
        let first = FenceRevision(rawValue: self.fencesResolvedThrough.rawValue + 1)
        var resolved: [FenceRevision] = []
        for (revision, _) in self.fences.elements(from: first) {
            guard revision <= watermark else { break }
            resolved.append(revision)
        }
        for revision in resolved where self.fenceResolvedAt[revision] == nil {
            self.fenceResolvedAt[revision] = self.now
            self.timers.schedule(.fence(revision), at: self.now + self.configuration.releaseDelay)
            self.emit(.fenceResolved(revision))
        }
        self.fencesResolvedThrough = watermark
    }

    /// A resolved fence's release delay ended: its blocks are no longer held by it, and
    /// it leaves the feed.
    mutating func releaseFence(_ revision: FenceRevision) {
        guard let fence = self.fences.removeValue(forKey: revision) else { return }
        self.dirty.fences.insert(revision)
        self.fenceResolvedAt[revision] = nil
        for range in fence.blocks {
            self.fenceCoverage.update(range) { _, holders in
                guard let remaining = holders?.removing(.fence(revision)), !remaining.isEmpty else { return nil }
                return remaining
            }
            self.removeHolder(.fence(revision), from: range, delay: .zero)
        }
    }

    // MARK: Storage targets

    mutating func registerTarget(_ name: String) -> Response {
        if let existing = self.targets[name] { return .targetRegistered(existing) }
        // A new target starts at the current revision: it serves no grant of a session
        // evicted before it existed.
        let target = StorageTarget(name: name, acknowledged: FenceRevision(rawValue: self.counters.lastFence))
        self.targets[name] = target
        self.dirty.targets.insert(name)
        self.emit(.targetRegistered(name))
        return .targetRegistered(target)
    }

    mutating func acknowledgeFence(_ revision: FenceRevision, target name: String) throws(LeaseholdError) -> Response {
        guard var target = self.targets[name] else {
            throw .notFound("storage target '\(name)' is not registered; register it first")
        }
        guard revision.rawValue <= self.counters.lastFence else {
            throw .invalidArgument("fence revision \(revision) has not been issued (last is \(self.counters.lastFence))")
        }
        if revision > target.acknowledged {
            target.acknowledged = revision
            self.targets[name] = target
            self.dirty.targets.insert(name)
            self.emit(.fenceAcknowledged(revision, target: name))
            self.resolveFences()
        }
        return .fenceAcknowledged(target)
    }

    mutating func deregisterTarget(_ name: String) throws(LeaseholdError) -> Response {
        guard self.targets.removeValue(forKey: name) != nil else {
            throw .notFound("storage target '\(name)' is not registered")
        }
        self.dirty.targets.insert(name)
        self.emit(.targetDeregistered(name))
        self.resolveFences()
        return .targetDeregistered(name: name)
    }
}
