import LeaseholdCore

/// A seeded random workload: many sessions doing every kind of operation at random, with
/// random time steps, against one Coordinator driven by a ``Harness`` (which checks the
/// invariants and the persisted image after every step).
///
/// The simulation knows only what a client would know: what its replies and pushes told
/// it. It answers some recalls, ignores others, lets some sessions lapse, retransmits
/// requests to check that the stored reply comes back, and registers storage targets
/// that acknowledge fences late or never.
public struct Simulation: Sendable {
    public private(set) var harness: Harness
    public let seed: UInt64
    private var random: SeededGenerator

    private struct Client: Sendable {
        var session: SessionID
        var identity: String
        /// Sessions that stop renewing at some point and lapse.
        var lapses: Bool
        var secret: SessionSecret
    }

    private var clients: [Client] = []
    private var inodes: [InodeID] = []
    private var pins: [(session: SessionID, pin: PinID)] = []
    private var layouts: [(session: SessionID, stateID: LayoutStateID)] = []
    private var pending: [PendingRequest] = []
    private var recalls: [(session: SessionID, body: PushBody)] = []
    private var sentRequests: [(session: SessionID, tag: SlotTag, command: Command, reply: Reply)] = []
    private var seenPushes: [SessionID: Int] = [:]
    private var targets: [String] = []
    /// Descriptions of the latest steps, for failure reports.
    public private(set) var trail: [String] = []
    /// How often each command ended how ("pin:ok", "truncate:rangeBreaking", ...).
    public private(set) var outcomes: [String: Int] = [:]
    /// Mismatches found by the simulation itself (for example a retransmission that did
    /// not return the stored reply).
    public private(set) var failures: [String] = []

    public static func configuration() -> CoordinatorConfiguration {
        var configuration = Harness.configuration(blocks: 512, releaseDelay: .milliseconds(800), recallTimeout: .seconds(2))
        configuration.maxShortTermPin = .seconds(5)
        configuration.maxWait = .seconds(4)
        configuration.quotas.pinsPerIdentity = 40
        configuration.quotas.busyBlocksPerIdentity = 200
        // Short enough that every run drops its oldest events many times.
        configuration.eventHistory = 300
        return configuration
    }

    public init(seed: UInt64, configuration: CoordinatorConfiguration = Simulation.configuration()) {
        self.seed = seed
        self.random = SeededGenerator(seed: seed)
        self.harness = Harness(configuration: configuration)
    }

    /// Keep every step's change set for ``takeChanges()``.
    public var keepsChanges: Bool {
        get { self.harness.keepsChanges }
        set { self.harness.keepsChanges = newValue }
    }

    /// The change sets of the steps since the last call, in order.
    public mutating func takeChanges() -> [ChangeSet] {
        self.harness.takeChanges()
    }

    /// Violations the harness recorded plus the simulation's own failures.
    public var problems: [String] { self.harness.violations + self.failures }

    /// Runs `steps` random steps, stopping at the first problem.
    public mutating func run(steps: Int) {
        for _ in 0..<steps {
            self.step()
            if !self.problems.isEmpty { return }
        }
    }

    /// One random operation, or a time step.
    public mutating func step() {
        let description = self.randomOperation()
        self.trail.append(description)
        if self.trail.count > 40 { self.trail.removeFirst() }
        self.collectPushes()
    }

    // MARK: - Operations

    private mutating func randomOperation() -> String {
        let roll = self.random.int(0...99)
        if self.clients.count < 2 || (roll < 3 && self.clients.count < 8) { return self.openSession() }
        switch roll {
        case 3..<18: return self.advanceTime()
        case 18..<26: return self.keepAlive()
        case 26..<29: return self.createInode()
        case 29..<37: return self.allocate()
        case 37..<48: return self.pin()
        case 48..<55: return self.unpin()
        case 55..<61: return self.truncateOrPunch()
        case 61..<68: return self.layoutGet()
        case 68..<73: return self.layoutReturn()
        case 73..<75: return self.layoutCommit()
        case 75..<81: return self.answerRecall()
        case 81..<84: return self.retransmit()
        case 84..<86: return self.markWritten()
        case 86..<88: return self.targetWork()
        case 88: return self.closeSession()
        case 89: return self.deleteInode()
        case 90: return self.adminAction()
        case 91: return self.cancelWaits()
        default: return self.advanceTime()
        }
    }

