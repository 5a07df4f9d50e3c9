/// Checks the six invariants of SEMANTICS.md on any Coordinator state and returns every
/// violation found, not just the first.
///
/// It recomputes everything from the primary structures instead of trusting the
/// counters and indexes the Coordinator maintains, so that it can catch their bugs too.
/// Tests run it after every step of the simulation; the admin `check` runs it live.
public enum InvariantChecker {
    /// What must never go backwards, remembered from an earlier state (invariant 5).
    public struct Watermarks: Sendable, Equatable {
        var counters: Counters
        var epoch: UInt64
        var generations: [InodeID: UInt64]
        var lastPush: [SessionID: UInt64]
        var seqids: [LayoutID: UInt32]
        var acknowledged: [String: FenceRevision]
        var lastEventSeen: EventRevision
    }

    /// Every violation in `coordinator`.
    public static func check(_ coordinator: Coordinator) -> [InvariantViolation] {
        self.check(coordinator, since: nil).violations
    }

    /// The checks, as independent parts that may run at once on different threads
    /// (the Coordinator is only read): `check(c, part: i)` for every `i` in `parts`
    /// finds what `check(c)` finds.
    public static let parts = 0..<10

    public static func check(_ c: Coordinator, part: Int) -> [InvariantViolation] {
        var report = Report()
        // Biggest first, so that threads taking parts in order end together: the pins in
        // four quarters of their ids, then the structures, then the rest.
        let quarter = c.currentCounters.lastPin / 4 + 1
        switch part {
        case 0...3: self.checkPins(c, ids: UInt64(part) * quarter..<(part == 3 ? UInt64.max : UInt64(part + 1) * quarter), &report)
        case 4: self.checkWellFormed(c, &report)
        case 5: _ = self.checkMonotonic(c, since: nil, &report)
        case 6: self.checkPinTotals(c, &report)
        case 7: self.checkConservation(c, &report)
        case 8: self.checkBusyHeld(c, &report)
        case 9: self.checkCommittedChanges(c, &report)
        default: preconditionFailure("no invariant check part \(part)")
        }
        return report.violations
    }

    /// Every violation in `coordinator`, including values that went backwards since
    /// `previous`; and the watermarks to pass to the next check.
    public static func check(_ coordinator: Coordinator, since previous: Watermarks?) -> (
        violations: [InvariantViolation], watermarks: Watermarks
    ) {
        var report = Report()
        self.checkConservation(coordinator, &report)
        self.checkPinSafety(coordinator, &report)
        self.checkBusyHeld(coordinator, &report)
        self.checkCommittedChanges(coordinator, &report)
        let watermarks = self.checkMonotonic(coordinator, since: previous, &report)
        self.checkWellFormed(coordinator, &report)
        return (report.violations, watermarks)
    }

    struct Report {
        var violations: [InvariantViolation] = []

        mutating func add(_ invariant: Int, _ message: String) {
            self.violations.append(InvariantViolation(invariant: invariant, message: message))
        }
    }

    // MARK: 1. Conservation

