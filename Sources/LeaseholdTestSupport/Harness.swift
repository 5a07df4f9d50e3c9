import LeaseholdCore

/// Drives a ``Coordinator`` the way the server does, without a network: a manual clock,
/// automatic slots and sequences per session, and a log of everything each step
/// released (pushes, completions, fences, events).
///
/// After every step it runs the invariant checker (with watermarks, so nothing may go
/// backwards) and replays the step's change set into a ``PersistentState``, comparing it
/// with the Coordinator's own persistent image; any difference is recorded in
/// `violations`. Tests end with `#expect(harness.violations.isEmpty)`.
public struct Harness: Sendable {
    public var coordinator: Coordinator
    public var clock = ManualClock()
    /// Invariant violations and persistence mismatches seen so far, with the step.
    public private(set) var violations: [String] = []
    /// Every push each session received, in order (recalls included).
    public private(set) var pushes: [SessionID: [Push]] = [:]
    /// Replies of requests that waited, by session and tag.
    public private(set) var completions: [PendingRequest: Reply] = [:]
    public private(set) var fences: [Fence] = []
    public private(set) var events: [Event] = []
    /// The output of the latest step.
    public private(set) var lastOutput: Output?
    /// The slot tag the latest `send` used.
    public private(set) var lastTag: SlotTag?
    /// Rows as the journal would hold them, rebuilt from change sets only.
    public private(set) var persisted: PersistentState
    /// Check invariants and the persisted image after every step (costly on big states).
    public var checksEveryStep = true
    /// Keep every step's change set until ``takeChanges()`` (to feed a real journal).
    public var keepsChanges = false
    private var keptChanges: [ChangeSet] = []
    public private(set) var steps = 0

    /// The secret each session was opened with.
    public private(set) var secrets: [SessionID: SessionSecret] = [:]
    private var callers: [SessionID: Caller] = [:]
    private var sequences: [SlotKey: UInt64] = [:]
    private var pendingSlots: Set<SlotKey> = []
    private var watermarks: InvariantChecker.Watermarks?

    /// A volume of `blocks` blocks of 4 KiB and the given timing; the defaults keep tests
    /// small and fast.
    public static func configuration(
        blocks: UInt64 = 1_024,
        releaseDelay: Duration = .seconds(5),
        recallTimeout: Duration = .seconds(10)
    ) -> CoordinatorConfiguration {
        var configuration = CoordinatorConfiguration()
        configuration.geometry = try! VolumeGeometry(blockSize: 4_096, blockCount: blocks)
        configuration.releaseDelay = releaseDelay
        configuration.recallTimeout = recallTimeout
        return configuration
    }

    public init(configuration: CoordinatorConfiguration = Harness.configuration()) {
        self.coordinator = Coordinator(configuration: configuration)
        self.persisted = PersistentState()
        // The initial rows (volume, counters, free space) come with the first step.
        let output = self.coordinator.tick(at: self.clock.now)
        self.record(output, step: "initial tick")
    }

    public var now: Instant { self.clock.now }
    public var blockSize: UInt64 { self.coordinator.geometry.blockSize }

    // MARK: - Sending

    /// Sends a command. Mutations get the lowest free slot of the session and its next
    /// sequence unless `tag` is given.
    @discardableResult
    public mutating func send(
        _ command: Command,
        in session: SessionID? = nil,
        as caller: Caller? = nil,
        tag: SlotTag? = nil
    ) -> (output: Output, pending: PendingRequest?) {
        let caller = caller ?? session.flatMap { self.callers[$0] } ?? Caller(identity: "admin", isAdmin: true)
        var tag = tag
        if tag == nil, command.isMutation, let session {
            var slot: UInt32 = 0
            while self.pendingSlots.contains(SlotKey(session: session, slot: slot)) { slot += 1 }
            let key = SlotKey(session: session, slot: slot)
            let sequence = (self.sequences[key] ?? 0) + 1
            self.sequences[key] = sequence
            tag = SlotTag(slot: slot, sequence: sequence)
        } else if let tag, let session {
            let key = SlotKey(session: session, slot: tag.slot)
            self.sequences[key] = Swift.max(self.sequences[key] ?? 0, tag.sequence)
        }
        self.lastTag = tag
        let request = Request(caller: caller, session: session, tag: tag, command: command)
        let output = self.coordinator.handle(request, at: self.clock.now)
        var pending: PendingRequest?
        if case .pending = output.decision, let session, let tag {
            pending = PendingRequest(session: session, tag: tag)
            self.pendingSlots.insert(SlotKey(session: session, slot: tag.slot))
        }
        if case .success(.sessionOpened(let grant)) = output.reply {
            self.callers[grant.session] = caller
            self.secrets[grant.session] = grant.secret
        }
        self.record(output, step: "\(command.name) in session \(session.map(\.description) ?? "-")")
        return (output, pending)
    }

