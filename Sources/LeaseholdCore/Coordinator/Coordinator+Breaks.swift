// MARK: - Breaks: truncate, punchHole, deleteInode, allocate
//
// See ``Break`` for the lifecycle. `advance(inode:)` is the one place that moves an
// inode's breaks forward; every event that could let a break go on (a recall answered
// or revoked, a pin gone, space freed, an earlier break ended) pokes the inode and the
// step's `settle` calls it.

extension Coordinator {
    mutating func submitBreak(
        _ operation: Break.Operation,
        inode id: InodeID,
        policy: TruncatePolicy,
        expectedGeneration: UInt64?,
        session: SessionID,
        tag: SlotTag
    ) -> Decision {
        let key = SlotKey(session: session, slot: tag.slot)
        do throws(LeaseholdError) {
            let inode = try self.regularInode(id)
            if let expected = expectedGeneration, expected != inode.generation {
                throw .staleGeneration(expected: expected, current: inode.generation, inode: id)
            }
            var deadline: Duration?
            if case .wait(let timeout) = policy {
                guard timeout > .zero else { throw .invalidArgument("a wait policy needs a timeout above 0; got \(timeout)") }
                deadline = timeout
            }
            let range: BlockRange
            var recallsLayouts = true
            switch operation {
            case .truncate(let size) where size >= inode.size:
                // Growing changes no mapping: it keeps its place in the inode's order but
                // recalls nothing and conflicts with no pin.
                range = BlockRange(start: self.geometry.blocksForSize(inode.size), end: .max)
                recallsLayouts = false
            case .truncate(let size):
                range = BlockRange(start: self.geometry.blockContaining(size), end: .max)
            case .punch(let bytes):
                range = try self.geometry.outward(bytes)
            case .delete:
                range = BlockRange(start: 0, end: .max)
            case .allocate(let bytes, let waitForBusy):
                range = try self.geometry.outward(bytes)
                if let waitForBusy {
                    guard waitForBusy > .zero else { throw .invalidArgument("waitForBusy must be above 0; got \(waitForBusy)") }
                    deadline = waitForBusy
                }
            case .allocateThenPin:
                preconditionFailure("pins with allocate go through startAllocationForPin")
            }
            var broken = Break(key: key, tag: tag, inode: id, operation: operation, policy: policy, range: range)
            broken.recallsLayouts = recallsLayouts
            return self.enqueue(broken, deadline: deadline)
        } catch {
            return .reply(.failure(error))
        }
    }

    /// The allocation that a `pin(allocate: true)` over holes starts; the pin is granted
    /// when it commits.
    mutating func startAllocationForPin(_ request: PinRequest, span: BlockRange, session: SessionID, tag: SlotTag) -> Decision {
        let key = SlotKey(session: session, slot: tag.slot)
        let broken = Break(key: key, tag: tag, inode: request.inode, operation: .allocateThenPin(request), policy: .busy, range: span)
        return self.enqueue(broken, deadline: nil)
    }

    /// Queues a break on its inode and runs it as far as it goes now.
    /// - Returns: the reply if it finished in this call, else `.pending`.
    mutating func enqueue(_ broken: Break, deadline: Duration?) -> Decision {
        let key = broken.key
        self.breaks[key] = broken
        self.inodeBreaks[broken.inode, default: []].append(key)
        if let deadline {
            self.timers.schedule(.wait(key), at: self.now + Swift.min(deadline, self.configuration.maxWait))
        }
        self.step.inline.insert(key)
        self.advance(inode: broken.inode)
        self.step.inline.remove(key)
        if let reply = self.step.inlineReplies.removeValue(forKey: key) {
            return .reply(reply)
        }
        return .pending
    }

    /// The breaks of `inode` whose range overlaps any of `ranges`.
    func breaks(on inode: InodeID, overlapping ranges: [BlockRange]) -> [Break] {
        guard let keys = self.inodeBreaks[inode] else { return [] }
        return keys.compactMap { self.breaks[$0] }.filter { ranges.anyOverlaps($0.range) }
    }

    /// Moves the breaks of `inode` forward in arrival order: a break starts once no
    /// earlier break overlaps it, and commits once nothing holds it up. Then lets waiting
    /// pins go on.
    mutating func advance(inode: InodeID) {
        var earlier: [BlockRange] = []
        for key in self.inodeBreaks[inode] ?? [] {
            guard let broken = self.breaks[key] else { continue }
            if earlier.anyOverlaps(broken.range) {
                earlier.append(broken.range)
                continue
            }
            if broken.phase == .queued { self.startBreak(key) }
            if self.breaks[key] != nil { self.tryCommit(key) }
            if let still = self.breaks[key] { earlier.append(still.range) }
        }
        self.retryPinWaits(on: inode)
    }

