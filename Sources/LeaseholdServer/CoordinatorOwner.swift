import LeaseholdCore
import LeaseholdJournal
import LeaseholdMessages
import Logging
import NIOCore
import Synchronization

/// The one serial owner of the Coordinator, and the router of its effects.
///
/// Every request and every timer tick steps the Coordinator under one lock and, in the
/// same critical section, queues the step's change set in the journal with what to send
/// after its commit: so commit order is step order, and replies, completions, pushes,
/// fences and events leave in that order once durable. Routing (which connection a
/// session is attached to, which connection waits for which slot, who follows the fence
/// feed and the event stream) lives under the same lock, so it changes in step order too.
/// Everything else a step asks for is collected as plain ``Action`` values and run after
/// the lock is released: immediate answers (renewals, refusals), closing a superseded connection, scheduling the next tick, metrics. Sending is only
/// queueing a ``ServerMessage`` in a connection's outbox; encoding happens on the
/// connection's event loop (the model is postgres-nio's
/// `ConnectionPool.modifyStateAndRunActions`).
///
/// Time is the monotonic uptime clock (`NIODeadline`), in the Coordinator's `Instant`;
/// one scheduled task on an event loop drives `tick` at the Coordinator's next deadline.
/// A task scheduled for a deadline that an earlier one replaced is not cancelled (that
/// would be an event-loop call under the lock): it fires, finds its token stale, and does
/// nothing.
final class CoordinatorOwner: Sendable {
    struct WaitKey: Hashable {
        var session: SessionID
        var slot: UInt32
        var sequence: UInt64
    }

    struct Waiter {
        var connection: Connection
        var id: UInt64
        /// The command's name, for the request metric.
        var operation: String
    }

    struct State {
        var coordinator: Coordinator
        var sessionConnections: [SessionID: Connection] = [:]
        var connectionSessions: [ObjectIdentifier: Set<SessionID>] = [:]
        var waiters: [WaitKey: [Waiter]] = [:]
        var fenceSubscribers: [ObjectIdentifier: Connection] = [:]
        var eventWatchers: [ObjectIdentifier: Connection] = [:]
        /// The tick that is scheduled: a fired task whose token is not this one's is stale
        /// and does nothing.
        var scheduledTick: (at: Instant, token: UInt64)?
        var tickTokens: UInt64 = 0
        var shuttingDown = false
    }

    /// Work a step asks for outside the lock, in order.
    enum Action {
        /// A frame to send now: an immediate answer.
        case send(Connection, ServerMessage)
        /// A connection whose session was resumed elsewhere.
        case close(Connection, Leasehold_V1_Closing.Reason, String, session: SessionID? = nil)
        /// Run `tick(token)` at the deadline.
        case scheduleTick(Instant, token: UInt64)
        /// Count an answered request.
        case count(String, Reply)
        /// Record a step's measurements.
        case observe(Observations)
    }

    /// What one critical section collects: actions for now, sends for after the commit.
    struct Step {
        var actions: [Action] = []
        var changes = ChangeSet()
        var releases: [(Connection, ServerMessage)] = []
    }

    let state: Mutex<State>
    let journal: Journal
    let timerLoop: any EventLoop
    let startedAt: Instant
    let metrics: ServerMetrics?
    /// Time between ticks while timers are left due (see `tick`).
    let tickPacing: Duration
    /// Cluster mode: whether this node may release anything right now (it leads and its
    /// leadership deadline has not passed); checked at every output, replies released by
    /// the journal (pushes included) and renewals alike. `nil` for a single node.
    let gate: (@Sendable () -> Bool)?

    init(
        coordinator: Coordinator, journal: Journal, timerLoop: any EventLoop, metrics: ServerMetrics? = nil, tickPacing: Duration = .milliseconds(10),
        gate: (@Sendable () -> Bool)? = nil
    ) {
        self.gate = gate
        self.tickPacing = tickPacing
        self.state = Mutex(State(coordinator: coordinator))
        self.journal = journal
        self.timerLoop = timerLoop
        self.startedAt = Self.now()
        self.metrics = metrics
    }