    private mutating func client() -> Client { self.random.pick(self.clients) }

    private mutating func byteRange(maxBlock: UInt64 = 48, maxBlocks: UInt64 = 12) -> ByteRange {
        let size = self.harness.blockSize
        if self.random.chance(20) {
            // Unaligned ranges exercise inward/outward rounding.
            let offset = self.random.uint(0...(maxBlock * size))
            return ByteRange(offset: offset, length: self.random.uint(1...(maxBlocks * size)))
        }
        return self.harness.blocks(self.random.uint(0...maxBlock), self.random.uint(1...maxBlocks))
    }

    private mutating func policy() -> TruncatePolicy {
        switch self.random.int(0...5) {
        case 0: .wait(timeout: .milliseconds(Int64(self.random.int(100...3_000))))
        case 1: .fail
        case 2: .quarantine(keep: self.random.chance(30))
        default: .busy
        }
    }

    /// Sends a command in a session and remembers what it needs to.
    @discardableResult
    private mutating func send(_ command: Command, in session: SessionID) -> Reply? {
        let (output, pending) = self.harness.send(command, in: session)
        if let pending {
            self.pending.append(pending)
            self.outcomes["\(command.name):pending", default: 0] += 1
            return nil
        }
        guard let reply = output.reply else { return nil }
        self.outcomes["\(command.name):\(reply.error?.code.name ?? "ok")", default: 0] += 1
        if command.isMutation, let tag = self.harness.lastTag {
            self.sentRequests.append((session, tag, command, reply))
            if self.sentRequests.count > 64 { self.sentRequests.removeFirst() }
        }
        self.learn(from: reply, session: session)
        if case .failure(let error) = reply, error.code == .sessionExpired || error.code == .fenced {
            self.forget(session: session)
        }
        return reply
    }

    /// Updates what the simulation knows from a reply.
    private mutating func learn(from reply: Reply, session: SessionID) {
        switch reply {
        case .success(.inodeCreated(let id)):
            self.inodes.append(id)
        case .success(.pinned(let grant)):
            self.pins.append((session, grant.pin))
        case .success(.layout(let grant)):
            self.layouts.removeAll { $0.stateID.id == grant.stateID.id }
            self.layouts.append((session, grant.stateID))
        case .success(.layoutReturned(let returned)):
            self.layouts.removeAll { $0.stateID.id == returned.stateID.id }
            if !returned.remaining.isEmpty { self.layouts.append((session, returned.stateID)) }
        case .success(.mappingChanged(let change)) where change.deleted:
            self.inodes.removeAll { $0 == change.inode }
        default:
            break
        }
    }

    private mutating func forget(session: SessionID) {
        self.clients.removeAll { $0.session == session }
        self.pins.removeAll { $0.session == session }
        self.layouts.removeAll { $0.session == session }
        self.recalls.removeAll { $0.session == session }
        self.pending.removeAll { $0.session == session }
    }

    private mutating func collectPushes() {
        for client in self.clients {
            let pushes = self.harness.pushes(of: client.session)
            let seen = self.seenPushes[client.session] ?? 0
            guard pushes.count > seen else { continue }
            for push in pushes[seen...] {
                switch push.body {
                case .layoutRecall, .pinRecall: self.recalls.append((client.session, push.body))
                case .fenced: break
                case .sessionExpiring: break
                }
            }
            self.seenPushes[client.session] = pushes.count
            if self.random.chance(50), let last = pushes.last {
                self.harness.send(.acknowledgePushes(upTo: last.number), in: client.session)
            }
        }
        // Sessions the Coordinator ended (expired or evicted) are forgotten.
        let live = Set(self.harness.coordinator.persistentState().sessions.keys)
        for client in self.clients where !live.contains(client.session) { self.forget(session: client.session) }
        for request in self.pending {
            guard let reply = self.harness.reply(of: request) else { continue }
            self.outcomes["completed:\(reply.error?.code.name ?? "ok")", default: 0] += 1
            self.learn(from: reply, session: request.session)
        }
        self.pending.removeAll { self.harness.reply(of: $0) != nil }
    }