    static func checkConservation(_ c: Coordinator, _ report: inout Report) {
        enum Owner: CustomStringConvertible {
            case free
            case mapped(InodeID)
            case busy
            case quarantined(InodeID)

            var description: String {
                switch self {
                case .free: "free"
                case .mapped(let inode): "mapped in inode \(inode)"
                case .busy: "busy"
                case .quarantined(let inode): "quarantined in inode \(inode)"
                }
            }
        }
        var claims: [(range: BlockRange, owner: Owner)] = []
        for extent in c.free.extents { claims.append((extent, .free)) }
        for (id, inode) in c.inodes where !inode.isQuarantine {
            for extent in inode.map.extents { claims.append((extent.physicalRange, .mapped(id))) }
        }
        var quarantinedByInode: [InodeID: UInt64] = [:]
        for segment in c.busy.allSegments {
            if let inode = segment.payload.quarantine {
                claims.append((segment.range, .quarantined(inode)))
                quarantinedByInode[inode, default: 0] += segment.range.count
            } else {
                claims.append((segment.range, .busy))
            }
        }
        claims.sort { $0.range.start < $1.range.start }
        var cursor: UInt64 = 0
        var previous: (range: BlockRange, owner: Owner)?
        for claim in claims {
            if claim.range.start > cursor {
                report.add(1, "blocks [\(cursor), \(claim.range.start)) are in none of free, mapped, busy, quarantined (lost)")
            }
            if let previous, claim.range.start < previous.range.end {
                report.add(1, "blocks \(claim.range.intersection(previous.range) ?? claim.range) are both \(previous.owner) and \(claim.owner)")
            }
            if claim.range.end > c.geometry.blockCount {
                report.add(1, "blocks \(claim.range) (\(claim.owner)) reach beyond the volume's \(c.geometry.blockCount) blocks")
            }
            cursor = Swift.max(cursor, claim.range.end)
            if previous == nil || claim.range.end > previous!.range.end { previous = claim }
        }
        if cursor < c.geometry.blockCount {
            report.add(1, "blocks [\(cursor), \(c.geometry.blockCount)) are in none of free, mapped, busy, quarantined (lost)")
        }

        // Quarantined blocks: the quarantine inode maps exactly the busy runs marked with it.
        for (id, inode) in c.inodes where inode.isQuarantine {
            var mapped: UInt64 = 0
            for extent in inode.map.extents {
                mapped += extent.count
                var covered: UInt64 = 0
                c.busy.forEachSegment(overlapping: extent.physicalRange) { segment in
                    if segment.payload.quarantine == id { covered += segment.range.count }
                }
                if covered != extent.count {
                    report.add(1, "quarantine inode \(id) maps \(extent.physicalRange) but only \(covered) of those blocks are quarantined to it")
                }
            }
            if mapped != quarantinedByInode[id, default: 0] {
                report.add(1, "quarantine inode \(id) maps \(mapped) blocks but \(quarantinedByInode[id, default: 0]) are quarantined to it")
            }
        }
        for (id, _) in quarantinedByInode where c.inodes[id]?.isQuarantine != true {
            report.add(1, "busy blocks are quarantined to inode \(id), which is not a quarantine inode")
        }
        let quarantined = quarantinedByInode.values.reduce(0, +)
        if quarantined != c.quarantinedBlocks {
            report.add(1, "quarantined block count is \(c.quarantinedBlocks) but \(quarantined) blocks are quarantined")
        }
    }

    // MARK: 2. Pin safety

    static func checkPinSafety(_ c: Coordinator, _ report: inout Report) {
        self.checkPins(c, ids: 0..<UInt64.max, &report)
        self.checkPinTotals(c, &report)
    }

