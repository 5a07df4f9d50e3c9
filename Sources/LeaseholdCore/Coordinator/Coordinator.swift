import DequeModule

/// The coordination state machine: all domain state of one volume, and the only place
/// that changes it.
///
/// Inputs are ``handle(_:at:)`` and ``tick(at:)``; the output of each is a ``Decision``
/// (for `handle`) and ``Effects`` as plain values: the change set to persist, pushes,
/// completed waiters, new fences, events and the next deadline. It never sleeps, never
/// reads a clock and never does I/O; time is the `at:` argument. The edge (server)
/// persists the change set and only then releases replies, completions, pushes, fences
/// and events.
///
/// The domain lives in extensions by concern: sessions, slots (exactly-once), inodes,
/// pins, breaks (truncate/punch/delete/allocate), layouts and recalls, eviction and
/// fencing, busy extents, admin, recovery.
public struct Coordinator: Sendable {
    public let configuration: CoordinatorConfiguration

    // MARK: Persistent state
    var volume: VolumeRecord
    var counters = Counters()
    var inodes = OrderedMap<InodeID, Inode>()
    var free = FreeSpace()
    /// Busy and quarantined blocks.
    var busy = RunMap<BusyState>()
    var sessions = OrderedMap<SessionID, Session>()
    var pins = OrderedMap<PinID, Pin>()
    var layouts = OrderedMap<LayoutID, Layout>()
    var recalls = OrderedMap<RecallID, Recall>()
    var fences = OrderedMap<FenceRevision, Fence>()
    var targets = OrderedMap<String, StorageTarget>()
    /// The admin event history, oldest first, at most `eventHistory` long: durable, so
    /// watchers resume and post-mortems read it across restarts and failovers.
    var eventLog = Deque<Event>()

    // MARK: Derived indexes (rebuilt at recovery)
    /// Every pin extent by (inode, file block, pin): finds the pins that conflict with a
    /// mapping change, and the pins that hold blocks being cut.
    var pinIndex = OrderedMap<PinIndexKey, PinIndexEntry>()
    /// The longest pin extent ever indexed: how far before a range a pin may start.
    var longestPinExtent: UInt64 = 0
    /// Physical blocks each unreleased fence covers (its session's grants at eviction).
    var fenceCoverage = RunMap<HolderSet>(tracksChanges: false)
    var sessionPins = OrderedMap<Pair<SessionID, PinID>, Bool>()
    var sessionLayouts = OrderedMap<Pair<SessionID, LayoutID>, Bool>()
    var inodeLayouts = OrderedMap<Pair<InodeID, LayoutID>, Bool>()
    var layoutRecalls = OrderedMap<Pair<LayoutID, RecallID>, Bool>()
    var pinRecalls: [PinID: RecallID] = [:]
    var layoutByOwner: [LayoutOwner: LayoutID] = [:]
    var usage: [String: IdentityUsage] = [:]
    var quarantinedBlocks: UInt64 = 0

    // MARK: Runtime state (never persisted)
    var now = Instant.zero
    var timers = TimerQueue()
    var releases: [UInt64: (at: Instant, ranges: [BlockRange])] = [:]
    var releaseAt: [Instant: UInt64] = [:]
    var lastRelease: UInt64 = 0
    /// When each resolved fence was resolved.
    var fenceResolvedAt: [FenceRevision: Instant] = [:]
    /// Every fence up to this revision is resolved (or released).
    var fencesResolvedThrough = FenceRevision(rawValue: 0)
    var breaks: [SlotKey: Break] = [:]
    /// Each inode's breaks, first come first served.
    var inodeBreaks: [InodeID: [SlotKey]] = [:]
    var pinWaits: [SlotKey: PinWait] = [:]
    var inodePinWaits: [InodeID: [SlotKey]] = [:]
    /// Allocation breaks waiting for busy blocks to free.
    var spaceWaiters: [SlotKey] = []
    var evicted: [SessionID: (reason: EvictionReason, fence: FenceRevision)] = [:]
    var evictedOrder = Deque<SessionID>()

