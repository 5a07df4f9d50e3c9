import Foundation
import LeaseholdCore
import LeaseholdMessages
import LeaseholdWire
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// The connection was lost before the reply arrived; the request may or may not have
/// run. Session mutations are retried with their (slot, sequence) after the reconnect,
/// which makes them exactly-once; other requests surface `unavailable`. `notRun`: the
/// node answered `notLeader`, so the request did not run and may be sent again as is.
struct ConnectionLost: Error {
    var notRun = false
}

/// How a listener's re-establishment went.
enum ResumeOutcome {
    case done
    /// The node cannot take it now (it stopped leading): drop this connection, try
    /// another.
    case retry
}

/// Something that keeps state on the server across reconnections: a session (resumed),
/// the fence feed and the event stream (subscribed again).
protocol ConnectionListener: AnyObject, Sendable {
    /// The connection is back (after `Hello`); re-establish server state with internal
    /// requests before ordinary requests flow again.
    func reconnected(_ connection: ClientConnection, epoch: UInt64) async -> ResumeOutcome
    /// A push for this listener.
    func received(_ push: WirePush)
    /// The client was closed: stop for good.
    func clientClosed()
}

extension ConnectionListener {
    func clientClosed() {}
}

/// One logical connection to the server, or to whichever node of a cluster leads, that
/// survives reconnects and failovers.
///
/// ``ConnectionStateMachine`` decides (which endpoint, when, whether a node that answered
/// is the one to use); this class runs its actions: connects, says `Hello`, lets every
/// listener resume its server state before ordinary requests flow, reads frames, and
/// when the connection drops fails the requests in flight with `ConnectionLost` and asks
/// the machine what next. `close` ends it for good.
final class ClientConnection: Sendable {
    struct Link: Sendable {
        /// Requests wait here for the connection's writer task, which sends everything
        /// queued at once as one batch.
        let outbox: Outbox<ByteBuffer>
        let channel: any Channel
        let generation: UInt64
        /// The term of the node's hello.
        let term: UInt64
        /// Whether the node said it is a standby (accepted with `acceptsStandby`).
        let isStandby: Bool
        /// Whether the node said it leads a cluster.
        let isLeader: Bool
    }

    struct State {
        var machine: ConnectionStateMachine
        /// The accepted connection, while the machine is resuming or ready on it.
        var link: Link?
        var nextID: UInt64 = 0
        var pending: [UInt64: (generation: UInt64, promise: EventLoopPromise<WireResponse>)] = [:]
        var readyWaiters: [UInt64: CheckedContinuation<Link, any Error>] = [:]
        var nextWaiter: UInt64 = 0
        var hello: ServerHello?
        var sessionListeners: [SessionID: any ConnectionListener] = [:]
        var otherListeners: [ObjectIdentifier: any ConnectionListener] = [:]
        var lastClosing: String?

        /// The link requests may use now.
        func usable(duringResume: Bool) -> Link? {
            switch self.machine.phase {
            case .ready(let generation) where self.link?.generation == generation: self.link
            case .resuming(let generation) where duringResume && self.link?.generation == generation: self.link
            default: nil
            }
        }
    }

    /// Requests queued for the writer before the connection counts as stuck and is cut
    /// (and reconnected): far above any number of requests in flight.
    static let maxQueuedRequests = 65_536

    let configuration: ClientConfiguration
    let sslContext: NIOSSLContext
    let group: any EventLoopGroup
    let logger: Logger
    let state: Mutex<State>

    private init(configuration: ClientConfiguration, sslContext: NIOSSLContext, group: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.sslContext = sslContext
        self.group = group
        self.logger = logger
        let machine = ConnectionStateMachine(
            endpoints: configuration.endpoints, backoff: configuration.reconnectBackoff, acceptsStandby: configuration.acceptsStandby,
            seed: configuration.jitterSeed ?? UInt64.random(in: 0...UInt64.max)
        )
        self.state = Mutex(State(machine: machine))
    }

