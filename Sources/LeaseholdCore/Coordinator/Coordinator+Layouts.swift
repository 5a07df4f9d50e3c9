// MARK: - Layouts and recalls
//
// One layout per (session, inode, iomode). Layouts of different sessions may overlap;
// only mapping changes recall them. layoutReturn and layoutCommit never wait.

extension Coordinator {
    func layoutIDs(on inode: InodeID) -> [LayoutID] {
        self.inodeLayouts.seconds(of: inode)
    }

    func recallIDs(of layout: LayoutID) -> [RecallID] {
        self.layoutRecalls.seconds(of: layout)
    }

    mutating func layoutGet(_ id: InodeID, ranges: [ByteRange], iomode: IOMode, session: SessionID) throws(LeaseholdError) -> Response {
        let inode = try self.regularInode(id)
        let blocks = try self.outwardRanges(ranges)
        let owner = LayoutOwner(session: session, inode: id, iomode: iomode)
        let ownRecalled = self.layoutByOwner[owner].map { layoutID in
            self.recallIDs(of: layoutID).contains { recallID in
                guard case .layout(_, let range) = self.recalls[recallID]?.target else { return false }
                return blocks.anyOverlaps(range)
            }
        } ?? false
        if ownRecalled {
            throw LeaseholdError(
                code: .recallConflict,
                message: "layout of session \(session) on inode \(id) is being recalled over this range; return it first"
            )
        }
        if !self.breaks(on: id, overlapping: blocks).isEmpty {
            throw LeaseholdError(code: .tryLater, message: "inode \(id) has a mapping change in progress over this range; retry later")
        }

        let token = self.nextToken()
        var layout: Layout
        if let existing = self.layoutByOwner[owner], let current = self.layouts[existing] {
            layout = current
            layout.seqid &+= 1
        } else {
            let layoutID = LayoutID(rawValue: self.nextID(\.lastLayout))
            layout = Layout(id: layoutID, session: session, inode: id, iomode: iomode, seqid: 1, token: token, grants: [])
            self.layoutByOwner[owner] = layoutID
            self.sessionLayouts[Pair(session, layoutID)] = true
            self.inodeLayouts[Pair(id, layoutID)] = true
        }
        layout.token = token
        layout.grant(blocks, seqid: layout.seqid)
        self.layouts[layout.id] = layout
        self.dirty.layouts.insert(layout.id)
        self.emit(.layoutGranted(layout.stateID, session: session, inode: id))
        return .layout(
            LayoutGrantReply(
                stateID: layout.stateID,
                iomode: iomode,
                token: token,
                ranges: layout.ranges,
                extents: blocks.flatMap { Self.layoutExtents(of: inode.map, in: $0) }
            )
        )
    }

    /// The extent list of `range`: mapped runs (written or unwritten) and holes, in order.
    static func layoutExtents(of map: ExtentMap, in range: BlockRange) -> [LayoutExtent] {
        var result: [LayoutExtent] = []
        var cursor = range.start
        map.forEachExtent(in: range) { extent in
            if extent.fileBlock > cursor {
                result.append(LayoutExtent(fileRange: BlockRange(start: cursor, end: extent.fileBlock), physicalBlock: nil, state: .hole))
            }
            result.append(
                LayoutExtent(fileRange: extent.fileRange, physicalBlock: extent.physicalBlock, state: extent.written ? .written : .unwritten)
            )
            cursor = extent.fileRange.end
        }
        if cursor < range.end {
            result.append(LayoutExtent(fileRange: BlockRange(start: cursor, end: range.end), physicalBlock: nil, state: .hole))
        }
        return result
    }

    /// The caller's layout named by `stateID`, checked.
    func ownedLayout(_ stateID: LayoutStateID, session: SessionID) throws(LeaseholdError) -> Layout {
        guard let layout = self.layouts[stateID.id] else {
            throw .notFound("layout \(stateID.id) does not exist (returned or revoked)")
        }
        guard layout.session == session else {
            throw .permissionDenied("layout \(stateID.id) belongs to session \(layout.session)")
        }
        guard stateID.seqid >= 1, stateID.seqid <= layout.seqid else {
            throw .invalidArgument("stateid \(stateID) is not a seqid of layout \(stateID.id) (current \(layout.seqid))")
        }
        return layout
    }