    // MARK: The current step
    var step = StepState()
    var dirty = DirtyRecords()

    /// A new, empty volume: every block free.
    public init(configuration: CoordinatorConfiguration = CoordinatorConfiguration(), epoch: UInt64 = 1) {
        self.configuration = configuration
        self.volume = VolumeRecord(geometry: configuration.geometry, pinSetting: .allow, epoch: epoch)
        self.free.free(configuration.geometry.allBlocks)
        self.dirty.volume = true
        self.dirty.counters = true
    }

    public var geometry: VolumeGeometry { self.volume.geometry }
    public var epoch: UInt64 { self.volume.epoch }
    public var pinSetting: PinSetting { self.volume.pinSetting }
    /// The instant of the latest step.
    public var currentInstant: Instant { self.now }
    /// The last value handed out of every counter.
    public var currentCounters: Counters { self.counters }
    /// Whether every timer due at the latest step has fired (see `maxTimersPerStep`).
    public var isSettled: Bool { (self.timers.next.map { $0 > self.now }) ?? true }
    /// Whether `session` is live (not closed, expired or evicted), without a step.
    public func isLive(_ session: SessionID) -> Bool { self.sessions[session] != nil }

    // MARK: - Inputs

    /// Handles one request at `now`.
    /// - Returns: the decision about the request and the step's effects.
    public mutating func handle(_ request: Request, at now: Instant) -> Output {
        self.beginStep(at: now, timerBudget: self.configuration.maxTimersPerRequest)
        let decision = self.dispatch(request)
        return self.finishStep(decision)
    }

    /// Advances time to `now`: fires every due deadline (expiries, recall deadlines,
    /// wait timeouts, release delays).
    public mutating func tick(at now: Instant) -> Output {
        self.beginStep(at: now, timerBudget: self.configuration.maxTimersPerStep)
        return self.finishStep(nil)
    }

    /// The earliest scheduled deadline.
    public var nextDeadline: Instant? {
        self.timers.next
    }

    // MARK: - Steps

    mutating func beginStep(at now: Instant, timerBudget: Int) {
        // The clock is monotonic; an earlier instant is treated as "no time passed".
        self.now = Swift.max(now, self.now)
        self.step.reset()
        self.step.timerBudget = timerBudget
        self.settle()
    }

    mutating func finishStep(_ decision: Decision?) -> Output {
        self.settle()
        var effects = Effects()
        swap(&effects, &self.step.effects)
        effects.changes = self.drainChanges(events: effects.events)
        effects.nextDeadline = self.timers.next
        return Output(decision: decision, effects: effects)
    }

    /// Runs due timers (at most `maxTimersPerStep`) and every consequence until nothing
    /// more is due: breaks that can start or commit, waiting pins that can go on,
    /// allocations that found space. Timers left due keep `nextDeadline` in the past, so
    /// the edge runs another tick at once.
    mutating func settle() {
        var progressed = true
        while progressed {
            progressed = false
            while self.step.timerBudget > 0, let target = self.timers.popDue(self.now) {
                self.fire(target)
                self.step.timerBudget -= 1
                progressed = true
            }
            if !self.step.pokedInodes.isEmpty {
                let inodes = self.step.pokedInodes.sorted()
                self.step.pokedInodes.removeAll(keepingCapacity: true)
                for inode in inodes { self.advance(inode: inode) }
                progressed = true
            }
            if self.step.spaceFreed {
                self.step.spaceFreed = false
                for key in self.spaceWaiters {
                    if let inode = self.breaks[key]?.inode { self.poke(inode) }
                }
                progressed = progressed || !self.step.pokedInodes.isEmpty
            }
        }
    }

    mutating func fire(_ target: TimerQueue.Target) {
        switch target {
        case .session(let id): self.sessionTimerFired(id)
        case .pin(let id): self.pinExpired(id)
        case .recall(let id): self.recallDeadlinePassed(id)
        case .wait(let key): self.waitTimedOut(key)
        case .fence(let revision): self.releaseFence(revision)
        case .release(let id): self.releaseDue(id)
        }
    }