    /// Sends a command that must be answered at once.
    /// - Throws: the reply's error.
    @discardableResult
    public mutating func call(_ command: Command, in session: SessionID? = nil, as caller: Caller? = nil, tag: SlotTag? = nil) throws(LeaseholdError) -> Response {
        let (output, pending) = self.send(command, in: session, as: caller, tag: tag)
        guard pending == nil, let reply = output.reply else {
            throw LeaseholdError(code: .protocolError, message: "harness: \(command.name) did not reply at once")
        }
        switch reply {
        case .success(let response): return response
        case .failure(let error): throw error
        }
    }

    /// Sends a command that must wait.
    public mutating func start(_ command: Command, in session: SessionID, tag: SlotTag? = nil) -> PendingRequest? {
        self.send(command, in: session, tag: tag).pending
    }

    /// Sends a command that must wait.
    /// - Throws: the reply's error, or `protocolError` if it was answered at once.
    public mutating func begin(_ command: Command, in session: SessionID, tag: SlotTag? = nil) throws(LeaseholdError) -> PendingRequest {
        let (output, pending) = self.send(command, in: session, tag: tag)
        if let pending { return pending }
        if let error = output.reply?.error { throw error }
        throw LeaseholdError(code: .protocolError, message: "harness: \(command.name) was answered at once: \(String(describing: output.reply))")
    }

    /// Moves time forward and ticks.
    @discardableResult
    public mutating func advance(by duration: Duration) -> Output {
        self.clock.advance(by: duration)
        let output = self.coordinator.tick(at: self.clock.now)
        self.record(output, step: "tick to \(self.clock.now)")
        return output
    }

    /// The reply of a request that waited, once a step completed it.
    public func reply(of request: PendingRequest) -> Reply? {
        self.completions[request]
    }

    /// Pushes of a session, optionally only those after `number`.
    public func pushes(of session: SessionID) -> [Push] {
        self.pushes[session] ?? []
    }

    // MARK: - Recording

    private mutating func record(_ output: Output, step: String) {
        self.steps += 1
        self.lastOutput = output
        for push in output.effects.pushes {
            self.pushes[push.session, default: []].append(push.push)
        }
        for completion in output.effects.completions {
            let request = PendingRequest(session: completion.session, tag: completion.tag)
            self.completions[request] = completion.reply
            self.pendingSlots.remove(SlotKey(session: completion.session, slot: completion.tag.slot))
        }
        for ended in output.effects.endedSessions {
            self.pendingSlots = self.pendingSlots.filter { $0.session != ended }
        }
        self.fences.append(contentsOf: output.effects.fences)
        self.events.append(contentsOf: output.effects.events)
        self.persisted.apply(output.effects.changes)
        if self.keepsChanges && !output.effects.changes.isEmpty { self.keptChanges.append(output.effects.changes) }
        guard self.checksEveryStep else { return }
        self.verify(step: step)
    }

    /// Runs the invariant checker and compares the persisted image now.
    public mutating func verify(step: String = "explicit check") {
        let (found, watermarks) = InvariantChecker.check(self.coordinator, since: self.watermarks)
        self.watermarks = watermarks
        for violation in found {
            self.violations.append("step \(self.steps) (\(step)): \(violation)")
        }
        let expected = self.coordinator.persistentState()
        for difference in self.persisted.differences(from: expected) {
            self.violations.append("step \(self.steps) (\(step)): persisted rows differ: \(difference)")
        }
    }

    /// The change sets kept since the last call, in order.
    public mutating func takeChanges() -> [ChangeSet] {
        defer { self.keptChanges.removeAll() }
        return self.keptChanges
    }

    /// The last sequence the harness sent in a slot of a session.
    public func lastSequence(session: SessionID, slot: UInt32) -> UInt64 {
        self.sequences[SlotKey(session: session, slot: slot)] ?? 0
    }

    /// Forgets a pending slot whose wait was cancelled (connection closed).
    public mutating func forgetPending(_ request: PendingRequest) {
        self.pendingSlots.remove(SlotKey(session: request.session, slot: request.tag.slot))
    }
}

/// A request that is waiting inside the Coordinator.
public struct PendingRequest: Hashable, Sendable {
    public var session: SessionID
    public var tag: SlotTag

    public init(session: SessionID, tag: SlotTag) {
        self.session = session
        self.tag = tag
    }
}