    mutating func layoutReturn(_ stateID: LayoutStateID, ranges: [ByteRange]?, session: SessionID) throws(LeaseholdError) -> Response {
        let before = try self.ownedLayout(stateID, session: session)
        let blocks = try ranges.map { (ranges) throws(LeaseholdError) in try self.outwardRanges(ranges) }
        let removed = self.returnLayoutRanges(stateID.id, ranges: blocks, upTo: stateID.seqid)
        let remaining = self.layouts[stateID.id]
        // A return that removes something bumps the seqid, whether something is left or
        // the layout is gone (then the answer names the seqid it would have had).
        let newStateID = remaining?.stateID ?? LayoutStateID(id: stateID.id, seqid: before.seqid &+ 1)
        self.emit(.layoutReturned(newStateID, remainingBlocks: remaining?.ranges.totalCount ?? 0))
        return .layoutReturned(LayoutReturned(stateID: newStateID, remaining: remaining?.ranges ?? [], returnedBlocks: removed))
    }

    /// Removes ranges (all when `nil`) granted at or before `seqid`; answers the recalls
    /// the return satisfies; drops the layout when nothing is left.
    /// - Returns: blocks removed.
    @discardableResult
    mutating func returnLayoutRanges(_ id: LayoutID, ranges: [BlockRange]?, upTo seqid: UInt32) -> UInt64 {
        guard var layout = self.layouts[id] else { return 0 }
        let removed = layout.returnRanges(ranges, upTo: seqid)
        guard !layout.grants.isEmpty else {
            self.removeLayout(id)
            return removed
        }
        if removed > 0 {
            layout.seqid &+= 1
            self.layouts[id] = layout
            self.dirty.layouts.insert(id)
        }
        for recallID in self.recallIDs(of: id) {
            if case .layout(_, let range) = self.recalls[recallID]?.target, !layout.overlaps(range) {
                self.resolveRecall(recallID, answered: true)
            }
        }
        return removed
    }

    /// Removes a layout (returned); its recalls count as answered.
    mutating func removeLayout(_ id: LayoutID) {
        guard let layout = self.layouts.removeValue(forKey: id) else { return }
        self.dirty.layouts.insert(id)
        self.layoutByOwner[LayoutOwner(session: layout.session, inode: layout.inode, iomode: layout.iomode)] = nil
        self.sessionLayouts.removeValue(forKey: Pair(layout.session, id))
        self.inodeLayouts.removeValue(forKey: Pair(layout.inode, id))
        for recallID in self.recallIDs(of: id) { self.resolveRecall(recallID, answered: true) }
        self.poke(layout.inode)
    }

    /// Revokes a layout whole (its session is being evicted).
    mutating func revokeLayout(_ id: LayoutID) {
        guard let layout = self.layouts[id] else { return }
        for recallID in self.recallIDs(of: id) { self.resolveRecall(recallID, answered: false) }
        self.removeLayout(id)
        self.emit(.layoutRevoked(id, session: layout.session))
    }

    mutating func layoutCommit(_ stateID: LayoutStateID, newSize: UInt64?, written: [ByteRange], session: SessionID) throws(LeaseholdError) -> Response {
        let layout = try self.ownedLayout(stateID, session: session)
        guard layout.iomode == .readWrite else {
            throw .permissionDenied("layoutCommit needs a readWrite layout; \(stateID.id) is read-only")
        }
        try self.checkRegularInode(layout.inode)
        let blocks = written.isEmpty ? [] : try self.outwardRanges(written)
        for range in blocks where !Self.covers(layout.ranges, range) {
            throw .invalidArgument("written range \(range) is not inside layout \(stateID.id)'s granted ranges")
        }
        let (generation, size) = self.modifyInode(layout.inode) { inode in
            var changed: UInt64 = 0
            for range in blocks { changed += inode.map.markWritten(range) }
            if let newSize, newSize > inode.size {
                inode.size = newSize
                changed += 1
            }
            if changed > 0 { inode.generation += 1 }
            return (inode.generation, inode.size)
        }
        return .layoutCommitted(generation: generation, size: size)
    }

    /// Whether sorted, disjoint `ranges` cover every block of `range`.
    static func covers(_ ranges: [BlockRange], _ range: BlockRange) -> Bool {
        var cursor = range.start
        for candidate in ranges where candidate.end > cursor {
            guard candidate.start <= cursor else { return false }
            cursor = candidate.end
            if cursor >= range.end { return true }
        }
        return cursor >= range.end
    }

    // MARK: Recalls