    /// Marks an inode for re-evaluation of its breaks and waiting pins at the end of the
    /// step; an inode with neither has nothing to re-evaluate.
    mutating func poke(_ inode: InodeID) {
        guard self.inodeBreaks[inode] != nil || self.inodePinWaits[inode] != nil else { return }
        self.step.pokedInodes.insert(inode)
    }

    // MARK: - Dispatch

    mutating func dispatch(_ request: Request) -> Decision {
        let command = request.command
        if command.needsAdmin && !request.caller.isAdmin {
            return .reply(.failure(.permissionDenied("\(command.name) needs the admin role; '\(request.caller.identity)' does not have it")))
        }
        if command.needsTarget && !request.caller.isTarget {
            return .reply(.failure(.permissionDenied("\(command.name) needs the target role; '\(request.caller.identity)' does not have it")))
        }
        guard command.needsSession else {
            return self.execute(command, caller: request.caller, session: nil, tag: nil)
        }
        guard let sessionID = request.session else {
            return .reply(.failure(.invalidArgument("\(command.name) must be sent in a session")))
        }
        // Overdue but still waiting for its tick's slice: expired now, so that the check
        // below answers sessionExpired as it would have a moment later.
        self.expireIfOverdue(sessionID)
        do throws(LeaseholdError) {
            let identity = try self.identity(of: sessionID)
            guard identity == request.caller.identity else {
                throw .permissionDenied("session \(sessionID) belongs to '\(identity)', not '\(request.caller.identity)'")
            }
        } catch {
            return .reply(.failure(error))
        }
        guard command.isMutation else {
            return self.execute(command, caller: request.caller, session: sessionID, tag: nil)
        }
        return self.dispatchMutation(command, caller: request.caller, session: sessionID, tag: request.tag)
    }

