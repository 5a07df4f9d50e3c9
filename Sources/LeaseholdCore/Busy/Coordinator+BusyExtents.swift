// MARK: - Busy extents
//
// Lifecycle of a busy block (as XFS's xfs_extent_busy.c tells its own): a block is cut
// out of a file by a truncate, punch or delete. If nothing references it, it goes
// straight back to free space. If a live pin or an unreleased fence references it, it
// becomes *busy* (or, under the `quarantine` policy with a pin, *quarantined*: mapped
// to a new quarantine inode) and is in neither free space nor any file, so the allocator
// can never hand it out. Its holders are part of its busy run. When the last holder goes
// away (unpin or pin expiry: after `releaseDelay`; a fence: once every target has
// acknowledged it and its own `releaseDelay` has passed), the block gets `releaseAt`,
// and at that instant it returns to free space and coalesces with its neighbours.
// Overlapping holders that end at different times split a busy run, and each part goes
// free on its own schedule. A kept quarantine inode holds its blocks until an admin
// deletes it. Nothing frees a busy block early except an admin `forceRelease`, which is
// evented. Busy and quarantined blocks survive restarts; their delays restart in full.

extension Coordinator {
    struct CutResult {
        var freed: UInt64 = 0
        var busy: UInt64 = 0
        var quarantined: UInt64 = 0
        var quarantineInode: InodeID?
    }

    /// Routes blocks cut out of `inode`: unreferenced ones to free space, referenced ones
    /// to busy state, or, with a quarantine source, pinned ones to a new quarantine inode.
    mutating func cutBlocks(_ removed: [MappedExtent], from inode: InodeID, quarantine source: QuarantineSource?) -> CutResult {
        var result = CutResult()
        var quarantine: Inode?
        // Without pins on the inode and without fences, nothing can hold the blocks.
        let mayBeHeld = !self.fenceCoverage.isEmpty
            || self.pinIndex.ceiling(PinIndexKey(inode: inode, fileBlock: 0, pin: PinID(rawValue: 0)))?.key.inode == inode
        for extent in removed {
            guard mayBeHeld else {
                self.free.free(extent.physicalRange)
                result.freed += extent.count
                continue
            }
            for (range, holders) in self.holders(ofCut: extent, inode: inode) {
                guard !holders.isEmpty else {
                    self.free.free(range)
                    result.freed += range.count
                    continue
                }
                var marker: InodeID?
                if let source, !holders.pins.isEmpty {
                    if quarantine == nil {
                        quarantine = Inode(id: InodeID(rawValue: self.nextID(\.lastInode)), kind: .quarantine(source))
                    }
                    quarantine!.map.insert(
                        MappedExtent(
                            fileBlock: extent.fileBlock + (range.start - extent.physicalBlock),
                            physicalBlock: range.start,
                            count: range.count,
                            written: extent.written
                        )
                    )
                    marker = quarantine!.id
                    result.quarantined += range.count
                    self.quarantinedBlocks += range.count
                } else {
                    result.busy += range.count
                }
                self.busy.insert(range, payload: BusyState(holders: holders, quarantine: marker, since: self.now))
                for pinID in holders.pins {
                    guard let session = self.pins.withValue(forKey: pinID, { $0.session }) else { continue }
                    self.pins.modifyValue(forKey: pinID) { $0.busyBlocks += range.count }
                    self.dirty.pins.insert(pinID)
                    if let identity = self.sessions.withValue(forKey: session, { $0.identity }) {
                        self.usage[identity, default: IdentityUsage()].busyBlocks += range.count
                    }
                }
            }
        }
        if result.freed > 0 { self.step.spaceFreed = true }
        if var quarantine {
            quarantine.size = self.byteOffset(quarantine.map.endOfMapping)
            self.inodes[quarantine.id] = quarantine
            self.dirty.inodes.insert(quarantine.id)
            result.quarantineInode = quarantine.id
            if case .quarantine(let source) = quarantine.kind {
                self.emit(.quarantineCreated(quarantine.id, source: source.inode))
            }
        }
        return result
    }