    /// The monotonic clock, as the Coordinator counts time.
    static func now() -> Instant {
        Instant(nanoseconds: NIODeadline.now().uptimeNanoseconds)
    }

    var epoch: UInt64 { self.state.withLock { $0.coordinator.epoch } }

    // MARK: - Running steps

    /// Runs `body` under the lock, queues its change set with its releases in the journal
    /// (still under the lock, so commit order is step order), then runs its actions.
    func step(_ body: (inout State, inout Step) -> Void) {
        let actions = self.state.withLock { state -> [Action] in
            var step = Step()
            body(&state, &step)
            self.commit(step)
            return step.actions
        }
        self.run(actions)
    }

    func commit(_ step: Step) {
        let releases = step.releases
        if releases.isEmpty {
            if !step.changes.isEmpty { self.journal.enqueue(step.changes) }
            return
        }
        self.journal.enqueue(step.changes) {
            for (connection, message) in releases { self.deliver(message, to: connection) }
        }
    }

    /// Sends `message` if this node may release anything now; a leader past its deadline
    /// closes the connection instead (the client goes to the leader).
    func deliver(_ message: ServerMessage, to connection: Connection) {
        if let gate = self.gate, !gate() {
            connection.close(.notLeader, "this node's leadership lease ran out; it answers nothing more: connect to the leader")
            return
        }
        connection.send(message)
    }

    func run(_ actions: [Action]) {
        for action in actions {
            switch action {
            case .send(let connection, let message):
                self.deliver(message, to: connection)
            case .close(let connection, let reason, let message, let session):
                connection.close(reason, message, session: session)
            case .scheduleTick(let deadline, let token):
                self.timerLoop.scheduleTask(deadline: NIODeadline.uptimeNanoseconds(deadline.nanoseconds)) { [self] in
                    self.tick(token)
                }
            case .count(let operation, let reply):
                self.metrics?.request(operation, reply)
            case .observe(let observations):
                self.metrics?.record(observations)
            }
        }
    }

    // MARK: - Requests

    /// Runs one request from `connection`; its reply leaves after the commit.
    func submit(_ body: WireRequestBody, id: UInt64, from connection: Connection) {
        let operation = body.command.name
        self.step { state, step in
            if state.shuttingDown {
                let error = LeaseholdError(code: .unavailable, message: "the server is shutting down; retry after it restarts")
                self.answer(connection, id, operation, .failure(error), &step)
                return
            }
            // A live session answers only on the connection it is attached to; one that
            // ended is left to the Coordinator, which says why (sessionExpired, fenced).
            if let session = body.session, Self.needsAttachedSession(body.command), state.sessionConnections[session] !== connection,
                state.coordinator.isLive(session)
            {
                let error = LeaseholdError.permissionDenied("session \(session) is not attached to this connection; resume it here first (resumeSession)")
                self.answer(connection, id, operation, .failure(error), &step)
                return
            }
            switch body.command {
            case .hello, .createSnapshot, .readSnapshot, .clusterStatus:
                preconditionFailure("answered by the connection")
            case .openSession(let name, let ttl, let slots):
                self.openSession(name: name, ttl: ttl, slots: slots, id: id, operation, connection, &state, &step)
            case .subscribeFences(let after):
                self.subscribeFences(after: after, id: id, operation, connection, &state, &step)
            case .watchEvents(let after):
                self.watchEvents(after: after, id: id, operation, connection, &state, &step)
            case .core(let command):
                let request = Request(caller: connection.caller, session: body.session, tag: body.tag, command: command)
                self.core(request, id: id, operation, connection, &state, &step)
            }
        }
    }

    func openSession(name: String, ttl: Duration?, slots: Int?, id: UInt64, _ operation: String, _ connection: Connection, _ state: inout State, _ step: inout Step) {
        // The Core has no randomness: the secret comes from here.
        let secret = SessionSecret(high: UInt64.random(in: .min ... .max), low: UInt64.random(in: .min ... .max))
        let output = state.coordinator.handle(
            Request(caller: connection.caller, command: .openSession(name: name, ttl: ttl, slots: slots, secret: secret)),
            at: Self.now()
        )
        if case .success(.sessionOpened(let grant))? = output.reply {
            self.attach(grant.session, to: connection, &state, &step)
        }
        self.count(operation, output.reply, &step)
        self.collect(output, replyTo: (connection, id), &state, &step)
    }