    private mutating func openSession() -> String {
        let identity = ["alice", "bob", "carol"][self.random.int(0...2)]
        let ttl = Duration.milliseconds(Int64(self.random.int(1_000...6_000)))
        let secret = SessionSecret(high: self.random.next(), low: self.random.next())
        let reply = self.harness.send(
            .openSession(name: identity, ttl: ttl, slots: self.random.int(2...8), secret: secret),
            as: Caller(identity: identity)
        ).output.reply
        if case .success(.sessionOpened(let grant))? = reply {
            self.clients.append(Client(session: grant.session, identity: identity, lapses: self.random.chance(15), secret: secret))
            return "open session \(grant.session) for \(identity)"
        }
        return "open session refused: \(String(describing: reply))"
    }

    private mutating func advanceTime() -> String {
        let step = Duration.milliseconds(Int64(self.random.chance(80) ? self.random.int(1...400) : self.random.int(400...2_500)))
        // Most clients renew in time, as the client library does every TTL/3.
        for client in self.clients where !client.lapses {
            self.harness.send(.keepAlive, in: client.session)
        }
        self.harness.advance(by: step)
        return "advance \(step)"
    }

    private mutating func keepAlive() -> String {
        let client = self.client()
        if self.random.chance(20) {
            let reply = self.harness.send(.resumeSession(client.session, secret: client.secret), as: Caller(identity: client.identity)).output.reply
            return "resume \(client.session): \(reply?.error?.code.name ?? "ok")"
        }
        self.send(.keepAlive, in: client.session)
        return "keepAlive \(client.session)"
    }

    private mutating func closeSession() -> String {
        let client = self.client()
        self.send(.closeSession, in: client.session)
        self.forget(session: client.session)
        return "close \(client.session)"
    }

    private mutating func cancelWaits() -> String {
        let client = self.client()
        self.send(.cancelWaits, in: client.session)
        for request in self.pending where request.session == client.session { self.harness.forgetPending(request) }
        self.pending.removeAll { $0.session == client.session }
        return "cancelWaits \(client.session)"
    }

    private mutating func createInode() -> String {
        guard self.inodes.count < 6 else { return self.allocate() }
        let client = self.client()
        self.send(.createInode, in: client.session)
        return "createInode in \(client.session)"
    }

    private mutating func inode() -> InodeID? {
        self.inodes.isEmpty ? nil : self.random.pick(self.inodes)
    }

    private mutating func allocate() -> String {
        guard let inode = self.inode() else { return self.createInode() }
        let client = self.client()
        let range = self.byteRange()
        let wait = self.random.chance(20) ? Duration.milliseconds(Int64(self.random.int(100...2_000))) : nil
        let reply = self.send(.allocate(inode, range, waitForBusy: wait, expectedGeneration: nil), in: client.session)
        return "allocate \(range) of \(inode) in \(client.session): \(reply?.error?.code.name ?? "ok/pending")"
    }

    private mutating func markWritten() -> String {
        guard let inode = self.inode() else { return self.createInode() }
        let client = self.client()
        self.send(.markWritten(inode, self.byteRange()), in: client.session)
        return "markWritten \(inode)"
    }

    private mutating func pin() -> String {
        guard let inode = self.inode() else { return self.createInode() }
        let client = self.client()
        let ranges = (0..<self.random.int(1...2)).map { _ in self.byteRange(maxBlocks: 6) }
        let kind: PinKind = self.random.chance(30) ? .longTerm : .shortTerm(ttl: .milliseconds(Int64(self.random.int(200...5_000))))
        let wait = self.random.chance(25) ? Duration.milliseconds(Int64(self.random.int(100...3_000))) : nil
        let request = PinRequest(inode: inode, ranges: ranges, kind: kind, allocate: self.random.chance(20), wait: wait)
        let reply = self.send(.pin(request), in: client.session)
        return "pin \(ranges) of \(inode) in \(client.session): \(reply?.error?.code.name ?? "ok/pending")"
    }