    mutating func execute(_ command: Command, caller: Caller, session: SessionID?, tag: SlotTag?) -> Decision {
        func reply(_ body: () throws(LeaseholdError) -> Response) -> Decision {
            do throws(LeaseholdError) {
                return .reply(.success(try body()))
            } catch {
                return .reply(.failure(error))
            }
        }
        switch command {
        case .openSession(let name, let ttl, let slots, let secret):
            return reply { () throws(LeaseholdError) in try self.openSession(caller: caller, name: name, ttl: ttl, slots: slots, secret: secret) }
        case .resumeSession(let id, let secret):
            self.expireIfOverdue(id)
            return reply { () throws(LeaseholdError) in try self.resumeSession(id, secret: secret, caller: caller) }
        case .keepAlive:
            return reply { () throws(LeaseholdError) in self.keepAlive(session!) }
        case .closeSession:
            return reply { () throws(LeaseholdError) in self.closeSession(session!) }
        case .acknowledgePushes(let upTo):
            return reply { () throws(LeaseholdError) in try self.acknowledgePushes(session!, upTo: upTo) }
        case .cancelWaits:
            return reply { () throws(LeaseholdError) in .waitsCancelled(count: self.cancelWaits(of: session!)) }

        case .createInode:
            return reply { () throws(LeaseholdError) in self.createInode() }
        case .deleteInode(let inode, let policy, let generation):
            return self.submitBreak(.delete, inode: inode, policy: policy, expectedGeneration: generation, session: session!, tag: tag!)
        case .allocate(let inode, let range, let waitForBusy, let generation):
            return self.submitBreak(.allocate(range, waitForBusy: waitForBusy), inode: inode, policy: .busy, expectedGeneration: generation, session: session!, tag: tag!)
        case .markWritten(let inode, let range):
            return reply { () throws(LeaseholdError) in try self.markWritten(inode, range) }

        case .pin(let pinRequest):
            return self.pin(pinRequest, caller: caller, session: session!, tag: tag!)
        case .unpin(let pin):
            return reply { () throws(LeaseholdError) in try self.unpin(pin, session: session!) }

        case .truncate(let inode, let size, let policy, let generation):
            return self.submitBreak(.truncate(size: size), inode: inode, policy: policy, expectedGeneration: generation, session: session!, tag: tag!)
        case .punchHole(let inode, let range, let policy, let generation):
            return self.submitBreak(.punch(range), inode: inode, policy: policy, expectedGeneration: generation, session: session!, tag: tag!)

        case .layoutGet(let inode, let ranges, let iomode):
            return reply { () throws(LeaseholdError) in try self.layoutGet(inode, ranges: ranges, iomode: iomode, session: session!) }
        case .layoutReturn(let stateID, let ranges):
            return reply { () throws(LeaseholdError) in try self.layoutReturn(stateID, ranges: ranges, session: session!) }
        case .layoutCommit(let stateID, let newSize, let written):
            return reply { () throws(LeaseholdError) in try self.layoutCommit(stateID, newSize: newSize, written: written, session: session!) }
        case .prolongRecall(let recall):
            return reply { () throws(LeaseholdError) in try self.prolongRecall(recall, session: session!) }

        case .registerTarget:
            return reply { () throws(LeaseholdError) in self.registerTarget(caller.identity) }
        case .acknowledgeFence(let revision):
            return reply { () throws(LeaseholdError) in try self.acknowledgeFence(revision, target: caller.identity) }
        case .readFences(let after):
            return reply { () throws(LeaseholdError) in
                // No fence comes after the largest revision (and its successor would overflow).
                guard after.rawValue < .max else { return .fences([]) }
                return .fences(Array(self.fences.elements(from: FenceRevision(rawValue: after.rawValue + 1)).map(\.value)))
            }

        case .evictSession(let id):
            return reply { () throws(LeaseholdError) in try self.adminEvict(id) }
        case .deregisterTarget(let name):
            return reply { () throws(LeaseholdError) in try self.deregisterTarget(name) }
        case .forceRelease(let range):
            return reply { () throws(LeaseholdError) in try self.forceRelease(range, by: caller.identity) }
        case .deleteQuarantineInode(let inode):
            return reply { () throws(LeaseholdError) in try self.deleteQuarantineInode(inode) }
        case .setPinSetting(let setting):
            return reply { () throws(LeaseholdError) in self.setPinSetting(setting) }

        case .status:
            return reply { () throws(LeaseholdError) in .status(self.status()) }
        case .listBusyExtents(let page):
            return reply { () throws(LeaseholdError) in .busyExtents(self.busyExtents(page: try self.validated(page))) }
        case .listFreeExtents(let page):
            return reply { () throws(LeaseholdError) in .freeExtents(self.free.extents(from: try self.validated(page).after, limit: page.limit)) }
        case .listPins(let page):
            return reply { () throws(LeaseholdError) in .pins(self.pinInfos(page: try self.validated(page))) }
        case .listLayouts(let page):
            return reply { () throws(LeaseholdError) in .layouts(self.layoutInfos(page: try self.validated(page))) }
        case .listSessions(let page):
            return reply { () throws(LeaseholdError) in .sessions(self.sessionInfos(page: try self.validated(page))) }
        case .listInodes(let page):
            return reply { () throws(LeaseholdError) in .inodes(self.inodeInfos(page: try self.validated(page))) }
        case .showInode(let inode):
            return reply { () throws(LeaseholdError) in .inode(try self.inodeDetail(inode)) }
        case .listTargets:
            return reply { () throws(LeaseholdError) in .targets(self.targetInfos()) }
        case .checkInvariants:
            return reply { () throws(LeaseholdError) in .invariants(InvariantChecker.check(self)) }
        case .readEvents(let after, let limit):
            return reply { () throws(LeaseholdError) in
                let events = try self.readEvents(after: after, limit: limit)
                return .events(events, more: (self.eventLog.last?.revision ?? after) > (events.last?.revision ?? after))
            }
        }
    }