    /// Connects to a node that leads (or serves alone), says `Hello`, and starts the
    /// background reader and reconnector.
    static func open(_ configuration: ClientConfiguration, logger: Logger) async throws -> ClientConnection {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv13
        // A connection the client drops (a node that stopped answering) must not wait 5 s
        // for the peer's close_notify.
        tls.shutdownTimeout = .milliseconds(200)
        do {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(configuration.caPath))
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(configuration.certificatePath).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: configuration.keyPath, format: .pem))
        } catch {
            throw LeaseholdError.invalidArgument(
                "cannot load the client certificates (cert \(configuration.certificatePath), key \(configuration.keyPath), CA \(configuration.caPath)): \(error)"
            )
        }
        let context = try NIOSSLContext(configuration: tls)
        let connection = ClientConnection(configuration: configuration, sslContext: context, group: configuration.eventLoopGroup, logger: logger)
        let (opened, continuation) = AsyncStream<Result<Void, LeaseholdError>>.makeStream()
        Task { await connection.run(opened: continuation) }
        for await result in opened {
            try result.get()
            return connection
        }
        throw LeaseholdError(code: .unavailable, message: "the client is closed")
    }

    var hello: ServerHello { self.state.withLock { $0.hello! } }

    /// The newest term any node told this client of.
    var newestTerm: UInt64 { self.state.withLock { $0.machine.newestTerm } }

    // MARK: - Running the machine

    /// Runs the machine's actions until it stops; the first accepted connection (or the
    /// failure to make one) is told to `opened`.
    func run(opened: AsyncStream<Result<Void, LeaseholdError>>.Continuation) async {
        var action = self.state.withLock { $0.machine.start(now: .now, openTimeout: self.configuration.reconnectTimeout) }
        while true {
            switch action {
            case .connect(let endpoint, let pause):
                if pause > .zero { try? await Task.sleep(for: pause) }
                if self.isClosed { action = .stop; continue }
                action = await self.attempt(endpoint, opened: opened)
            case .fail(let error):
                opened.yield(.failure(error))
                opened.finish()
                return
            case .resume, .stop:
                opened.finish()
                return
            }
        }
    }

    var isClosed: Bool { self.state.withLock { $0.machine.phase == .closed } }

    /// One attempt with `endpoint`: connect, `Hello`, and, if the machine accepts the
    /// node, serve the connection until it closes. Returns the machine's next action.
    func attempt(_ endpoint: HostPort, opened: AsyncStream<Result<Void, LeaseholdError>>.Continuation) async -> ConnectionStateMachine.Action {
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await self.connect(endpoint)
        } catch {
            self.logger.debug("cannot connect", metadata: ["endpoint": "\(endpoint)", "error": "\(error)"])
            return self.state.withLock { $0.machine.attemptFailed(.unreachable("\(error)"), now: .now) }
        }
        var next: ConnectionStateMachine.Action?
        var ended: (any Error)?
        // A node that accepts the TCP connection and then says nothing (stopped, or cut
        // off) must not hold the client: the handshake has a deadline.
        let underlying = channel.channel
        let timeout = self.configuration.handshakeTimeout
        let handshakeTimer = Task {
            try await Task.sleep(for: timeout)
            underlying.close(promise: nil)
        }
        do {
            try await channel.executeThenClose { inbound, outbound in
                var frames = inbound.makeAsyncIterator()
                let hello: ServerHello
                do {
                    defer { handshakeTimer.cancel() }
                    hello = try await self.sayHello(inbound: &frames, outbound: outbound)
                } catch let error as LeaseholdError where error.code != .unavailable && error.code != .protocolError {
                    next = self.state.withLock { $0.machine.attemptFailed(.refused(error), now: .now) }
                    return
                }
                let decided = self.state.withLock { state -> ConnectionStateMachine.Action in
                    let action = state.machine.helloAnswered(hello, now: .now)
                    if case .resume = action { state.hello = hello }
                    return action
                }
                guard case .resume(let generation) = decided else {
                    self.logger.debug("not the leader", metadata: ["endpoint": "\(endpoint)", "role": "\(hello.role)"])
                    next = decided
                    return
                }
                opened.yield(.success(()))
                try await self.serve(inbound: &frames, outbound: outbound, channel: channel.channel, generation: generation, hello: hello)
            }
        } catch {
            self.logger.debug("connection ended", metadata: ["endpoint": "\(endpoint)", "error": "\(error)"])
            ended = error
        }
        if let next { return next }
        let (pending, action) = self.state.withLock { state -> ([EventLoopPromise<WireResponse>], ConnectionStateMachine.Action) in
            let generation = state.link?.generation
            state.link = nil
            defer { state.pending.removeAll() }
            let action: ConnectionStateMachine.Action =
                if let generation {
                    state.machine.connectionLost(generation: generation, now: .now)
                } else {
                    // The hello itself failed: a TLS refusal (certificates) is the node's
                    // answer; otherwise it took the connection and said nothing in time.
                    if let tls = ended, tls is NIOSSLError || tls is BoringSSLError, Self.isCertificateRefusal("\(tls)") {
                        state.machine.attemptFailed(.tlsRefused("the TLS handshake failed: \(tls)"), now: .now)
                    } else {
                        state.machine.attemptFailed(.silent(state.lastClosing ?? "no answer to Hello"), now: .now)
                    }
                }
            return (state.pending.values.map(\.promise), action)
        }
        for promise in pending { promise.fail(ConnectionLost()) }
        return action
    }

    func connect(_ endpoint: HostPort) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        let context = self.sslContext
        let host = endpoint.host
        let isAddress = host.contains(":") || host.allSatisfy { $0.isNumber || $0 == "." }
        let maxFrame = self.configuration.maxFrameBytes
        return try await ClientBootstrap(group: self.group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(TimeAmount(self.configuration.connectTimeout))
            .connect(host: host, port: endpoint.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    // An IP literal is not a hostname: verification matches the
                    // certificate's IP names against the peer address instead.
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: isAddress ? nil : host))
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameLength: maxFrame)))
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder()))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
    }

    /// Sends `Hello` and reads the answer.
    /// - Throws: the server's refusal, or `unavailable`/`protocolError` when there is no
    ///   proper answer.
    func sayHello(
        inbound frames: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) async throws -> ServerHello {
        var helloRequest = WireRequest()
        helloRequest.hello.protocolMajor = WireProtocol.major
        helloRequest.hello.protocolMinor = WireProtocol.minor
        helloRequest.hello.clientName = self.configuration.clientName
        try await outbound.write(EnvelopeCodec.encode(EnvelopeCodec.request(id: 1, helloRequest)))
        guard let frame = try await frames.next() else {
            throw LeaseholdError(code: .unavailable, message: self.closingMessage ?? "the server closed the connection during the handshake")
        }
        let envelope = try EnvelopeCodec.decode(frame)
        guard case .response(let response)? = envelope.body else {
            throw LeaseholdError.protocolError(self.closingMessage(from: envelope) ?? "the server did not answer Hello")
        }
        if case .error(let error)? = response.result { throw LeaseholdError(wire: error) }
        guard case .helloOk(let ok)? = response.result else { throw LeaseholdError.protocolError("the server answered Hello with something else") }
        return ServerHello(wire: ok)
    }

    /// Serves an accepted connection: the writer, the listeners' resume, and the reader
    /// until it closes.
    func serve(
        inbound frames: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
        channel underlying: any Channel, generation: UInt64, hello: ServerHello
    ) async throws {
        let outbox = Outbox<ByteBuffer>(limit: Self.maxQueuedRequests)
        outbox.onOverflow { underlying.close(promise: nil) }
        let link = Link(outbox: outbox, channel: underlying, generation: generation, term: hello.term, isStandby: hello.role == .standby, isLeader: hello.role == .leader)
        let current = self.state.withLock { state -> Bool in
            // Closed (or dropped) between the hello and here: nothing to serve.
            guard state.machine.phase == .resuming(generation: generation) else { return false }
            state.link = link
            state.lastClosing = nil
            return true
        }
        guard current else {
            underlying.close(promise: nil)
            return
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while let batch = await outbox.next() {
                    do {
                        try await outbound.write(contentsOf: batch)
                    } catch {
                        underlying.close(promise: nil)
                        break
                    }
                }
            }
            group.addTask { await self.resumeListeners(link: link, epoch: hello.epoch) }
            defer {
                outbox.finish()
                // The reader ended: nothing more is answered on this link. Fail what waits
                // now, before the group waits for its tasks (a listener's resume among them).
                self.failPending(generation: generation)
                group.cancelAll()
            }
            while let frame = try await frames.next() {
                self.dispatch(frame)
            }
        }
    }

    /// Lets every listener re-establish its state, then opens the gate; a listener the
    /// node could not take drops the connection.
    func resumeListeners(link: Link, epoch: UInt64) async {
        let listeners = self.state.withLock { Array($0.sessionListeners.values) + Array($0.otherListeners.values) }
        for listener in listeners {
            if await listener.reconnected(self, epoch: epoch) == .retry {
                self.drop(generation: link.generation, hint: nil)
                return
            }
        }
        let waiters = self.state.withLock { state -> [CheckedContinuation<Link, any Error>] in
            guard state.machine.resumed(generation: link.generation) else { return [] }
            defer { state.readyWaiters.removeAll() }
            return Array(state.readyWaiters.values)
        }
        for waiter in waiters { waiter.resume(returning: link) }
    }

    /// The node of `generation` does not lead (it said `notLeader`, or `unavailable` as a
    /// leader, or could not take a listener back): drop that connection (the machine
    /// tries `hint` next).
    func drop(generation: UInt64, hint: String?) {
        let channel = self.state.withLock { state -> (any Channel)? in
            guard state.machine.notLeader(generation: generation, hint: hint) else { return nil }
            return state.link?.channel
        }
        guard let channel else { return }
        // What waits on it is lost: retried on the next connection at once, not after the close.
        self.failPending(generation: generation)
        channel.close(promise: nil)
    }

    /// Whether a TLS failure is about certificates (ours refused by an alert, or the
    /// node's not trusted), not a peer that closed the connection (EOF, unclean shutdown).
    static func isCertificateRefusal(_ description: String) -> Bool {
        description.contains("CERTIFICATE") || description.contains("ALERT")
    }

    /// Fails the requests waiting on `generation` with `ConnectionLost`.
    func failPending(generation: UInt64) {
        let failed = self.state.withLock { state -> [EventLoopPromise<WireResponse>] in
            let keys = state.pending.filter { $0.value.generation == generation }.map(\.key)
            return keys.compactMap { state.pending.removeValue(forKey: $0)?.promise }
        }
        for promise in failed { promise.fail(ConnectionLost()) }
    }

    /// A leader answered `unavailable` on `generation`: it takes nothing new, but replies
    /// to earlier requests may still come (a handover drains them). No new request goes
    /// there; the connection closes when the node closes it, or after a short while.
    func drain(generation: UInt64) {
        let channel = self.state.withLock { state -> (any Channel)? in
            guard state.machine.notLeader(generation: generation, hint: nil) else { return nil }
            return state.link?.channel
        }
        guard let channel else { return }
        channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
    }

    var closingMessage: String? { self.state.withLock { $0.lastClosing } }

    func closingMessage(from envelope: WireEnvelope) -> String? {
        if case .push(let push)? = envelope.body, case .closing(let closing)? = push.body { return closing.message }
        return nil
    }

    // MARK: - Frames

    func dispatch(_ frame: ByteBuffer) {
        guard let envelope = try? EnvelopeCodec.decode(frame) else {
            self.logger.warning("the server sent a frame that is not an envelope; dropping the connection")
            self.cut()
            return
        }
        switch envelope.body {
        case .response(let response)?:
            let promise = self.state.withLock { $0.pending.removeValue(forKey: envelope.id)?.promise }
            promise?.succeed(response)
        case .push(let push)?:
            switch push.body {
            case .sessionPush(let sessionPush)?:
                let listener = self.state.withLock { $0.sessionListeners[SessionID(rawValue: sessionPush.session)] }
                listener?.received(push)
            case .closing(let closing)?:
                self.state.withLock { $0.lastClosing = "\(closing.reason): \(closing.message)" }
                // Another connection took one of this connection's sessions: it is theirs now.
                if closing.reason == .superseded, closing.session != 0,
                    let session = self.state.withLock({ $0.sessionListeners[SessionID(rawValue: closing.session)] }) as? LeaseholdSession
                {
                    session.superseded()
                }
                self.logger.info("the server is closing the connection", metadata: ["reason": "\(closing.reason)", "message": "\(closing.message)"])
            case .fence?, .event?:
                let listeners = self.state.withLock { Array($0.otherListeners.values) }
                for listener in listeners { listener.received(push) }
            case nil:
                break
            }
        case .request?, nil:
            break
        }
    }

    /// Drops the current channel (the reconnect loop makes a new one).
    func cut() {
        self.state.withLock { $0.link?.channel }?.close(promise: nil)
    }

    // MARK: - Requests

    /// The current link once requests may flow (`internal` requests may flow while
    /// listeners resume).
    func link(duringResume: Bool) async throws -> Link {
        let immediate = try self.state.withLock { state -> Link? in
            if state.machine.phase == .closed { throw LeaseholdError(code: .unavailable, message: "the client is closed") }
            return state.usable(duringResume: duringResume)
        }
        if let immediate { return immediate }
        if duringResume { throw ConnectionLost() }
        let id = self.state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        let timeout = self.configuration.reconnectTimeout
        let timer = Task {
            try await Task.sleep(for: timeout)
            let waiter = self.state.withLock { $0.readyWaiters.removeValue(forKey: id) }
            let names = self.configuration.endpoints.map(\.description).joined(separator: ", ")
            waiter?.resume(
                throwing: LeaseholdError(
                    code: .unavailable,
                    message: "not connected to a leader (\(names)) for \(timeout)" + (self.closingMessage.map { " (\($0))" } ?? "")
                )
            )
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            let ready = self.state.withLock { state -> Result<Link, any Error>? in
                if state.machine.phase == .closed { return .failure(LeaseholdError(code: .unavailable, message: "the client is closed")) }
                if let link = state.usable(duringResume: false) { return .success(link) }
                state.readyWaiters[id] = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    /// Sends one request and waits for its response.
    /// - Throws: `ConnectionLost` if the connection drops first, or if a node that was
    ///   leading answers `notLeader` (then the connection is dropped for another node, and
    ///   the request did not run) or `unavailable` (dropped likewise; it may have run). A
    ///   standby accepted with `acceptsStandby` answers `notLeader` to the caller.
    func send(_ request: WireRequest, duringResume: Bool = false) async throws -> WireResponse {
        try await self.sendTracked(request, duringResume: duringResume).response
    }

    /// ``send(_:duringResume:)`` that also tells the term of the node that answered.
    /// - Parameter answerWithin: a request the node answers at once when it is alive
    ///   (a renewal): without an answer in this time the connection is dropped as dead
    ///   (the caller retries on the next one).
    func sendTracked(_ request: WireRequest, duringResume: Bool = false, answerWithin: Duration? = nil) async throws -> (response: WireResponse, term: UInt64) {
        let link = try await self.link(duringResume: duringResume)
        let promise = link.channel.eventLoop.makePromise(of: WireResponse.self)
        // Re-establishing state on a node that then says nothing must not hold the client.
        if let deadline = answerWithin ?? (duringResume ? Swift.max(self.configuration.handshakeTimeout, .seconds(5)) : nil) {
            let generation = link.generation
            let timer = link.channel.eventLoop.scheduleTask(in: TimeAmount(deadline)) { [weak self] in
                self?.drop(generation: generation, hint: nil)
            }
            promise.futureResult.whenComplete { _ in timer.cancel() }
        }
        let id = self.state.withLock { state -> UInt64? in
            // The link may have died between the two locks.
            guard state.link?.generation == link.generation else { return nil }
            state.nextID += 1
            // Id 1 is the hello's.
            let id = state.nextID + 1
            state.pending[id] = (link.generation, promise)
            return id
        }
        guard let id else {
            promise.fail(ConnectionLost())
            throw ConnectionLost()
        }
        if !link.outbox.send(EnvelopeCodec.encode(EnvelopeCodec.request(id: id, request))) {
            let registered = self.state.withLock { $0.pending.removeValue(forKey: id) }
            registered?.promise.fail(ConnectionLost())
        }
        let response = try await promise.futureResult.get()
        if case .error(let wire)? = response.result {
            let error = LeaseholdError(wire: wire)
            // A standby taken on purpose refuses what it cannot answer: the caller hears it.
            if error.code == .notLeader && !link.isStandby {
                self.drop(generation: link.generation, hint: error.details.leaderEndpoint)
                throw ConnectionLost(notRun: true)
            }
            // A leader that lost etcd or its lease, or hands over, answers `unavailable`:
            // another node leads or will. The request may have reached etcd, so it counts
            // as lost (session mutations are retried with their slot and sequence); the
            // link drains: earlier requests' replies may still come.
            if error.code == .unavailable && link.isLeader {
                self.drain(generation: link.generation)
                throw ConnectionLost()
            }
        }
        return (response, link.term)
    }

    // MARK: - Listeners

    func register(session: SessionID, _ listener: any ConnectionListener) {
        self.state.withLock { $0.sessionListeners[session] = listener }
    }

    func unregister(session: SessionID) {
        self.state.withLock { _ = $0.sessionListeners.removeValue(forKey: session) }
    }

    func register(_ listener: any ConnectionListener) {
        self.state.withLock { $0.otherListeners[ObjectIdentifier(listener)] = listener }
    }

    func unregister(_ listener: any ConnectionListener) {
        self.state.withLock { _ = $0.otherListeners.removeValue(forKey: ObjectIdentifier(listener)) }
    }

    // MARK: - Closing

    func close() {
        let listeners = self.state.withLock { Array($0.sessionListeners.values) + Array($0.otherListeners.values) }
        for listener in listeners { listener.clientClosed() }
        let (channel, waiters) = self.state.withLock { state -> ((any Channel)?, [CheckedContinuation<Link, any Error>]) in
            state.machine.close()
            defer { state.readyWaiters.removeAll() }
            return (state.link?.channel, Array(state.readyWaiters.values))
        }
        for waiter in waiters { waiter.resume(throwing: LeaseholdError(code: .unavailable, message: "the client is closed")) }
        channel?.close(promise: nil)
    }
}