    /// The pins of `ids` each: their blocks, busy counts, index entries and session.
    /// (Recovery checks the two halves of the ids on two threads.)
    static func checkPins(_ c: Coordinator, ids: Range<UInt64>, _ report: inout Report) {
        var busyByPin: [PinID: UInt64] = [:]
        for segment in c.busy.allSegments {
            for pin in segment.payload.holders.pins { busyByPin[pin, default: 0] += segment.range.count }
        }
        for (id, pin) in c.pins.elements(from: PinID(rawValue: ids.lowerBound)) {
            guard id.rawValue < ids.upperBound else { break }
            let inode = c.inodes[pin.inode]
            var heldByPin: UInt64 = 0
            for extent in pin.extents {
                if c.free.freeCount(in: extent.physicalRange) > 0 {
                    report.add(2, "pin \(id) references blocks of \(extent.physicalRange) that are free")
                }
                // Each block: still mapped where pinned, or busy (or quarantined) and held by the pin.
                var stillMapped: UInt64 = 0
                inode?.map.forEachExtent(in: extent.fileRange) { mapped in
                    if mapped.physicalBlock == extent.physicalBlock + (mapped.fileBlock - extent.fileBlock) { stillMapped += mapped.count }
                }
                var held: UInt64 = 0
                c.busy.forEachSegment(overlapping: extent.physicalRange) { segment in
                    if segment.payload.holders.contains(.pin(id)) { held += segment.range.count }
                }
                heldByPin += held
                if stillMapped + held != extent.count {
                    report.add(
                        2,
                        "pin \(id) references \(extent.physicalRange): \(stillMapped) blocks still mapped where pinned and \(held) busy blocks held by it, of \(extent.count)"
                    )
                }
                let entry = c.pinIndex[PinIndexKey(inode: pin.inode, fileBlock: extent.fileBlock, pin: id)]
                if entry != PinIndexEntry(physicalBlock: extent.physicalBlock, count: extent.count) {
                    report.add(6, "pin \(id) extent \(extent.fileRange) is missing from the pin index")
                }
                if extent.count > c.longestPinExtent {
                    report.add(6, "pin \(id) extent of \(extent.count) blocks is longer than the index's bound \(c.longestPinExtent)")
                }
            }
            if heldByPin != pin.busyBlocks || busyByPin[id, default: 0] != pin.busyBlocks {
                report.add(2, "pin \(id) counts \(pin.busyBlocks) busy blocks; busy runs name it on \(busyByPin[id, default: 0]), \(heldByPin) of them within its extents")
            }
            if !c.sessions.contains(pin.session) {
                report.add(2, "pin \(id) belongs to session \(pin.session), which is not live")
            }
        }
    }

    /// The pin index holds exactly the pins' extents, and busy runs name only pins that exist.
    static func checkPinTotals(_ c: Coordinator, _ report: inout Report) {
        var indexed = 0
        var bySession: [SessionID: Int] = [:]
        for (_, pin) in c.pins {
            indexed += pin.extents.count
            bySession[pin.session, default: 0] += 1
        }
        if c.pinIndex.count != indexed {
            report.add(6, "the pin index has \(c.pinIndex.count) entries for \(indexed) pin extents")
        }
        // The per-session count the pinsPerSession quota reads.
        for (id, session) in c.sessions where session.pinCount != bySession[id, default: 0] {
            report.add(6, "session \(id) counts \(session.pinCount) pins but holds \(bySession[id, default: 0])")
        }
        var holders: Set<PinID> = []
        for segment in c.busy.allSegments { holders.formUnion(segment.payload.holders.pins) }
        for id in holders where c.pins[id] == nil {
            report.add(3, "busy blocks are held by pin \(id), which does not exist")
        }
    }

    // MARK: 3. Busy blocks are held