    // MARK: - Step helpers

    /// Changes an identity's quota usage with one hash lookup.
    mutating func changeUsage(of identity: String, _ body: (inout IdentityUsage) -> Void) {
        body(&self.usage[identity, default: IdentityUsage()])
    }

    /// Takes the next value of a counter.
    mutating func nextID(_ counter: WritableKeyPath<Counters, UInt64>) -> UInt64 {
        self.counters[keyPath: counter] += 1
        self.dirty.counters = true
        return self.counters[keyPath: counter]
    }

    /// The next fencing token. A fence covers every token up to the counter's value at
    /// eviction, so no per-session maximum needs to be stored.
    mutating func nextToken() -> FencingToken {
        FencingToken(rawValue: self.nextID(\.lastToken))
    }

    /// Appends an admin event to the durable history (and the step's pushes to watchers).
    mutating func emit(_ kind: EventKind) {
        let event = Event(revision: EventRevision(rawValue: self.nextID(\.lastEvent)), kind: kind)
        self.eventLog.append(event)
        self.trimEventHistory()
        self.step.effects.events.append(event)
    }

    /// Drops the oldest events beyond `eventHistory`, on disk too.
    mutating func trimEventHistory() {
        let excess = self.eventLog.count - Swift.max(0, self.configuration.eventHistory)
        guard excess > 0 else { return }
        self.eventLog.removeFirst(excess)
        self.dirty.eventsDroppedBefore = self.oldestKeptEvent
    }

    /// The oldest revision the history still holds (the next one when it is empty).
    var oldestKeptEvent: EventRevision {
        self.eventLog.first?.revision ?? EventRevision(rawValue: self.counters.lastEvent + 1)
    }

    func validated(_ page: Page) throws(LeaseholdError) -> Page {
        guard page.limit > 0, page.limit <= self.configuration.maxPageSize else {
            throw .invalidArgument("page limit \(page.limit) must be between 1 and \(self.configuration.maxPageSize)")
        }
        return page
    }

    func readEvents(after: EventRevision, limit: Int) throws(LeaseholdError) -> [Event] {
        guard limit > 0, limit <= self.configuration.maxPageSize else {
            throw .invalidArgument("event limit \(limit) must be between 1 and \(self.configuration.maxPageSize)")
        }
        // 0 asks for whatever is kept; a later revision for exactly what followed it.
        let oldest = self.oldestKeptEvent
        if after.rawValue > 0, after.rawValue < oldest.rawValue - 1 { throw .compacted(after: after, oldest: oldest) }
        // The history is in revision order: the first event after `after` by bisection.
        var low = self.eventLog.startIndex
        var high = self.eventLog.endIndex
        while low < high {
            let middle = low + (high - low) / 2
            if self.eventLog[middle].revision > after { high = middle } else { low = middle + 1 }
        }
        return Array(self.eventLog[low...].prefix(limit))
    }
}

extension OrderedMap {
    /// The second halves of every key whose first half is `first`, in order: the rows of
    /// a secondary index such as (session, pin).
    func seconds<A, B: LeaseholdIdentifier>(of first: A) -> [B] where Key == Pair<A, B> {
        var result: [B] = []
        for (key, _) in self.elements(from: Pair(first, B(rawValue: 0))) {
            guard key.first == first else { break }
            result.append(key.second)
        }
        return result
    }
}

/// An ordered pair, for secondary indexes such as (session, pin).
struct Pair<A: Comparable & Hashable & Sendable, B: Comparable & Hashable & Sendable>: Comparable, Hashable, Sendable {
    var first: A
    var second: B

    init(_ first: A, _ second: B) {
        self.first = first
        self.second = second
    }

    static func < (lhs: Pair, rhs: Pair) -> Bool {
        lhs.first < rhs.first || (lhs.first == rhs.first && lhs.second < rhs.second)
    }
}