    private mutating func unpin() -> String {
        guard !self.pins.isEmpty else { return self.pin() }
        let index = self.random.int(0...(self.pins.count - 1))
        let (session, pin) = self.pins.remove(at: index)
        let reply = self.send(.unpin(pin), in: session)
        return "unpin \(pin) in \(session): \(reply?.error?.code.name ?? "ok")"
    }

    private mutating func truncateOrPunch() -> String {
        guard let inode = self.inode() else { return self.createInode() }
        let client = self.client()
        let policy = self.policy()
        if self.random.chance(50) {
            let size = self.random.uint(0...(56 * self.harness.blockSize))
            let reply = self.send(.truncate(inode, size: size, policy: policy, expectedGeneration: nil), in: client.session)
            return "truncate \(inode) to \(size) \(policy) in \(client.session): \(reply?.error?.code.name ?? "ok/pending")"
        }
        let range = self.byteRange()
        let reply = self.send(.punchHole(inode, range, policy: policy, expectedGeneration: nil), in: client.session)
        return "punch \(range) of \(inode) \(policy) in \(client.session): \(reply?.error?.code.name ?? "ok/pending")"
    }

    private mutating func deleteInode() -> String {
        guard let inode = self.inode() else { return self.createInode() }
        let client = self.client()
        let reply = self.send(.deleteInode(inode, policy: self.policy(), expectedGeneration: nil), in: client.session)
        return "deleteInode \(inode) in \(client.session): \(reply?.error?.code.name ?? "ok/pending")"
    }

    private mutating func layoutGet() -> String {
        guard let inode = self.inode() else { return self.createInode() }
        let client = self.client()
        let ranges = (0..<self.random.int(1...2)).map { _ in self.byteRange() }
        let iomode: IOMode = self.random.chance(50) ? .read : .readWrite
        let reply = self.send(.layoutGet(inode, ranges: ranges, iomode: iomode), in: client.session)
        return "layoutGet \(inode) \(iomode) in \(client.session): \(reply?.error?.code.name ?? "ok")"
    }

    private mutating func layoutReturn() -> String {
        guard let (session, stateID) = self.layouts.randomElement(using: &self.random) else { return self.layoutGet() }
        let ranges = self.random.chance(40) ? [self.byteRange()] : nil
        let reply = self.send(.layoutReturn(stateID, ranges: ranges), in: session)
        if reply?.error != nil { self.layouts.removeAll { $0.stateID.id == stateID.id } }
        return "layoutReturn \(stateID) in \(session): \(reply?.error?.code.name ?? "ok")"
    }

    private mutating func layoutCommit() -> String {
        guard let (session, stateID) = self.layouts.randomElement(using: &self.random) else { return self.layoutGet() }
        let size = self.random.chance(50) ? self.random.uint(0...(60 * self.harness.blockSize)) : nil
        let reply = self.send(.layoutCommit(stateID, newSize: size, written: self.random.chance(50) ? [self.byteRange()] : []), in: session)
        return "layoutCommit \(stateID) in \(session): \(reply?.error?.code.name ?? "ok")"
    }

    /// Answers a pending recall: return or unpin (most often), prolong, or ignore.
    private mutating func answerRecall() -> String {
        guard !self.recalls.isEmpty else { return self.advanceTime() }
        let (session, body) = self.recalls.removeFirst()
        switch (body, self.random.int(0...9)) {
        case (.layoutRecall(let notice), 0...5):
            let current = self.layouts.first { $0.stateID.id == notice.stateID.id }?.stateID ?? notice.stateID
            let whole = self.random.chance(50)
            let range = ByteRange(offset: notice.range.start * self.harness.blockSize, length: notice.range.count * self.harness.blockSize)
            let reply = self.send(.layoutReturn(current, ranges: whole ? nil : [range]), in: session)
            return "answer layout recall \(notice.recall) in \(session): \(reply?.error?.code.name ?? "ok")"
        case (.pinRecall(let notice), 0...5):
            self.pins.removeAll { $0.pin == notice.pin }
            let reply = self.send(.unpin(notice.pin), in: session)
            return "answer pin recall \(notice.recall) in \(session): \(reply?.error?.code.name ?? "ok")"
        case (.layoutRecall(let notice), 6...7):
            let reply = self.send(.prolongRecall(notice.recall), in: session)
            self.recalls.append((session, body))
            return "prolong \(notice.recall): \(reply?.error?.code.name ?? "ok")"
        case (.pinRecall(let notice), 6...7):
            let reply = self.send(.prolongRecall(notice.recall), in: session)
            self.recalls.append((session, body))
            return "prolong \(notice.recall): \(reply?.error?.code.name ?? "ok")"
        default:
            return "ignore a recall in \(session)"
        }
    }