    static func checkBusyHeld(_ c: Coordinator, _ report: inout Report) {
        for segment in c.busy.allSegments {
            let range = segment.range
            let holders = segment.payload.holders
            var kept = false
            if let quarantine = segment.payload.quarantine, case .quarantine(let source)? = c.inodes[quarantine]?.kind {
                kept = source.keep
            }
            if holders.isEmpty {
                if kept { continue }
                guard let at = segment.payload.releaseAt else {
                    report.add(3, "busy blocks \(range) have no holder and no release time")
                    continue
                }
                // Liveness: only once every due timer has fired (a storm is fired in slices).
                if at < c.now && c.isSettled {
                    report.add(3, "busy blocks \(range) have no holder and their release delay ended at \(at)")
                }
                continue
            }
            if segment.payload.releaseAt != nil {
                report.add(3, "busy blocks \(range) are held by \(holders.holders) but already scheduled for release")
            }
            for revision in holders.fences {
                guard let fence = c.fences[revision] else {
                    report.add(3, "busy blocks \(range) are held by fence \(revision), which is not in the feed")
                    continue
                }
                if !Coordinator.covers(fence.blocks, range) {
                    report.add(3, "busy blocks \(range) are held by fence \(revision), which does not cover them")
                }
                if let resolved = c.fenceResolvedAt[revision], resolved + c.configuration.releaseDelay <= c.now, c.isSettled {
                    report.add(3, "busy blocks \(range) are held by fence \(revision), whose release delay ended")
                }
            }
        }
        // The fence coverage index holds exactly every fence's blocks.
        var covered: [FenceRevision: UInt64] = [:]
        for segment in c.fenceCoverage.allSegments {
            if segment.payload.isEmpty || !segment.payload.pins.isEmpty {
                report.add(6, "fence coverage over \(segment.range) holds \(segment.payload.holders)")
            }
            for revision in segment.payload.fences { covered[revision, default: 0] += segment.range.count }
        }
        for (revision, fence) in c.fences where covered[revision, default: 0] != fence.blocks.totalCount {
            report.add(3, "fence \(revision) covers \(fence.blocks.totalCount) blocks but the coverage index holds \(covered[revision, default: 0])")
        }
        for (revision, _) in covered where c.fences[revision] == nil {
            report.add(3, "the coverage index holds blocks for fence \(revision), which is not in the feed")
        }
        for (revision, resolvedAt) in c.fenceResolvedAt where c.fences[revision] != nil {
            let stillWaiting = c.targets.contains { $0.value.acknowledged < revision }
            if stillWaiting {
                report.add(3, "fence \(revision) is treated as resolved at \(resolvedAt) but a registered target has not acknowledged it")
            }
        }
    }

    // MARK: 4. After a mapping change commits

    static func checkCommittedChanges(_ c: Coordinator, _ report: inout Report) {
        for change in c.step.commits {
            for (_, layout) in c.layouts where layout.inode == change.inode && layout.session != change.session {
                if layout.overlaps(change.range) {
                    report.add(4, "after a mapping change of inode \(change.inode) over \(change.range), session \(layout.session) still holds layout \(layout.id) over it")
                }
            }
            let pinsSurvive: Bool
            switch change.policy {
            case .busy, .quarantine: pinsSurvive = true
            case .wait, .fail: pinsSurvive = false
            }
            guard !pinsSurvive else { continue }
            for (id, pin) in c.pins where id <= change.lastPin {
                for extent in pin.extents where change.cut.anyOverlaps(extent.physicalRange) {
                    report.add(4, "after a \(change.policy) mapping change, pin \(id) still references cut blocks \(extent.physicalRange)")
                }
            }
        }
    }

    // MARK: 5. Nothing repeats or goes backwards