    /// Registers the caller as a storage target and answers with the fences after `after`;
    /// from then on the connection follows the feed.
    func subscribeFences(after: FenceRevision, id: UInt64, _ operation: String, _ connection: Connection, _ state: inout State, _ step: inout Step) {
        let now = Self.now()
        let registered = state.coordinator.handle(Request(caller: connection.caller, command: .registerTarget), at: now)
        guard case .success(.targetRegistered(let target))? = registered.reply else {
            self.count(operation, registered.reply, &step)
            self.collect(registered, replyTo: (connection, id), &state, &step)
            return
        }
        self.collect(registered, replyTo: nil, &state, &step)
        let read = state.coordinator.handle(Request(caller: connection.caller, command: .readFences(after: after)), at: now)
        self.collect(read, replyTo: nil, &state, &step)
        guard case .success(.fences(let fences))? = read.reply else { preconditionFailure("readFences cannot fail for a target") }
        state.fenceSubscribers[ObjectIdentifier(connection)] = connection
        self.count(operation, .success(.targetRegistered(target)), &step)
        step.releases.append((connection, .fenceSubscription(id: id, target, fences)))
    }

    /// Answers with a page of the events after `after` and, if that was the rest of the
    /// history, adds the connection to the watchers; otherwise the answer says `more` and
    /// the client watches again after its last event (a long history never makes one
    /// oversized frame or a burst of pushes).
    func watchEvents(after: EventRevision, id: UInt64, _ operation: String, _ connection: Connection, _ state: inout State, _ step: inout Step) {
        let limit = state.coordinator.configuration.maxPageSize
        let output = state.coordinator.handle(Request(caller: connection.caller, command: .readEvents(after: after, limit: limit)), at: Self.now())
        self.count(operation, output.reply, &step)
        let watching = state.eventWatchers[ObjectIdentifier(connection)] != nil
        self.collect(output, replyTo: (connection, id), &state, &step)
        guard case .success(.events(let page, more: false))? = output.reply, !watching else { return }
        // Registered after this step's pushes went to the other watchers: of its events,
        // this connection gets only those the page does not hold, behind the reply.
        state.eventWatchers[ObjectIdentifier(connection)] = connection
        let last = page.last?.revision ?? after
        for event in output.effects.events where event.revision > last { step.releases.append((connection, .event(event))) }
    }

    /// Every command the Coordinator answers by itself.
    func core(_ request: Request, id: UInt64, _ operation: String, _ connection: Connection, _ state: inout State, _ step: inout Step) {
        let now = Self.now()
        let command = request.command
        let output = state.coordinator.handle(request, at: now)
        // A renewal changes nothing durable and shows nothing that is not durable already
        // (the session's existence was committed before its id was handed out): its reply
        // needs no barrier behind the commits in flight.
        if command == .keepAlive, case .success? = output.reply, output.effects.changes.isEmpty, output.effects.isQuiet,
            output.effects.observations.isEmpty
        {
            self.answer(connection, id, operation, output.reply!, &step)
            self.schedule(output.effects.nextDeadline, &state, &step)
            return
        }
        switch (command, output.reply) {
        case (.resumeSession(let session, _), .success?):
            self.attach(session, to: connection, &state, &step)
        case (_, nil):
            // Pending: the reply comes with a later step's completion.
            if let session = request.session, let tag = request.tag {
                state.waiters[WaitKey(session: session, slot: tag.slot, sequence: tag.sequence), default: []].append(
                    Waiter(connection: connection, id: id, operation: operation)
                )
            }
        default:
            break
        }
        self.count(operation, output.reply, &step)
        guard let reply = output.reply, case .success = reply, command == .status || Self.isSessionListing(command) else {
            self.collect(output, replyTo: (connection, id), &state, &step)
            return
        }
        // Figures only the server knows: uptime, and which sessions are connected.
        self.collect(output, replyTo: nil, &state, &step)
        var connected: Set<SessionID> = []
        if case .success(.sessions(let sessions)) = reply {
            for session in sessions where state.sessionConnections[session.session] != nil { connected.insert(session.session) }
        }
        step.releases.append((connection, .annotated(id: id, reply, uptime: now - self.startedAt, connected: connected)))
    }