/// Orders pin extents by inode and file block.
struct PinIndexKey: Hashable, Comparable, Sendable {
    var inode: InodeID
    var fileBlock: UInt64
    var pin: PinID

    static func < (lhs: PinIndexKey, rhs: PinIndexKey) -> Bool {
        (lhs.inode, lhs.fileBlock, lhs.pin) < (rhs.inode, rhs.fileBlock, rhs.pin)
    }
}

/// Where an indexed pin extent lives on the volume (its file block is in the key).
struct PinIndexEntry: Hashable, Sendable {
    var physicalBlock: UInt64
    var count: UInt64
}

/// The key of the one layout a session may hold per inode and iomode.
struct LayoutOwner: Hashable, Sendable {
    var session: SessionID
    var inode: InodeID
    var iomode: IOMode
}

/// What an identity holds, for quotas.
struct IdentityUsage: Hashable, Sendable {
    var sessions = 0
    var pins = 0
    var pinnedBlocks: UInt64 = 0
    var busyBlocks: UInt64 = 0
}

/// Scratch state of one `handle`/`tick`.
struct StepState: Sendable {
    var effects = Effects()
    /// Timers this step may still fire (`maxTimersPerStep`).
    var timerBudget = Int.max
    var pokedInodes: Set<InodeID> = []
    var spaceFreed = false
    /// The request being dispatched: a completion for it becomes the direct reply.
    var inline: Set<SlotKey> = []
    var inlineReplies: [SlotKey: Reply] = [:]
    /// Mapping changes committed in this step, for invariant 4.
    var commits: [CommittedChange] = []

    /// Forgets the previous step, without reallocating what is already empty.
    mutating func reset() {
        if !self.pokedInodes.isEmpty { self.pokedInodes.removeAll(keepingCapacity: true) }
        self.spaceFreed = false
        if !self.inline.isEmpty { self.inline.removeAll() }
        if !self.inlineReplies.isEmpty { self.inlineReplies.removeAll() }
        if !self.commits.isEmpty { self.commits.removeAll() }
    }
}

/// A mapping change that committed, as the invariant checker needs it.
struct CommittedChange: Sendable, Equatable {
    var inode: InodeID
    var session: SessionID
    var range: BlockRange
    /// Physical blocks cut out of the file.
    var cut: [BlockRange]
    var policy: TruncatePolicy
    /// The newest pin at commit: later pins (a waiting pin granted in the same step, on
    /// blocks allocated again) are not the commit's concern.
    var lastPin: PinID
}

/// Records whose rows changed in the current step.
struct DirtyRecords: Sendable {
    var volume = false
    var counters = false
    var inodes = DirtyKeys<InodeID>()
    var sessions = DirtyKeys<SessionID>()
    var slots = DirtyKeys<SlotKey>()
    var pins = DirtyKeys<PinID>()
    var layouts = DirtyKeys<LayoutID>()
    var recalls = DirtyKeys<RecallID>()
    var fences = DirtyKeys<FenceRevision>()
    var targets = DirtyKeys<String>()
    /// Extent rows of inodes removed in this step.
    var removedExtents: [ExtentKey: MappedExtent?] = [:]
    /// Busy rows to delete that no longer start a run (recovery coalescing).
    var busyRows: [UInt64: BusyRecord?] = [:]
    /// Set when the step dropped the oldest events: the new oldest kept revision.
    var eventsDroppedBefore: EventRevision?

    /// Clears every record, keeping storage for the next step.
    mutating func reset() {
        self.volume = false
        self.counters = false
        if !self.removedExtents.isEmpty { self.removedExtents.removeAll() }
        if !self.busyRows.isEmpty { self.busyRows.removeAll() }
        self.eventsDroppedBefore = nil
        self.inodes.removeAll()
        self.sessions.removeAll()
        self.slots.removeAll()
        self.pins.removeAll()
        self.layouts.removeAll()
        self.recalls.removeAll()
        self.fences.removeAll()
        self.targets.removeAll()
    }
}