    /// Starts a break: the `fail` check, layout recalls, and the pin policy.
    mutating func startBreak(_ key: SlotKey) {
        guard var broken = self.breaks[key] else { return }
        guard self.inodes[broken.inode] != nil else {
            self.endBreak(key)
            self.complete(key, tag: broken.tag, with: .failure(.notFound("inode \(broken.inode) was deleted")))
            return
        }
        let cuts = broken.cutsBlocks
        if case .fail = broken.policy, cuts {
            let conflicting = self.conflictingPins(inode: broken.inode, range: broken.range)
            if !conflicting.isEmpty {
                self.endBreak(key)
                self.complete(key, tag: broken.tag, with: .failure(.busy(pins: conflicting)))
                return
            }
        }
        broken.phase = .started
        if broken.recallsLayouts {
            for layoutID in self.layoutIDs(on: broken.inode) {
                guard let layout = self.layouts[layoutID], layout.session != key.session, layout.overlaps(broken.range) else { continue }
                broken.recalls.insert(self.recallLayout(layout, range: broken.range))
            }
        }
        if cuts {
            let conflicting = self.conflictingPins(inode: broken.inode, range: broken.range)
            for pinID in conflicting {
                guard let pin = self.pins[pinID], pin.kind.isLongTerm else { continue }
                let recall = self.recallPin(pin)
                broken.recalledPins.append(pinID)
                if case .wait = broken.policy { broken.recalls.insert(recall) }
            }
            if case .wait = broken.policy {
                broken.waitingOnSessions = Set(conflicting.compactMap { self.pins[$0]?.session })
            }
        }
        self.breaks[key] = broken
        if !broken.waitingOnSessions.isEmpty {
            self.failDeadlockedPinWaits(on: broken.inode, sessions: broken.waitingOnSessions, range: broken.range)
        }
    }

    /// Commits a started break if every recall it waits for is answered or revoked and,
    /// for `wait`, no conflicting pin is left.
    mutating func tryCommit(_ key: SlotKey) {
        guard let broken = self.breaks[key], broken.phase != .queued, broken.recalls.isEmpty else { return }
        if case .wait = broken.policy, broken.cutsBlocks {
            let conflicting = self.conflictingPins(inode: broken.inode, range: broken.range)
            self.breaks[key]?.waitingOnSessions = Set(conflicting.compactMap { self.pins[$0]?.session })
            guard conflicting.isEmpty else { return }
        }
        switch broken.operation {
        case .truncate, .punch, .delete:
            self.commitMappingChange(key)
        case .allocate, .allocateThenPin:
            self.commitAllocation(key)
        }
    }

    /// Removes a break from every queue; the inode's next breaks may go on.
    mutating func endBreak(_ key: SlotKey) {
        guard let broken = self.breaks.removeValue(forKey: key) else { return }
        self.inodeBreaks[broken.inode]?.removeAll { $0 == key }
        if self.inodeBreaks[broken.inode]?.isEmpty == true { self.inodeBreaks[broken.inode] = nil }
        self.spaceWaiters.removeAll { $0 == key }
        self.timers.cancel(.wait(key))
        self.poke(broken.inode)
    }

    /// The breaker's own layouts over the range are returned implicitly at commit.
    mutating func returnOwnLayouts(of broken: Break) -> [LayoutID] {
        var returned: [LayoutID] = []
        for layoutID in self.layoutIDs(on: broken.inode) {
            guard let layout = self.layouts[layoutID], layout.session == broken.key.session, layout.overlaps(broken.range) else {
                continue
            }
            self.returnLayoutRanges(layoutID, ranges: [broken.range], upTo: layout.seqid)
            returned.append(layoutID)
        }
        return returned
    }

    // MARK: Commit: truncate, punch, delete

