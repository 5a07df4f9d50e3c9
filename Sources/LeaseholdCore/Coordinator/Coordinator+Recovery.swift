import DequeModule

/// Loading a persisted state failed: it breaks invariants. Nothing is repaired silently.
public struct RecoveryError: Error, Sendable, CustomStringConvertible {
    public var violations: [InvariantViolation]

    public init(violations: [InvariantViolation]) {
        self.violations = violations
    }

    public var description: String {
        "the stored state is inconsistent (\(self.violations.count) problem(s)): "
            + self.violations.prefix(20).map(\.description).joined(separator: "; ")
    }
}

// MARK: - Persistent image and recovery
//
// Recovery is a new start: the epoch goes up by one; every session's expiry, every pin's
// own expiry, every recall deadline and every release delay restarts in full from `now`,
// so nothing is freed, revoked or evicted earlier because of a restart. Breaks and waits
// are gone (clients retry with the same slot and sequence). Outstanding recalls are
// pushed again so that a resuming client sees them.

extension Coordinator {
    /// Every persisted row of the current state.
    public func persistentState() -> PersistentState {
        var state = PersistentState()
        state.volume = self.volume
        state.counters = self.counters
        for (id, inode) in self.inodes {
            state.inodes[id] = inode.record
            for extent in inode.map.extents { state.extents[ExtentKey(inode: id, fileBlock: extent.fileBlock)] = extent }
        }
        for extent in self.free.extents { state.freeExtents[extent.start] = extent.count }
        for segment in self.busy.allSegments {
            state.busy[segment.range.start] = BusyRecord(count: segment.range.count, quarantine: segment.payload.quarantine)
        }
        for (id, session) in self.sessions {
            state.sessions[id] = session.record
            for (index, slot) in session.slots.enumerated() {
                if let stored = slot.stored { state.slots[SlotKey(session: id, slot: UInt32(index))] = stored }
            }
        }
        for (id, pin) in self.pins { state.pins[id] = pin.record }
        for (id, layout) in self.layouts { state.layouts[id] = layout.record }
        for (id, recall) in self.recalls { state.recalls[id] = recall.record }
        for (revision, fence) in self.fences { state.fences[revision] = fence }
        for (name, target) in self.targets { state.targets[name] = target }
        state.events = self.eventLog
        return state
    }