    /// Who holds the physical blocks of an extent being cut out of `inode`: the pins that
    /// pinned them at these very file blocks, and the fences covering them. Returns the
    /// extent's physical range in pieces, in order; a piece nothing holds has no holder.
    func holders(ofCut extent: MappedExtent, inode: InodeID) -> [(BlockRange, HolderSet)] {
        var holders = RunMap<HolderSet>(tracksChanges: false)
        self.forEachPinExtent(inode: inode, overlapping: extent.fileRange) { pin, pinned in
            // Same mapping: the pinned file blocks still map to the pinned physical blocks.
            guard pinned.physicalBlock + extent.fileBlock == extent.physicalBlock + pinned.fileBlock,
                let overlap = pinned.fileRange.intersection(extent.fileRange)
            else { return }
            let physical = BlockRange(start: extent.physicalBlock + (overlap.start - extent.fileBlock), count: overlap.count)
            holders.update(physical) { _, set in (set ?? HolderSet()).inserting(.pin(pin)) }
        }
        self.fenceCoverage.forEachSegment(overlapping: extent.physicalRange) { segment in
            holders.update(segment.range) { _, set in (set ?? HolderSet()).union(segment.payload) }
        }
        var pieces: [(BlockRange, HolderSet)] = []
        var cursor = extent.physicalBlock
        for segment in holders.allSegments {
            if segment.range.start > cursor { pieces.append((BlockRange(start: cursor, end: segment.range.start), HolderSet())) }
            pieces.append((segment.range, segment.payload))
            cursor = segment.range.end
        }
        if cursor < extent.physicalRange.end { pieces.append((BlockRange(start: cursor, end: extent.physicalRange.end), HolderSet())) }
        return pieces
    }

    /// Adds `holder` to the busy blocks of `range` (eviction hands pins' blocks to a fence).
    mutating func addHolder(_ holder: Holder, to range: BlockRange) {
        self.busy.update(range) { _, state in
            guard var state else { return nil }
            state.holders = state.holders.inserting(holder)
            state.releaseAt = nil
            return state
        }
    }

    /// Drops `holder` from the busy blocks of `range`. Busy blocks left without any
    /// holder go free after `delay`.
    mutating func removeHolder(_ holder: Holder, from range: BlockRange, delay: Duration) {
        let at = self.now + delay
        var released: [BlockRange] = []
        self.busy.update(range) { part, state in
            guard var state else { return nil }
            guard state.holders.contains(holder) else { return state }
            state.holders = state.holders.removing(holder)
            if state.holders.isEmpty && state.releaseAt == nil {
                state.releaseAt = at
                released.append(part)
            }
            return state
        }
        if !released.isEmpty { self.scheduleRelease(released, at: at) }
    }

    mutating func scheduleRelease(_ ranges: [BlockRange], at instant: Instant) {
        if let id = self.releaseAt[instant] {
            self.releases[id]?.ranges.append(contentsOf: ranges)
            return
        }
        self.lastRelease += 1
        self.releases[self.lastRelease] = (instant, ranges)
        self.releaseAt[instant] = self.lastRelease
        self.timers.schedule(.release(self.lastRelease), at: instant)
    }

    /// A release delay ended: busy blocks whose `releaseAt` has come go free (kept
    /// quarantine blocks stay until their inode is deleted).
    mutating func releaseDue(_ id: UInt64) {
        guard let (instant, ranges) = self.releases.removeValue(forKey: id) else { return }
        self.releaseAt[instant] = nil
        var emptiedQuarantines: Set<InodeID> = []
        for range in ranges {
            for segment in self.busy.segments(overlapping: range) {
                guard let at = segment.payload.releaseAt, at <= self.now, segment.payload.holders.isEmpty else { continue }
                if let quarantine = segment.payload.quarantine {
                    guard case .quarantine(let source)? = self.inodes[quarantine]?.kind, !source.keep else { continue }
                    self.unmapQuarantine(quarantine, physical: segment.range)
                    emptiedQuarantines.insert(quarantine)
                }
                self.freeBusy(segment.range)
            }
        }
        for id in emptiedQuarantines where self.inodes[id]?.map.isEmpty == true {
            self.removeInode(id)
            self.emit(.quarantineDeleted(id))
        }
    }

    /// Moves busy blocks to free space.
    mutating func freeBusy(_ range: BlockRange) {
        self.busy.remove(range)
        self.free.free(range)
        self.step.spaceFreed = true
        self.emit(.busyReleased(range))
    }

    /// Unmaps the quarantine inode's file blocks that live at `physical`.
    mutating func unmapQuarantine(_ id: InodeID, physical: BlockRange) {
        guard let inode = self.inodes[id] else { return }
        var fileRanges: [BlockRange] = []
        for extent in inode.map.extents {
            guard let overlap = extent.physicalRange.intersection(physical) else { continue }
            fileRanges.append(BlockRange(start: extent.fileBlock + (overlap.start - extent.physicalBlock), count: overlap.count))
        }
        self.modifyInode(id) { inode in
            for range in fileRanges { inode.map.remove(range) }
        }
        self.quarantinedBlocks -= fileRanges.totalCount
    }

    // MARK: Admin interventions