    /// Sends an earlier request again with its tag: the stored reply must come back.
    private mutating func retransmit() -> String {
        guard let sent = self.sentRequests.randomElement(using: &self.random) else { return self.advanceTime() }
        guard self.harness.coordinator.persistentState().sessions[sent.session] != nil else { return "skip retransmit" }
        let latest = self.harness.lastSequence(session: sent.session, slot: sent.tag.slot) == sent.tag.sequence
        let (output, pending) = self.harness.send(sent.command, in: sent.session, tag: sent.tag)
        if latest, pending == nil, output.reply != sent.reply {
            self.failures.append("seed \(self.seed): retransmission of \(sent.command.name) \(sent.tag) got \(String(describing: output.reply)), stored \(sent.reply)")
        }
        if latest, !output.effects.changes.isEmpty {
            self.failures.append("seed \(self.seed): retransmission of \(sent.command.name) changed state")
        }
        if !latest, output.reply?.error?.code != .invalidArgument {
            self.failures.append("seed \(self.seed): an older sequence of \(sent.command.name) was not refused: \(String(describing: output.reply))")
        }
        return "retransmit \(sent.command.name) \(sent.tag) in \(sent.session)"
    }

    private mutating func targetWork() -> String {
        let names = ["nvmeof-1", "rdma-2"]
        let name = self.random.pick(names)
        let caller = Caller(identity: name, isTarget: true)
        switch self.random.int(0...9) {
        case 0...2 where !self.targets.contains(name) && self.targets.count < 2:
            self.harness.send(.registerTarget, as: caller)
            self.targets.append(name)
            return "register target \(name)"
        case 9 where self.targets.contains(name):
            self.harness.send(.deregisterTarget(name: name), as: Harness.admin)
            self.targets.removeAll { $0 == name }
            return "deregister target \(name)"
        default:
            guard self.targets.contains(name) else { return "no target" }
            let last = self.harness.fences.last?.revision ?? FenceRevision(rawValue: 0)
            self.harness.send(.acknowledgeFence(last), as: caller)
            return "target \(name) acknowledges \(last)"
        }
    }

    private mutating func adminAction() -> String {
        switch self.random.int(0...5) {
        case 0:
            let client = self.client()
            self.harness.send(.evictSession(client.session), as: Harness.admin)
            self.forget(session: client.session)
            return "admin evicts \(client.session)"
        case 1:
            let start = self.random.uint(0...500)
            self.harness.send(.forceRelease(BlockRange(start: start, count: self.random.uint(1...8))), as: Harness.admin)
            return "admin force-releases around \(start)"
        case 2:
            let quarantines = self.harness.coordinator.persistentState().inodes.values.filter {
                if case .quarantine = $0.kind { true } else { false }
            }
            guard let victim = quarantines.randomElement(using: &self.random) else { return "no quarantine inode" }
            self.harness.send(.deleteQuarantineInode(victim.id), as: Harness.admin)
            return "admin deletes quarantine inode \(victim.id)"
        case 3:
            let setting = self.random.chance(80) ? PinSetting.allow : self.random.pick(PinSetting.allCases)
            self.harness.send(.setPinSetting(setting), as: Harness.admin)
            return "admin sets pins \(setting)"
        default:
            self.harness.send(.checkInvariants, as: Harness.admin)
            return "admin check"
        }
    }
}
