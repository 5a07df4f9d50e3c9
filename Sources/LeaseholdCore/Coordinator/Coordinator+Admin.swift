// MARK: - Admin queries
//
// Read-only views for `leaseholdctl`. Durations are relative to the step's instant;
// listings are paged by id.

extension Coordinator {
    /// The figures of `leaseholdctl status`, read without a step (no timer runs): for
    /// metrics sampled at scrape time.
    public var volumeStatus: VolumeStatus { self.status() }

    func status() -> VolumeStatus {
        VolumeStatus(
            epoch: self.epoch,
            blockSize: self.geometry.blockSize,
            blockCount: self.geometry.blockCount,
            freeBlocks: self.free.blockCount,
            mappedBlocks: self.inodes.reduce(0) { $0 + ($1.value.isQuarantine ? 0 : $1.value.map.mappedBlockCount) },
            busyBlocks: self.busy.blockCount - self.quarantinedBlocks,
            quarantinedBlocks: self.quarantinedBlocks,
            largestFreeExtent: self.free.largestExtent?.count ?? 0,
            freeExtents: self.free.extentCount,
            inodes: self.inodes.count,
            quarantineInodes: self.inodes.reduce(0) { $0 + ($1.value.isQuarantine ? 1 : 0) },
            sessions: self.sessions.count,
            pins: self.pins.count,
            layouts: self.layouts.count,
            outstandingRecalls: self.recalls.count,
            pendingBreaks: self.breaks.count,
            targets: self.targets.count,
            unresolvedFences: self.fences.count - self.fenceResolvedAt.count,
            fenceRevision: FenceRevision(rawValue: self.counters.lastFence),
            eventRevision: EventRevision(rawValue: self.counters.lastEvent),
            pinSetting: self.pinSetting
        )
    }

    /// Busy extents: maximal runs with the same holders and state, from `page.after`
    /// (a block number) on.
    func busyExtents(page: Page) -> [BusyExtentInfo] {
        var result: [BusyExtentInfo] = []
        let from = BlockRange(start: Swift.min(page.after, self.geometry.blockCount), end: self.geometry.blockCount)
        var pending: BusyExtentInfo?
        func flush() {
            if let extent = pending { result.append(extent) }
            pending = nil
        }
        self.busy.forEachSegment(overlapping: from) { segment in
            let info = self.busyExtentInfo(range: segment.range, state: segment.payload)
            // Runs that differ only in when they became busy show as one extent.
            if var last = pending, last.range.end == segment.range.start, last.quarantine == info.quarantine,
                last.pins == info.pins, last.fences == info.fences, last.releaseIn == info.releaseIn
            {
                last.range.end = segment.range.end
                last.age = Swift.max(last.age, info.age)
                pending = last
            } else {
                flush()
                if result.count < page.limit { pending = info }
            }
        }
        flush()
        return Array(result.prefix(page.limit))
    }

    func busyExtentInfo(range: BlockRange, state: BusyState) -> BusyExtentInfo {
        let holders = state.holders
        let pins = holders.pins.compactMap { id -> BusyExtentInfo.PinHolder? in
            guard let pin = self.pins[id] else { return nil }
            return BusyExtentInfo.PinHolder(pin: id, session: pin.session, identity: self.sessions[pin.session]?.identity ?? "", kind: pin.kind)
        }
        let fences = holders.fences.compactMap { revision -> BusyExtentInfo.FenceHolder? in
            guard let fence = self.fences[revision] else { return nil }
            let waiting = self.targets.filter { $0.value.acknowledged < revision }.map(\.key)
            let releaseIn = self.fenceResolvedAt[revision].map { ($0 + self.configuration.releaseDelay) - self.now }
            return BusyExtentInfo.FenceHolder(revision: revision, session: fence.session, identity: fence.identity, waitingForTargets: waiting, releaseIn: releaseIn)
        }
        var kept = false
        if let quarantine = state.quarantine, case .quarantine(let source)? = self.inodes[quarantine]?.kind { kept = source.keep }
        return BusyExtentInfo(
            range: range,
            quarantine: state.quarantine,
            pins: pins,
            fences: fences,
            age: self.now - state.since,
            releaseIn: kept ? nil : state.releaseAt.map { $0 - self.now }
        )
    }