    /// Frees busy blocks now, whatever holds them. Pins and fences holding them stop
    /// referencing them. Logged as an event.
    mutating func forceRelease(_ range: BlockRange, by identity: String) throws(LeaseholdError) -> Response {
        guard !range.isEmpty, range.end <= self.geometry.blockCount else {
            throw .invalidArgument("\(range) is not a non-empty block range inside the volume of \(self.geometry.blockCount) blocks")
        }
        let segments = self.busy.segments(overlapping: range).filter { $0.payload.quarantine == nil }
        guard !segments.isEmpty else {
            throw .notFound("no busy (non-quarantined) block in \(range); quarantined blocks are freed by deleting their inode")
        }
        var released: UInt64 = 0
        for segment in segments {
            for holder in segment.payload.holders {
                switch holder {
                case .pin(let pinID): self.detachPin(pinID, from: segment.range)
                case .fence(let revision): self.detachFence(revision, from: segment.range)
                }
            }
            self.freeBusy(segment.range)
            released += segment.range.count
        }
        self.emit(.forceReleased(range, by: identity))
        return .forceReleased(blocks: released)
    }

    /// The pin no longer references the physical blocks of `range`.
    mutating func detachPin(_ id: PinID, from range: BlockRange) {
        guard var pin = self.pins[id] else { return }
        var kept: [PinnedExtent] = []
        var removed: UInt64 = 0
        for extent in pin.extents {
            guard let overlap = extent.physicalRange.intersection(range) else {
                kept.append(extent)
                continue
            }
            removed += overlap.count
            if extent.physicalBlock < overlap.start {
                kept.append(PinnedExtent(fileBlock: extent.fileBlock, physicalBlock: extent.physicalBlock, count: overlap.start - extent.physicalBlock))
            }
            if overlap.end < extent.physicalRange.end {
                let offset = overlap.end - extent.physicalBlock
                kept.append(PinnedExtent(fileBlock: extent.fileBlock + offset, physicalBlock: overlap.end, count: extent.count - offset))
            }
        }
        self.unindexPin(id, inode: pin.inode, extents: pin.extents)
        self.indexPin(id, inode: pin.inode, extents: kept)
        pin.extents = TinyArray(kept)
        let busyRemoved = Swift.min(removed, pin.busyBlocks)
        pin.busyBlocks -= busyRemoved
        self.pins[id] = pin
        self.dirty.pins.insert(id)
        if let identity = self.sessions[pin.session]?.identity {
            self.changeUsage(of: identity) {
                $0.pinnedBlocks -= removed
                $0.busyBlocks -= busyRemoved
            }
        }
    }

    /// The fence no longer covers the physical blocks of `range`.
    mutating func detachFence(_ revision: FenceRevision, from range: BlockRange) {
        guard var fence = self.fences[revision] else { return }
        fence.blocks = fence.blocks.flatMap { block -> [BlockRange] in
            guard block.overlaps(range) else { return [block] }
            var pieces: [BlockRange] = []
            if block.start < range.start { pieces.append(BlockRange(start: block.start, end: range.start)) }
            if range.end < block.end { pieces.append(BlockRange(start: range.end, end: block.end)) }
            return pieces
        }
        self.fences[revision] = fence
        self.dirty.fences.insert(revision)
        self.fenceCoverage.update(range) { _, holders in
            guard let remaining = holders?.removing(.fence(revision)), !remaining.isEmpty else { return nil }
            return remaining
        }
    }

    /// Deletes a quarantine inode: its blocks become plain busy blocks and follow the
    /// busy release rule (free now if nothing held them for `releaseDelay` already).
    mutating func deleteQuarantineInode(_ id: InodeID) throws(LeaseholdError) -> Response {
        guard let inode = self.inodes[id] else {
            throw .notFound("inode \(id) does not exist")
        }
        guard inode.isQuarantine else {
            throw .invalidArgument("inode \(id) is not a quarantine inode; use deleteInode")
        }
        let extents = inode.map.extents
        self.removeInode(id)
        var blocks: UInt64 = 0
        for extent in extents {
            blocks += extent.count
            self.busy.update(extent.physicalRange) { _, state in
                guard var state else { return nil }
                state.quarantine = nil
                return state
            }
        }
        self.quarantinedBlocks -= blocks
        for extent in extents {
            for segment in self.busy.segments(overlapping: extent.physicalRange) {
                if let at = segment.payload.releaseAt, at <= self.now { self.freeBusy(segment.range) }
            }
        }
        self.emit(.quarantineDeleted(id))
        return .quarantineDeleted(id, blocks: blocks)
    }

    mutating func setPinSetting(_ setting: PinSetting) -> Response {
        if self.volume.pinSetting != setting {
            self.volume.pinSetting = setting
            self.dirty.volume = true
            self.emit(.pinSettingChanged(setting))
        }
        return .pinSettingChanged(setting)
    }
}