    mutating func commitMappingChange(_ key: SlotKey) {
        let broken = self.breaks[key]!
        let id = broken.inode
        let before = self.inodes[id]!
        let cut: BlockRange
        var newSize = before.size
        switch broken.operation {
        case .truncate(let size):
            let first = self.geometry.blocksForSize(size)
            cut = BlockRange(start: first, end: Swift.max(first, before.map.endOfMapping))
            newSize = size
        case .punch(let bytes):
            cut = (try? self.geometry.inward(bytes)) ?? BlockRange(start: 0, end: 0)
        case .delete:
            cut = BlockRange(start: 0, end: before.map.endOfMapping)
            newSize = 0
        case .allocate, .allocateThenPin:
            preconditionFailure("allocations commit in commitAllocation")
        }
        let returned = self.returnOwnLayouts(of: broken)
        let removed = self.modifyInode(id) { inode in
            let removed = inode.map.remove(cut)
            if !removed.isEmpty || newSize != inode.size { inode.generation += 1 }
            inode.size = newSize
            return removed
        }
        var quarantine: QuarantineSource?
        if case .quarantine(let keep) = broken.policy {
            quarantine = QuarantineSource(inode: id, generation: before.generation, fileOffset: self.byteOffset(cut.start), keep: keep)
        }
        let routed = self.cutBlocks(removed, from: id, quarantine: quarantine)
        let after = self.inodes[id]!
        self.step.commits.append(
            CommittedChange(
                inode: id,
                session: key.session,
                range: broken.recallsLayouts ? broken.range : BlockRange(start: 0, end: 0),
                cut: removed.map(\.physicalRange),
                policy: broken.policy,
                lastPin: PinID(rawValue: self.counters.lastPin)
            )
        )
        self.emit(.mappingChanged(id, generation: after.generation, freed: routed.freed, busy: routed.busy, quarantined: routed.quarantined))
        let deleted: Bool
        if case .delete = broken.operation {
            self.removeInode(id)
            self.emit(.inodeDeleted(id))
            deleted = true
        } else {
            deleted = false
        }
        let change = MappingChange(
            inode: id,
            size: after.size,
            generation: after.generation,
            freedBlocks: routed.freed,
            busyBlocks: routed.busy,
            quarantinedBlocks: routed.quarantined,
            quarantineInode: routed.quarantineInode,
            returnedLayouts: (broken.returnedLayouts + returned).uniqued(),
            revokedLayouts: broken.revokedLayouts,
            evictedSessions: broken.evictedSessions,
            recalledPins: broken.recalledPins,
            deleted: deleted
        )
        self.endBreak(key)
        self.complete(key, tag: broken.tag, with: .success(.mappingChanged(change)))
    }

    // MARK: Commit: allocate

    mutating func commitAllocation(_ key: SlotKey) {
        let broken = self.breaks[key]!
        let id = broken.inode
        let inode = self.inodes[id]!
        let ranges: [BlockRange]
        let end: UInt64
        switch broken.operation {
        case .allocate(let bytes, _):
            ranges = [broken.range]
            end = bytes.end!
        case .allocateThenPin(let request):
            ranges = (try? self.outwardRanges(request.ranges)) ?? []
            end = request.ranges.map { $0.end! }.max() ?? 0
        default:
            preconditionFailure("not an allocation")
        }
        let holes = ranges.flatMap { inode.map.holes(in: $0) }
        let needed = holes.totalCount
        if needed > self.free.blockCount {
            let busyBlocks = self.busy.blockCount
            var waits = false
            if case .allocate(_, let waitForBusy?) = broken.operation, waitForBusy > .zero { waits = true }
            if waits && self.free.blockCount + busyBlocks >= needed {
                if broken.phase != .waitingForSpace {
                    self.breaks[key]?.phase = .waitingForSpace
                    self.spaceWaiters.append(key)
                }
                return
            }
            self.endBreak(key)
            self.complete(key, tag: broken.tag, with: .failure(.noSpace(needed: needed, free: self.free.blockCount, busy: busyBlocks)))
            return
        }
        let returned = self.returnOwnLayouts(of: broken)
        var map = inode.map
        var allocated: [MappedExtent] = []
        for hole in holes {
            var fileBlock = hole.start
            for piece in self.free.allocate(hole.count, near: map.localityHint(for: hole.start))! {
                let extent = MappedExtent(fileBlock: fileBlock, physicalBlock: piece.start, count: piece.count, written: false)
                map.insert(extent)
                allocated.append(extent)
                fileBlock += piece.count
            }
        }
        let (size, generation) = self.modifyInode(id) { inode in
            inode.map = map
            let grows = end > inode.size
            if grows { inode.size = end }
            if needed > 0 || grows { inode.generation += 1 }
            return (inode.size, inode.generation)
        }
        if needed > 0 { self.emit(.allocated(id, generation: generation, blocks: needed)) }
        let allocation = Allocation(
            inode: id,
            size: size,
            generation: generation,
            extents: allocated,
            returnedLayouts: (broken.returnedLayouts + returned).uniqued(),
            revokedLayouts: broken.revokedLayouts,
            evictedSessions: broken.evictedSessions
        )
        self.endBreak(key)
        switch broken.operation {
        case .allocateThenPin(let request):
            guard self.sessions[key.session] != nil else { return }
            let grant = self.grantPin(request, blocks: ranges, session: key.session, allocation: allocation)
            self.complete(key, tag: broken.tag, with: .success(.pinned(grant)))
        default:
            self.complete(key, tag: broken.tag, with: .success(.allocated(allocation)))
        }
    }
}

extension Break {
    /// Whether committing cuts blocks out of the file (so pins can conflict).
    var cutsBlocks: Bool { !self.isAllocation }

    var describe: String {
        switch self.operation {
        case .truncate(let size): "truncate to \(size)"
        case .punch(let range): "punchHole of \(range)"
        case .delete: "deleteInode"
        case .allocate(let range, _): "allocate of \(range)"
        case .allocateThenPin: "pin with allocate"
        }
    }
}

extension Array where Element: Hashable {
    /// The elements in order, each once.
    func uniqued() -> [Element] {
        var seen: Set<Element> = []
        return self.filter { seen.insert($0).inserted }
    }
}
