import LeaseholdCore
import LeaseholdStore
import LeaseholdWire
import Logging
import NIOCore
import Synchronization

/// The one serial owner of the Coordinator, and the router of its effects.
///
/// Every request and every timer tick runs `handle`/`tick` under one lock, and in the
/// same critical section queues the step's change set in the journal with what to
/// release after its commit: so commit order is step order, and replies, completions,
/// pushes, fences and events leave in that order once durable. Recalls are advisory
/// and go out at once, before the commit. Routing (which connection a session is
/// attached to, which connection waits for which slot, who follows the fence feed and
/// the event stream) lives under the same lock, so it changes in step order too.
///
/// Time is the monotonic uptime clock (`NIODeadline`), in the Coordinator's `Instant`;
/// one scheduled task on an event loop drives `tick` at the Coordinator's next deadline.
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
        var waiters: [WaitKey: [Waiter]] = [:]
        var fenceSubscribers: [ObjectIdentifier: Connection] = [:]
        var eventWatchers: [ObjectIdentifier: Connection] = [:]
        var scheduledTick: (at: Instant, task: Scheduled<Void>)?
        var shuttingDown = false
    }

    /// What to do once a step's change set is durable.
    enum Release {
        case reply(Connection, UInt64, WireResponse)
        case push(Connection, Push, SessionID)
        case fence([Connection], Fence)
        case event([Connection], Event)

        func run() {
            switch self {
            case .reply(let connection, let id, let response):
                connection.reply(id, response)
            case .push(let connection, let push, let session):
                connection.push(push, session: session)
            case .fence(let connections, let fence):
                var push = WirePush()
                push.fence = fence.wire
                for connection in connections { connection.push(push) }
            case .event(let connections, let event):
                var push = WirePush()
                push.event = event.wire
                for connection in connections { connection.push(push) }
            }
        }
    }

    let state: Mutex<State>
    let journal: Journal
    let timerLoop: any EventLoop
    let logger: Logger
    let startedAt: Instant
    let metrics: ServerMetrics?
    /// Time between ticks while timers are left due (see `tick`).
    let tickPacing: Duration

    init(
        coordinator: Coordinator, journal: Journal, timerLoop: any EventLoop, logger: Logger, metrics: ServerMetrics? = nil,
        tickPacing: Duration = .milliseconds(10)
    ) {
        self.tickPacing = tickPacing
        self.state = Mutex(State(coordinator: coordinator))
        self.journal = journal
        self.timerLoop = timerLoop
        self.logger = logger
        self.startedAt = Self.now()
        self.metrics = metrics
    }

    /// The monotonic clock, as the Coordinator counts time.
    static func now() -> Instant {
        Instant(nanoseconds: NIODeadline.now().uptimeNanoseconds)
    }

    var epoch: UInt64 { self.state.withLock { $0.coordinator.epoch } }
    var geometry: VolumeGeometry { self.state.withLock { $0.coordinator.geometry } }
    var configuration: CoordinatorConfiguration { self.state.withLock { $0.coordinator.configuration } }

    // MARK: - Requests

    /// Runs one request from `connection` and releases its reply after the commit.
    func submit(_ body: WireRequestBody, id: UInt64, from connection: Connection) {
        let operation = body.command.name
        self.state.withLock { state in
            if state.shuttingDown {
                self.answer(connection, id, operation, .failure(LeaseholdError(code: .unavailable, message: "the server is shutting down; retry after it restarts")))
                return
            }
            // A live session answers only on the connection it is attached to; one that
            // ended is left to the Coordinator, which says why (sessionExpired, fenced).
            if let session = body.session, Self.needsAttachedSession(body.command), state.sessionConnections[session] !== connection,
                state.coordinator.isLive(session)
            {
                self.answer(
                    connection, id, operation,
                    .failure(.permissionDenied("session \(session) is not attached to this connection; resume it here first (resumeSession)"))
                )
                return
            }
            var releases: [Release] = []
            var changes = ChangeSet()
            let now = Self.now()

            switch body.command {
            case .hello, .createSnapshot, .readSnapshot:
                preconditionFailure("answered by the connection")
            case .openSession(let name, let ttl, let slots):
                let secret = SessionSecret(high: UInt64.random(in: .min ... .max), low: UInt64.random(in: .min ... .max))
                let output = state.coordinator.handle(
                    Request(caller: connection.caller, command: .openSession(name: name, ttl: ttl, slots: slots, secret: secret)),
                    at: now
                )
                if case .success(.sessionOpened(let grant))? = output.reply {
                    self.attach(grant.session, to: connection, state: &state)
                }
                self.count(operation, output.reply)
                self.collect(output, replyTo: (connection, id), state: &state, changes: &changes, releases: &releases)
            case .subscribeFences(let after):
                let registered = state.coordinator.handle(Request(caller: connection.caller, command: .registerTarget), at: now)
                guard case .success(.targetRegistered(let target))? = registered.reply else {
                    self.count(operation, registered.reply)
                    self.collect(registered, replyTo: (connection, id), state: &state, changes: &changes, releases: &releases)
                    break
                }
                self.collect(registered, replyTo: nil, state: &state, changes: &changes, releases: &releases)
                let read = state.coordinator.handle(Request(caller: connection.caller, command: .readFences(after: after)), at: now)
                self.collect(read, replyTo: nil, state: &state, changes: &changes, releases: &releases)
                guard case .success(.fences(let fences))? = read.reply else { preconditionFailure("readFences cannot fail for a target") }
                state.fenceSubscribers[ObjectIdentifier(connection)] = connection
                var response = WireResponse()
                response.fenceSubscription.target = target.wire
                response.fenceSubscription.fences = fences.map(\.wire)
                self.metrics?.request(operation, result: "ok")
                releases.append(.reply(connection, id, response))
            case .watchEvents(let after):
                let output = state.coordinator.handle(
                    Request(caller: connection.caller, command: .readEvents(after: after, limit: state.coordinator.configuration.eventHistory)),
                    at: now
                )
                if case .success? = output.reply { state.eventWatchers[ObjectIdentifier(connection)] = connection }
                self.count(operation, output.reply)
                self.collect(output, replyTo: (connection, id), state: &state, changes: &changes, releases: &releases)
            case .core(let command):
                let request = Request(caller: connection.caller, session: body.session, tag: body.tag, command: command)
                let output = state.coordinator.handle(request, at: now)
                // A renewal changes nothing durable and shows nothing that is not durable
                // already (the session's existence was committed before its id was
                // handed out): its reply needs no barrier behind the commits in flight.
                if command == .keepAlive, case .success? = output.reply, output.effects.changes.isEmpty, output.effects.isQuiet,
                    output.effects.observations.isEmpty
                {
                    self.answer(connection, id, operation, output.reply!)
                    self.schedule(output.effects.nextDeadline, state: &state)
                    return
                }
                switch (command, output.reply) {
                case (.resumeSession(let session, _), .success?):
                    self.attach(session, to: connection, state: &state)
                case (_, nil):
                    // Pending: the reply comes with a later step's completion.
                    if let session = body.session, let tag = body.tag {
                        state.waiters[WaitKey(session: session, slot: tag.slot, sequence: tag.sequence), default: []].append(
                            Waiter(connection: connection, id: id, operation: operation)
                        )
                    }
                default:
                    break
                }
                self.count(operation, output.reply)
                guard let reply = output.reply, case .success = reply, command == .status || Self.isSessionListing(command) else {
                    self.collect(output, replyTo: (connection, id), state: &state, changes: &changes, releases: &releases)
                    break
                }
                // Figures only the server knows: uptime, and which sessions are connected.
                self.collect(output, replyTo: nil, state: &state, changes: &changes, releases: &releases)
                var response = reply.wire
                if command == .status {
                    response.volumeStatus.uptimeNanos = (now - self.startedAt).nanosecondsClamped
                }
                if case .sessionList? = response.result {
                    for index in response.sessionList.sessions.indices {
                        let session = SessionID(rawValue: response.sessionList.sessions[index].session)
                        response.sessionList.sessions[index].connected = state.sessionConnections[session] != nil
                    }
                }
                releases.append(.reply(connection, id, response))
            }
            self.commit(changes, releases)
        }
    }

    /// Answers at once (no barrier), counting the request.
    func answer(_ connection: Connection, _ id: UInt64, _ operation: String, _ reply: Reply) {
        self.metrics?.request(operation, reply)
        connection.reply(id, reply)
    }

    /// Counts an answered request; a pending one (`nil`) is counted at its completion.
    func count(_ operation: String, _ reply: Reply?) {
        if let metrics = self.metrics, let reply { metrics.request(operation, reply) }
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

    /// Runs every due deadline and schedules the next tick.
    func tick() {
        self.state.withLock { state in
            state.scheduledTick = nil
            guard !state.shuttingDown else { return }
            let now = Self.now()
            let output = state.coordinator.tick(at: now)
            var changes = ChangeSet()
            var releases: [Release] = []
            self.collect(output, replyTo: nil, state: &state, changes: &changes, releases: &releases)
            self.commit(changes, releases)
            // A storm is fired in slices of maxTimersPerStep, one slice per `tickPacing`,
            // so that its commits leave room for everyone else's.
            if !state.coordinator.isSettled, let scheduled = state.scheduledTick, scheduled.at <= now {
                scheduled.task.cancel()
                state.scheduledTick = nil
                self.schedule(now + self.tickPacing, state: &state)
            }
        }
    }

    /// Makes sure a tick runs at `deadline` (an earlier schedule stands).
    func schedule(_ deadline: Instant?, state: inout State) {
        guard let deadline, !state.shuttingDown else { return }
        if let scheduled = state.scheduledTick {
            // While a storm is being paced, a request's step does not pull the next
            // slice forward.
            if scheduled.at <= deadline || !state.coordinator.isSettled { return }
            scheduled.task.cancel()
        }
        let task = self.timerLoop.scheduleTask(deadline: NIODeadline.uptimeNanoseconds(deadline.nanoseconds)) { [self] in
            self.tick()
        }
        state.scheduledTick = (deadline, task)
    }

    /// Starts the timer: schedules the Coordinator's first deadline.
    func start() {
        self.state.withLock { state in self.schedule(state.coordinator.nextDeadline, state: &state) }
    }

    // MARK: - Connections

    func attach(_ session: SessionID, to connection: Connection, state: inout State) {
        if let previous = state.sessionConnections[session], previous !== connection {
            previous.state.withLock { _ = $0.sessions.remove(session) }
            // Its waiters get nothing more; a retransmission on the new connection joins.
            for (key, waiters) in state.waiters where key.session == session {
                state.waiters[key] = waiters.filter { $0.connection !== previous }
            }
            previous.close(.superseded, "session \(session) was resumed on another connection")
        }
        state.sessionConnections[session] = connection
        connection.state.withLock { _ = $0.sessions.insert(session) }
    }

    /// The connection is gone: its sessions stay (they expire unless resumed), their
    /// waits are cancelled, and its subscriptions end.
    func connectionClosed(_ connection: Connection) {
        self.state.withLock { state in
            let key = ObjectIdentifier(connection)
            state.fenceSubscribers[key] = nil
            state.eventWatchers[key] = nil
            var changes = ChangeSet()
            var releases: [Release] = []
            for session in connection.sessions where state.sessionConnections[session] === connection {
                state.sessionConnections[session] = nil
                let output = state.coordinator.handle(Request(caller: connection.caller, session: session, command: .cancelWaits), at: Self.now())
                self.collect(output, replyTo: nil, state: &state, changes: &changes, releases: &releases)
            }
            for (waitKey, waiters) in state.waiters where waiters.contains(where: { $0.connection === connection }) {
                let rest = waiters.filter { $0.connection !== connection }
                state.waiters[waitKey] = rest.isEmpty ? nil : rest
            }
            if !state.shuttingDown { self.commit(changes, releases) }
        }
    }

    // MARK: - Effects

    /// Routes a step's effects: recalls now, the rest into `releases` for after the commit.
    func collect(
        _ output: Output,
        replyTo destination: (Connection, UInt64)?,
        state: inout State,
        changes: inout ChangeSet,
        releases: inout [Release]
    ) {
        let effects = output.effects
        changes.rows.append(contentsOf: effects.changes.rows)
        if let metrics = self.metrics, !effects.observations.isEmpty { metrics.record(effects.observations) }
        if let destination, let reply = output.reply {
            releases.append(.reply(destination.0, destination.1, reply.wire))
        }
        for recall in effects.recalls {
            state.sessionConnections[recall.session]?.push(recall.push, session: recall.session)
        }
        for completion in effects.completions {
            let key = WaitKey(session: completion.session, slot: completion.tag.slot, sequence: completion.tag.sequence)
            guard let waiters = state.waiters.removeValue(forKey: key) else { continue }
            if let first = waiters.first { self.count(first.operation, completion.reply) }
            let response = completion.reply.wire
            for waiter in waiters { releases.append(.reply(waiter.connection, waiter.id, response)) }
        }
        for push in effects.pushes {
            if let connection = state.sessionConnections[push.session] { releases.append(.push(connection, push.push, push.session)) }
        }
        if !effects.fences.isEmpty {
            let subscribers = Array(state.fenceSubscribers.values)
            for fence in effects.fences { releases.append(.fence(subscribers, fence)) }
        }
        if !effects.events.isEmpty && !state.eventWatchers.isEmpty {
            let watchers = Array(state.eventWatchers.values)
            for event in effects.events { releases.append(.event(watchers, event)) }
        }
        for session in effects.endedSessions {
            if let connection = state.sessionConnections.removeValue(forKey: session) {
                connection.state.withLock { _ = $0.sessions.remove(session) }
            }
        }
        self.schedule(effects.nextDeadline, state: &state)
    }

    /// Queues the change set; the releases run in order once it is durable.
    func commit(_ changes: ChangeSet, _ releases: [Release]) {
        if releases.isEmpty {
            if !changes.isEmpty { self.journal.enqueue(changes) }
            return
        }
        self.journal.enqueue(changes) {
            for release in releases { release.run() }
        }
    }

    // MARK: - Shutdown

    /// Refuses new requests, answers waiting ones with `unavailable`, stops the timer,
    /// and returns once everything released so far is durable and sent to the outboxes.
    func shutDown() async {
        self.state.withLock { state in
            state.shuttingDown = true
            state.scheduledTick?.task.cancel()
            state.scheduledTick = nil
            let unavailable = Reply.failure(LeaseholdError(code: .unavailable, message: "the server is shutting down; retry this request after it restarts"))
            var changes = ChangeSet()
            var releases: [Release] = []
            let sessions = Set(state.waiters.keys.map(\.session))
            for session in sessions {
                guard let connection = state.sessionConnections[session] else { continue }
                let output = state.coordinator.handle(Request(caller: connection.caller, session: session, command: .cancelWaits), at: Self.now())
                changes.rows.append(contentsOf: output.effects.changes.rows)
            }
            for (_, waiters) in state.waiters {
                for waiter in waiters { releases.append(.reply(waiter.connection, waiter.id, unavailable.wire)) }
            }
            state.waiters.removeAll()
            self.commit(changes, releases)
        }
        await self.journal.commit(ChangeSet())
    }

    // MARK: - Admin figures

    /// Time since this server started.
    var uptime: Duration { Self.now() - self.startedAt }

    /// Sets the metrics' gauges from the Coordinator, when the endpoint is scraped.
    func sampleMetrics(connections: Int) {
        guard let metrics = self.metrics else { return }
        let (status, connected) = self.state.withLock { ($0.coordinator.volumeStatus, $0.sessionConnections.count) }
        metrics.sample(status, connectedSessions: connected, connections: connections)
    }

    func isConnected(_ session: SessionID) -> Bool {
        self.state.withLock { $0.sessionConnections[session] != nil }
    }
}