    /// Answers at once (no barrier), counting the request.
    func answer(_ connection: Connection, _ id: UInt64, _ operation: String, _ reply: Reply, _ step: inout Step) {
        self.count(operation, reply, &step)
        step.actions.append(.send(connection, .reply(id: id, reply)))
    }

    /// Counts an answered request; a pending one (`nil`) is counted at its completion.
    func count(_ operation: String, _ reply: Reply?, _ step: inout Step) {
        if self.metrics != nil, let reply { step.actions.append(.count(operation, reply)) }
    }

    static func isSessionListing(_ command: Command) -> Bool {
        if case .listSessions = command { return true }
        return false
    }

    /// Commands that act in a session must come over the connection it is attached to.
    static func needsAttachedSession(_ command: WireCommand) -> Bool {
        guard case .core(let command) = command else { return false }
        if case .resumeSession = command { return false }
        return command.needsSession
    }

    // MARK: - Timers

    /// Runs every due deadline and schedules the next tick; a stale schedule does nothing.
    func tick(_ token: UInt64) {
        self.step { state, step in
            guard !state.shuttingDown, state.scheduledTick?.token == token else { return }
            state.scheduledTick = nil
            let now = Self.now()
            let output = state.coordinator.tick(at: now)
            self.collect(output, replyTo: nil, &state, &step)
            // A storm is fired in slices of maxTimersPerStep, one slice per `tickPacing`,
            // so that its commits leave room for everyone else's.
            if !state.coordinator.isSettled, let scheduled = state.scheduledTick, scheduled.at <= now {
                state.scheduledTick = nil
                self.schedule(now + self.tickPacing, &state, &step)
            }
        }
    }

    /// Makes sure a tick runs at `deadline` (an earlier schedule stands).
    func schedule(_ deadline: Instant?, _ state: inout State, _ step: inout Step) {
        guard let deadline, !state.shuttingDown else { return }
        // While a storm is being paced, a request's step does not pull the next slice
        // forward.
        if let scheduled = state.scheduledTick, scheduled.at <= deadline || !state.coordinator.isSettled { return }
        state.tickTokens += 1
        state.scheduledTick = (deadline, state.tickTokens)
        step.actions.append(.scheduleTick(deadline, token: state.tickTokens))
    }

    /// Starts the timer: schedules the Coordinator's first deadline.
    func start() {
        self.step { state, step in self.schedule(state.coordinator.nextDeadline, &state, &step) }
    }

    // MARK: - Connections

    func attach(_ session: SessionID, to connection: Connection, _ state: inout State, _ step: inout Step) {
        if let previous = state.sessionConnections[session], previous !== connection {
            state.connectionSessions[ObjectIdentifier(previous)]?.remove(session)
            // Its waiters get nothing more; a retransmission on the new connection joins.
            for (key, waiters) in state.waiters where key.session == session {
                state.waiters[key] = waiters.filter { $0.connection !== previous }
            }
            step.actions.append(.close(previous, .superseded, "session \(session) was resumed on another connection", session: session))
        }
        state.sessionConnections[session] = connection
        state.connectionSessions[ObjectIdentifier(connection), default: []].insert(session)
    }