    func pinInfo(_ pin: Pin) -> PinInfo {
        var expiresIn: Duration?
        if let at = self.timers.instant(of: .pin(pin.id)) { expiresIn = at - self.now }
        return PinInfo(
            pin: pin.id,
            session: pin.session,
            identity: self.sessions[pin.session]?.identity ?? "",
            inode: pin.inode,
            ranges: pin.ranges.array,
            kind: pin.kind,
            token: pin.token,
            blocks: pin.blockCount,
            busyBlocks: pin.busyBlocks,
            expiresIn: expiresIn,
            recall: self.pinRecalls[pin.id],
            extents: pin.extents.array
        )
    }

    func pinInfos(page: Page) -> [PinInfo] {
        self.pins.elements(from: PinID(rawValue: page.after &+ 1)).prefix(page.limit).map { self.pinInfo($0.value) }
    }

    func layoutInfo(_ layout: Layout) -> LayoutInfo {
        var state = LayoutInfo.State.granted
        if let recall = self.recallIDs(of: layout.id).compactMap({ self.recalls[$0] }).min(by: { $0.deadline < $1.deadline }) {
            state = .recalling(deadlineIn: recall.deadline - self.now, prolonged: recall.prolonged)
        }
        return LayoutInfo(
            stateID: layout.stateID,
            session: layout.session,
            identity: self.sessions[layout.session]?.identity ?? "",
            inode: layout.inode,
            iomode: layout.iomode,
            ranges: layout.ranges,
            token: layout.token,
            state: state
        )
    }

    func layoutInfos(page: Page) -> [LayoutInfo] {
        self.layouts.elements(from: LayoutID(rawValue: page.after &+ 1)).prefix(page.limit).map { self.layoutInfo($0.value) }
    }

    func sessionInfos(page: Page) -> [SessionInfo] {
        self.sessions.elements(from: SessionID(rawValue: page.after &+ 1)).prefix(page.limit).map { _, session in
            SessionInfo(
                session: session.id,
                identity: session.identity,
                name: session.name,
                ttl: session.ttl,
                expiresIn: session.deadline - self.now,
                pins: self.pinIDs(of: session.id).count,
                layouts: self.layoutIDs(of: session.id).count,
                unacknowledgedPushes: session.outbox.count,
                lastPush: session.lastPush
            )
        }
    }

    func inodeInfo(_ inode: Inode) -> InodeInfo {
        InodeInfo(
            inode: inode.id,
            generation: inode.generation,
            size: inode.size,
            kind: inode.kind,
            mappedBlocks: inode.map.mappedBlockCount,
            extents: inode.map.extentCount,
            pendingBreaks: self.inodeBreaks[inode.id]?.count ?? 0
        )
    }

    func inodeInfos(page: Page) -> [InodeInfo] {
        self.inodes.elements(from: InodeID(rawValue: page.after &+ 1)).prefix(page.limit).map { self.inodeInfo($0.value) }
    }

    func inodeDetail(_ id: InodeID) throws(LeaseholdError) -> InodeDetail {
        guard let inode = self.inodes[id] else { throw .notFound("inode \(id) does not exist") }
        let pins = self.pins.filter { $0.value.inode == id }.map { self.pinInfo($0.value) }
        return InodeDetail(
            info: self.inodeInfo(inode),
            extents: inode.map.extents,
            layouts: self.layoutIDs(on: id).compactMap { self.layouts[$0].map(self.layoutInfo) },
            pins: pins
        )
    }

    func targetInfos() -> [TargetInfo] {
        self.targets.map { name, target in
            TargetInfo(name: name, acknowledged: target.acknowledged, lag: self.counters.lastFence - target.acknowledged.rawValue)
        }
    }
}