    /// Rebuilds a Coordinator from its persisted rows, as a new start at `now`.
    /// - Throws: ``RecoveryError`` naming every invariant the rows break.
    /// - Parameter checking: run the invariant checker before returning (the default). An
    ///   edge that runs ``InvariantChecker/check(_:part:)`` itself (on several threads)
    ///   passes `false` and must throw on what it finds.
    public init(restoring state: PersistentState, configuration: CoordinatorConfiguration, at now: Instant, checking: Bool = true) throws(RecoveryError) {
        guard var volume = state.volume else {
            throw RecoveryError(violations: [InvariantViolation(invariant: 1, message: "the volume row is missing")])
        }
        var configuration = configuration
        configuration.geometry = volume.geometry
        volume.epoch += 1
        self.configuration = configuration
        self.volume = volume
        self.now = now
        self.counters = state.counters
        self.dirty.volume = true
        self.eventLog = state.events
        // A history kept longer than this configuration allows loses its oldest events
        // with the first commit.
        self.trimEventHistory()
        var problems: [InvariantViolation] = []

        var extentsByInode: [InodeID: [MappedExtent]] = [:]
        for (key, extent) in state.extents { extentsByInode[key.inode, default: []].append(extent) }
        for (id, record) in state.inodes {
            let extents = (extentsByInode.removeValue(forKey: id) ?? []).sorted { $0.fileBlock < $1.fileBlock }
            self.inodes[id] = Inode(id: id, generation: record.generation, size: record.size, kind: record.kind, map: ExtentMap(restoring: extents))
        }
        for (id, _) in extentsByInode {
            problems.append(InvariantViolation(invariant: 6, message: "extents are stored for inode \(id), which does not exist"))
        }
        self.free = FreeSpace(restoring: state.freeExtents.map { BlockRange(start: $0.key, count: $0.value) }.sorted { $0.start < $1.start })

        for (start, record) in state.busy.sorted(by: { $0.key < $1.key }) {
            let range = BlockRange(start: start, count: record.count)
            guard !range.isEmpty, self.busy.coveredCount(in: range) == 0 else {
                problems.append(InvariantViolation(invariant: 6, message: "busy row \(range) is empty or overlaps another"))
                continue
            }
            self.busy.insert(range, payload: BusyState(holders: HolderSet(), quarantine: record.quarantine, since: now))
            if record.quarantine != nil { self.quarantinedBlocks += range.count }
        }

        for id in state.sessions.keys.sorted() {
            let record = state.sessions[id]!
            let session = Session(
                id: id,
                identity: record.identity,
                name: record.name,
                secretDigest: record.secretDigest,
                ttl: record.ttl,
                slotCount: record.slotCount,
                slots: [],
                lastPush: record.lastPush,
                deadline: now + record.ttl,
                warned: false,
                outbox: Deque()
            )
            self.sessions[id] = session
            self.usage[record.identity, default: IdentityUsage()].sessions += 1
            self.armSessionTimer(session)
        }
        for (key, stored) in state.slots {
            guard let slotCount = self.sessions.withValue(forKey: key.session, { $0.slotCount }), Int(key.slot) < slotCount else {
                problems.append(InvariantViolation(invariant: 6, message: "slot \(key.slot) is stored for session \(key.session), which does not have it"))
                continue
            }
            self.sessions.modifyValue(forKey: key.session) { $0.setSlot(Int(key.slot), Slot(sequence: stored.sequence, stored: stored)) }
        }

        // Ascending keys: the B-trees fill their nodes without splitting in the middle. The
        // pin index is sorted on its own key first.
        var indexEntries: [(PinIndexKey, PinIndexEntry)] = []
        indexEntries.reserveCapacity(state.pins.count)
        for id in state.pins.keys.sorted() {
            let pin = Pin(record: state.pins[id]!)
            self.pins[id] = pin
            self.sessionPins[Pair(pin.session, id)] = true
            self.sessions.modifyValue(forKey: pin.session) { $0.pinCount += 1 }
            for extent in pin.extents where extent.count > 0 {
                indexEntries.append((PinIndexKey(inode: pin.inode, fileBlock: extent.fileBlock, pin: id), PinIndexEntry(physicalBlock: extent.physicalBlock, count: extent.count)))
                self.longestPinExtent = Swift.max(self.longestPinExtent, extent.count)
            }
            if pin.busyBlocks > 0 {
                // Its cut blocks are busy: it is one of their holders again.
                for extent in pin.extents where extent.count > 0 { self.addHolder(.pin(id), to: extent.physicalRange) }
            }
            if let identity = self.sessions.withValue(forKey: pin.session, { $0.identity }) {
                self.changeUsage(of: identity) {
                    $0.pins += 1
                    $0.pinnedBlocks += pin.blockCount
                    $0.busyBlocks += pin.busyBlocks
                }
            }
            if case .shortTerm(let ttl) = pin.kind { self.timers.schedule(.pin(id), at: now + ttl) }
        }
        indexEntries.sort { $0.0 < $1.0 }
        for (key, entry) in indexEntries { self.pinIndex[key] = entry }
        for (id, record) in state.layouts {
            let layout = Layout(record: record)
            self.layouts[id] = layout
            self.layoutByOwner[LayoutOwner(session: layout.session, inode: layout.inode, iomode: layout.iomode)] = id
            self.sessionLayouts[Pair(layout.session, id)] = true
            self.inodeLayouts[Pair(layout.inode, id)] = true
        }
        for (id, record) in state.recalls.sorted(by: { $0.key < $1.key }) {
            let recall = Recall(
                id: id,
                session: record.session,
                inode: record.inode,
                target: record.target,
                prolonged: record.prolonged,
                deadline: now + configuration.recallTimeout,
                sentAt: now
            )
            self.recalls[id] = recall
            self.timers.schedule(.recall(id), at: recall.deadline)
            switch record.target {
            case .layout(let layout, let range):
                self.layoutRecalls[Pair(layout, id)] = true
                if let stateID = self.layouts[layout]?.stateID {
                    self.requeue(
                        .layoutRecall(LayoutRecallNotice(recall: id, stateID: stateID, inode: record.inode, range: range, deadlineIn: configuration.recallTimeout)),
                        to: record.session
                    )
                }
            case .pin(let pin):
                self.pinRecalls[pin] = id
                self.requeue(.pinRecall(PinRecallNotice(recall: id, pin: pin, inode: record.inode, deadlineIn: configuration.recallTimeout)), to: record.session)
            }
        }
        for (revision, fence) in state.fences {
            self.fences[revision] = fence
            for range in fence.blocks where !range.isEmpty {
                self.fenceCoverage.update(range) { _, holders in (holders ?? HolderSet()).inserting(.fence(revision)) }
                self.addHolder(.fence(revision), to: range)
            }
            self.evicted[fence.session] = (fence.reason, revision)
            self.evictedOrder.append(fence.session)
        }
        for (name, target) in state.targets { self.targets[name] = target }
        let watermark = self.acknowledgedByAll
        for (revision, _) in self.fences where revision <= watermark {
            self.fenceResolvedAt[revision] = now
            self.timers.schedule(.fence(revision), at: now + configuration.releaseDelay)
        }
        self.fencesResolvedThrough = watermark

        // Busy blocks that nothing holds restart their release delay in full.
        let unheld = self.busy.allSegments.filter { $0.payload.holders.isEmpty }.map(\.range)
        let releaseAt = now + configuration.releaseDelay
        for range in unheld {
            self.busy.update(range) { _, state in
                guard var state else { return nil }
                state.releaseAt = releaseAt
                return state
            }
        }
        if !unheld.isEmpty { self.scheduleRelease(unheld, at: releaseAt) }
        // Rows that no longer start a busy run (the runs coalesced) are deleted.
        let starts = Set(self.busy.allSegments.map(\.range.start))
        for start in state.busy.keys where !starts.contains(start) { self.dirty.busyRows.updateValue(nil, forKey: start) }

        if checking { problems += InvariantChecker.check(self) }
        guard problems.isEmpty else { throw RecoveryError(violations: problems) }
    }

    /// Puts a push in a session's outbox without sending it (recovery: the client gets
    /// it when it resumes).
    mutating func requeue(_ body: PushBody, to id: SessionID) {
        self.sessions.modifyValue(forKey: id) { session in
            session.lastPush += 1
            session.outbox.append(Push(number: session.lastPush, body: body))
        }
        self.dirty.sessions.insert(id)
    }
}