    /// Recalls `range` of another session's layout (or joins an outstanding recall that
    /// covers it). The push goes out at once.
    mutating func recallLayout(_ layout: Layout, range: BlockRange) -> RecallID {
        let span = BlockRange(start: layout.grants.first!.range.start, end: layout.grants.last!.range.end)
        let wanted = range.intersection(span)!
        for recallID in self.recallIDs(of: layout.id) {
            if case .layout(_, let existing) = self.recalls[recallID]?.target, existing.contains(wanted) { return recallID }
        }
        let recall = self.newRecall(session: layout.session, inode: layout.inode, target: .layout(layout.id, range: wanted))
        self.layoutRecalls[Pair(layout.id, recall.id)] = true
        self.push(
            .layoutRecall(
                LayoutRecallNotice(recall: recall.id, stateID: layout.stateID, inode: layout.inode, range: wanted, deadlineIn: recall.deadline - self.now)
            ),
            to: layout.session
        )
        return recall.id
    }

    /// Recalls a long-term pin (or returns its outstanding recall).
    mutating func recallPin(_ pin: Pin) -> RecallID {
        if let existing = self.pinRecalls[pin.id] { return existing }
        let recall = self.newRecall(session: pin.session, inode: pin.inode, target: .pin(pin.id))
        self.pinRecalls[pin.id] = recall.id
        self.push(.pinRecall(PinRecallNotice(recall: recall.id, pin: pin.id, inode: pin.inode, deadlineIn: recall.deadline - self.now)), to: pin.session)
        return recall.id
    }

    mutating func newRecall(session: SessionID, inode: InodeID, target: RecallTarget) -> Recall {
        let id = RecallID(rawValue: self.nextID(\.lastRecall))
        let recall = Recall(
            id: id, session: session, inode: inode, target: target, prolonged: false,
            deadline: self.now + self.configuration.recallTimeout, sentAt: self.now
        )
        self.recalls[id] = recall
        self.dirty.recalls.insert(id)
        self.timers.schedule(.recall(id), at: recall.deadline)
        self.emit(.recallSent(id, session: session, target: target))
        self.step.effects.observations.recallsSent += 1
        return recall
    }

    /// A recall ends: answered (returned or unpinned) or not (revoked with its session).
    /// Breaks waiting for it learn which, and may go on.
    mutating func resolveRecall(_ id: RecallID, answered: Bool) {
        guard let recall = self.recalls.removeValue(forKey: id) else { return }
        self.dirty.recalls.insert(id)
        self.timers.cancel(.recall(id))
        switch recall.target {
        case .layout(let layout, _): self.layoutRecalls.removeValue(forKey: Pair(layout, id))
        case .pin(let pin): self.pinRecalls[pin] = nil
        }
        for key in self.breaks.keys where self.breaks[key]!.recalls.contains(id) {
            self.breaks[key]!.recalls.remove(id)
            if case .layout(let layout, _) = recall.target {
                if answered {
                    self.breaks[key]!.returnedLayouts.append(layout)
                } else {
                    self.breaks[key]!.revokedLayouts.append(layout)
                }
            }
            if !answered && !self.breaks[key]!.evictedSessions.contains(recall.session) {
                self.breaks[key]!.evictedSessions.append(recall.session)
            }
            self.poke(self.breaks[key]!.inode)
        }
        if answered {
            self.emit(.recallAnswered(id))
            self.step.effects.observations.recallsAnswered.append(self.now - recall.sentAt)
        } else {
            self.step.effects.observations.recallsRevoked += 1
        }
    }

    mutating func prolongRecall(_ id: RecallID, session: SessionID) throws(LeaseholdError) -> Response {
        guard let recall = self.recalls[id] else {
            throw .notFound("recall \(id) is not outstanding")
        }
        guard recall.session == session else {
            throw .permissionDenied("recall \(id) is addressed to session \(recall.session)")
        }
        guard !recall.prolonged else {
            throw .invalidArgument("recall \(id) was prolonged once already; return the grant before its deadline")
        }
        let deadline = recall.deadline + self.configuration.recallTimeout
        self.recalls.modifyValue(forKey: id) {
            $0.prolonged = true
            $0.deadline = deadline
        }
        self.dirty.recalls.insert(id)
        self.timers.schedule(.recall(id), at: deadline)
        self.emit(.recallProlonged(id))
        return .recallProlonged(id, remaining: deadline - self.now)
    }

    /// A recall passed its deadline: the grant is revoked and its session evicted.
    mutating func recallDeadlinePassed(_ id: RecallID) {
        guard let recall = self.recalls[id] else { return }
        self.evict(recall.session, reason: .missedRecall)
    }
}