    static func checkMonotonic(_ c: Coordinator, since previous: Watermarks?, _ report: inout Report) -> Watermarks {
        let counters = c.counters
        func below(_ id: UInt64, _ last: UInt64, _ what: String) {
            if id == 0 || id > last { report.add(5, "\(what) \(id) is outside the ids handed out (1...\(last))") }
        }
        for (id, _) in c.inodes { below(id.rawValue, counters.lastInode, "inode") }
        for (id, _) in c.sessions { below(id.rawValue, counters.lastSession, "session") }
        for (id, _) in c.pins { below(id.rawValue, counters.lastPin, "pin") }
        for (id, _) in c.layouts { below(id.rawValue, counters.lastLayout, "layout") }
        for (id, _) in c.recalls { below(id.rawValue, counters.lastRecall, "recall") }
        for (revision, _) in c.fences { below(revision.rawValue, counters.lastFence, "fence revision") }

        // Tokens are unique: a set of them, and owners named only when one repeats.
        var tokens = Set<FencingToken>(minimumCapacity: c.pins.count + c.layouts.count)
        var repeated: [FencingToken] = []
        for (_, pin) in c.pins {
            below(pin.token.rawValue, counters.lastToken, "fencing token of pin")
            if !tokens.insert(pin.token).inserted { repeated.append(pin.token) }
        }
        for (_, layout) in c.layouts {
            below(layout.token.rawValue, counters.lastToken, "fencing token of layout")
            if !tokens.insert(layout.token).inserted { repeated.append(layout.token) }
        }
        for token in Set(repeated) {
            let owners = c.pins.filter { $0.value.token == token }.map { "pin \($0.key)" }
                + c.layouts.filter { $0.value.token == token }.map { "layout \($0.key)" }
            report.add(5, "fencing token \(token) was handed to more than one grant: \(owners.joined(separator: ", "))")
        }
        for (revision, fence) in c.fences where fence.maxToken.rawValue > counters.lastToken {
            report.add(5, "fence \(revision) covers tokens up to \(fence.maxToken), above every token handed out")
        }

        var previousEvent = EventRevision(rawValue: 0)
        for event in c.eventLog {
            if event.revision <= previousEvent { report.add(5, "event revision \(event.revision) follows \(previousEvent)") }
            previousEvent = event.revision
        }
        if previousEvent.rawValue > counters.lastEvent {
            report.add(5, "event revision \(previousEvent) is above the counter \(counters.lastEvent)")
        }
        for (id, session) in c.sessions {
            var last: UInt64 = 0
            for push in session.outbox {
                if push.number <= last || push.number > session.lastPush {
                    report.add(5, "session \(id) has push \(push.number) out of order (last push \(session.lastPush))")
                }
                last = push.number
            }
        }
        for (name, target) in c.targets where target.acknowledged.rawValue > counters.lastFence {
            report.add(5, "target '\(name)' acknowledged fence \(target.acknowledged), which was never issued")
        }

        let watermarks = Watermarks(
            counters: counters,
            epoch: c.epoch,
            generations: Dictionary(uniqueKeysWithValues: c.inodes.map { ($0.key, $0.value.generation) }),
            lastPush: Dictionary(uniqueKeysWithValues: c.sessions.map { ($0.key, $0.value.lastPush) }),
            seqids: Dictionary(uniqueKeysWithValues: c.layouts.map { ($0.key, $0.value.seqid) }),
            acknowledged: Dictionary(uniqueKeysWithValues: c.targets.map { ($0.key, $0.value.acknowledged) }),
            lastEventSeen: EventRevision(rawValue: counters.lastEvent)
        )
        guard let previous else { return watermarks }
        let pairs: [(String, UInt64, UInt64)] = [
            ("inode", previous.counters.lastInode, counters.lastInode),
            ("session", previous.counters.lastSession, counters.lastSession),
            ("pin", previous.counters.lastPin, counters.lastPin),
            ("layout", previous.counters.lastLayout, counters.lastLayout),
            ("recall", previous.counters.lastRecall, counters.lastRecall),
            ("fencing token", previous.counters.lastToken, counters.lastToken),
            ("fence revision", previous.counters.lastFence, counters.lastFence),
            ("event revision", previous.counters.lastEvent, counters.lastEvent),
            ("epoch", previous.epoch, c.epoch),
        ]
        for (name, before, after) in pairs where after < before {
            report.add(5, "\(name) counter went back from \(before) to \(after)")
        }
        /// Values per id must not go back, and an id new since `previous` must be above
        /// every id handed out by then.
        func compare<ID: LeaseholdIdentifier, V: Comparable>(
            _ now: [ID: V], _ before: [ID: V], lastID: UInt64, _ what: String, _ value: String
        ) {
            for (id, current) in now {
                if let old = before[id], current < old {
                    report.add(5, "\(what) \(id) \(value) went back from \(old) to \(current)")
                } else if before[id] == nil && id.rawValue <= lastID {
                    report.add(5, "\(what) \(id) appeared with an id handed out before")
                }
            }
        }
        compare(watermarks.generations, previous.generations, lastID: previous.counters.lastInode, "inode", "generation")
        compare(watermarks.lastPush, previous.lastPush, lastID: previous.counters.lastSession, "session", "push number")
        compare(watermarks.seqids, previous.seqids, lastID: previous.counters.lastLayout, "layout", "seqid")
        for (name, acknowledged) in watermarks.acknowledged {
            if let before = previous.acknowledged[name], acknowledged < before {
                report.add(5, "target '\(name)' acknowledgement went back from \(before) to \(acknowledged)")
            }
        }
        return watermarks
    }