    /// The connection is gone: its sessions stay (they expire unless resumed), their
    /// waits are cancelled, and its subscriptions end.
    func connectionClosed(_ connection: Connection) {
        self.step { state, step in
            let key = ObjectIdentifier(connection)
            state.fenceSubscribers[key] = nil
            state.eventWatchers[key] = nil
            for session in state.connectionSessions.removeValue(forKey: key) ?? [] where state.sessionConnections[session] === connection {
                state.sessionConnections[session] = nil
                let output = state.coordinator.handle(Request(caller: connection.caller, session: session, command: .cancelWaits), at: Self.now())
                self.collect(output, replyTo: nil, &state, &step)
            }
            for (waitKey, waiters) in state.waiters where waiters.contains(where: { $0.connection === connection }) {
                let rest = waiters.filter { $0.connection !== connection }
                state.waiters[waitKey] = rest.isEmpty ? nil : rest
            }
            if state.shuttingDown {
                step.changes = ChangeSet()
                step.releases = []
            }
        }
    }

    // MARK: - Effects

    /// Routes a step's effects, all of them for after the commit (``Effects``).
    func collect(_ output: Output, replyTo destination: (Connection, UInt64)?, _ state: inout State, _ step: inout Step) {
        let effects = output.effects
        step.changes.rows.append(contentsOf: effects.changes.rows)
        if self.metrics != nil, !effects.observations.isEmpty { step.actions.append(.observe(effects.observations)) }
        if let destination, let reply = output.reply {
            step.releases.append((destination.0, .reply(id: destination.1, reply)))
        }
        for completion in effects.completions {
            let key = WaitKey(session: completion.session, slot: completion.tag.slot, sequence: completion.tag.sequence)
            guard let waiters = state.waiters.removeValue(forKey: key) else { continue }
            if let first = waiters.first { self.count(first.operation, completion.reply, &step) }
            for waiter in waiters { step.releases.append((waiter.connection, .reply(id: waiter.id, completion.reply))) }
        }
        for push in effects.pushes {
            if let connection = state.sessionConnections[push.session] { step.releases.append((connection, .sessionPush(push.push, push.session))) }
        }
        for fence in effects.fences {
            for connection in state.fenceSubscribers.values { step.releases.append((connection, .fence(fence))) }
        }
        for event in effects.events {
            for connection in state.eventWatchers.values { step.releases.append((connection, .event(event))) }
        }
        for session in effects.endedSessions {
            if let connection = state.sessionConnections.removeValue(forKey: session) {
                state.connectionSessions[ObjectIdentifier(connection)]?.remove(session)
            }
        }
        self.schedule(effects.nextDeadline, &state, &step)
    }

    // MARK: - Shutdown

    /// Refuses new requests, answers waiting ones with `unavailable`, stops the timer,
    /// and returns once everything released so far is durable and sent to the outboxes.
    func shutDown() async {
        self.step { state, step in
            state.shuttingDown = true
            state.scheduledTick = nil
            let unavailable = Reply.failure(LeaseholdError(code: .unavailable, message: "the server is shutting down; retry this request after it restarts"))
            let sessions = Set(state.waiters.keys.map(\.session))
            for session in sessions {
                guard let connection = state.sessionConnections[session] else { continue }
                let output = state.coordinator.handle(Request(caller: connection.caller, session: session, command: .cancelWaits), at: Self.now())
                step.changes.rows.append(contentsOf: output.effects.changes.rows)
            }
            for (_, waiters) in state.waiters {
                for waiter in waiters { step.releases.append((waiter.connection, .reply(id: waiter.id, unavailable))) }
            }
            state.waiters.removeAll()
        }
        await self.journal.commit(ChangeSet())
    }

    /// Stops for good without committing anything (cluster mode, when this node stops
    /// leading): no step runs and no tick fires any more. The journal is abandoned first.
    func abandon() {
        self.state.withLock { state in
            state.shuttingDown = true
            state.scheduledTick = nil
        }
    }

    // MARK: - Admin figures

    /// Sets the metrics' gauges from the Coordinator, when the endpoint is scraped.
    func sampleMetrics(connections: Int) {
        guard let metrics = self.metrics else { return }
        let (status, connected) = self.state.withLock { ($0.coordinator.volumeStatus, $0.sessionConnections.count) }
        metrics.sample(status, connectedSessions: connected, connections: connections)
    }
}