    // MARK: 6. Well-formed structures

    static func checkWellFormed(_ c: Coordinator, _ report: inout Report) {
        for problem in c.free.structuralProblems() { report.add(6, "free space: \(problem)") }
        for problem in c.busy.structuralProblems() { report.add(6, "busy blocks: \(problem)") }
        for problem in c.fenceCoverage.structuralProblems() { report.add(6, "fence coverage: \(problem)") }
        for (id, inode) in c.inodes {
            for problem in inode.map.structuralProblems() { report.add(6, "inode \(id) extent map: \(problem)") }
            let limit = c.geometry.blocksForSize(inode.size)
            if inode.map.endOfMapping > limit {
                report.add(6, "inode \(id) maps file block \(inode.map.endOfMapping - 1) at or beyond ceil(size/bs) = \(limit) (size \(inode.size))")
            }
        }
        for (id, layout) in c.layouts {
            if layout.grants.isEmpty { report.add(6, "layout \(id) has no granted range") }
            for (index, grant) in layout.grants.enumerated() {
                if grant.range.isEmpty { report.add(6, "layout \(id) has an empty grant") }
                if index > 0 && layout.grants[index - 1].range.end > grant.range.start {
                    report.add(6, "layout \(id) grants overlap or are unsorted")
                }
                if grant.seqid > layout.seqid { report.add(6, "layout \(id) grant seqid \(grant.seqid) is above the layout's \(layout.seqid)") }
            }
            if !c.sessions.contains(layout.session) { report.add(6, "layout \(id) belongs to session \(layout.session), which is not live") }
            if c.layoutByOwner[LayoutOwner(session: layout.session, inode: layout.inode, iomode: layout.iomode)] != id {
                report.add(6, "layout \(id) is missing from the (session, inode, iomode) index")
            }
        }
        for (id, pin) in c.pins where pin.extents.contains(where: { $0.count == 0 }) {
            report.add(6, "pin \(id) has an empty extent")
        }
        for (id, recall) in c.recalls {
            switch recall.target {
            case .layout(let layout, _):
                if c.layouts[layout] == nil { report.add(6, "recall \(id) is for layout \(layout), which does not exist") }
            case .pin(let pin):
                if c.pins[pin] == nil { report.add(6, "recall \(id) is for pin \(pin), which does not exist") }
            }
        }
        // The per-identity usage the quotas rely on, recomputed.
        var usage: [String: IdentityUsage] = [:]
        for (_, session) in c.sessions { usage[session.identity, default: IdentityUsage()].sessions += 1 }
        for (_, pin) in c.pins {
            guard let identity = c.sessions.withValue(forKey: pin.session, { $0.identity }) else { continue }
            usage[identity, default: IdentityUsage()].pins += 1
            usage[identity, default: IdentityUsage()].pinnedBlocks += pin.blockCount
            usage[identity, default: IdentityUsage()].busyBlocks += pin.busyBlocks
        }
        for identity in Set(usage.keys).union(c.usage.keys) where usage[identity, default: IdentityUsage()] != c.usage[identity, default: IdentityUsage()] {
            report.add(6, "quota usage of '\(identity)' is \(c.usage[identity, default: IdentityUsage()]) but recomputes to \(usage[identity, default: IdentityUsage()])")
        }
        if c.sessionPins.count != c.pins.count { report.add(6, "session->pin index has \(c.sessionPins.count) entries for \(c.pins.count) pins") }
        if c.sessionLayouts.count != c.layouts.count || c.inodeLayouts.count != c.layouts.count {
            report.add(6, "layout indexes have \(c.sessionLayouts.count)/\(c.inodeLayouts.count) entries for \(c.layouts.count) layouts")
        }
    }
}
