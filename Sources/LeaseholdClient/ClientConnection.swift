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
/// which makes them exactly-once; other requests surface `unavailable`.
struct ConnectionLost: Error {}

/// Something that keeps state on the server across reconnections: a session (resumed),
/// the fence feed and the event stream (subscribed again).
protocol ConnectionListener: AnyObject, Sendable {
    /// The connection is back (after `Hello`); re-establish server state with internal
    /// requests before ordinary requests flow again.
    func reconnected(_ connection: ClientConnection, epoch: UInt64) async
    /// A push for this listener.
    func received(_ push: WirePush)
    /// The client was closed: stop for good.
    func clientClosed()
}

extension ConnectionListener {
    func clientClosed() {}
}

/// One logical connection to the server that survives reconnects.
///
/// Lifecycle: `open` makes the first connection (its failure is the caller's error);
/// afterwards a background task reads frames, and when the connection drops it fails
/// the requests in flight with `ConnectionLost`, reconnects with exponential backoff,
/// says `Hello`, lets every listener resume its server state, and only then lets
/// ordinary requests through again. `close` ends it for good.
final class ClientConnection: Sendable {
    struct Link: Sendable {
        /// Requests wait here for the connection's writer task, which sends everything
        /// queued at once as one batch.
        let outbox: Outbox<ByteBuffer>
        let channel: any Channel
        let generation: UInt64
    }

    enum Phase {
        case connecting
        case resuming(Link)
        case ready(Link)
        case closed
    }

    struct State {
        var phase: Phase = .connecting
        var nextID: UInt64 = 0
        var pending: [UInt64: (generation: UInt64, promise: EventLoopPromise<WireResponse>)] = [:]
        var readyWaiters: [UInt64: CheckedContinuation<Link, any Error>] = [:]
        var nextWaiter: UInt64 = 0
        var hello: ServerHello?
        var sessionListeners: [SessionID: any ConnectionListener] = [:]
        var otherListeners: [ObjectIdentifier: any ConnectionListener] = [:]
        var generation: UInt64 = 0
        var lastClosing: String?
    }

    /// Requests queued for the writer before the connection counts as stuck and is cut
    /// (and reconnected): far above any number of requests in flight.
    static let maxQueuedRequests = 65_536

    let configuration: ClientConfiguration
    let sslContext: NIOSSLContext
    let group: any EventLoopGroup
    let logger: Logger
    let state = Mutex(State())

    private init(configuration: ClientConfiguration, sslContext: NIOSSLContext, group: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.sslContext = sslContext
        self.group = group
        self.logger = logger
    }

    /// Connects, says `Hello`, and starts the background reader and reconnector.
    static func open(_ configuration: ClientConfiguration, logger: Logger) async throws -> ClientConnection {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv13
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
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await connection.connect()
        } catch {
            throw LeaseholdError(code: .unavailable, message: "cannot connect to \(configuration.host):\(configuration.port): \(error)")
        }
        do {
            try await connection.start(with: channel)
        } catch {
            // The background task sees the closed state and stops.
            connection.close()
            if let error = error as? LeaseholdError { throw error }
            throw LeaseholdError(code: .unavailable, message: "the TLS handshake or Hello with \(configuration.host):\(configuration.port) failed: \(error)")
        }
        return connection
    }

    var hello: ServerHello { self.state.withLock { $0.hello! } }

    // MARK: - Connecting

    func connect() async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        let context = self.sslContext
        let host = self.configuration.host
        let isAddress = host.contains(":") || host.allSatisfy { $0.isNumber || $0 == "." }
        let maxFrame = self.configuration.maxFrameBytes
        return try await ClientBootstrap(group: self.group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .connect(host: host, port: self.configuration.port) { channel in
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

    /// Says hello on a fresh channel, then serves it in the background; the first
    /// connection's handshake errors are thrown to the caller.
    func start(with channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async throws {
        let handshake = AsyncStream<Result<Void, any Error>>.makeStream()
        Task {
            await self.serve(channel, handshake: handshake.continuation)
            await self.reconnectLoop()
        }
        for await result in handshake.stream {
            try result.get()
            return
        }
    }

    func reconnectLoop() async {
        var backoff = self.configuration.reconnectBackoff.initial
        while true {
            if case .closed = self.state.withLock({ $0.phase }) { break }
            try? await Task.sleep(for: backoff)
            if case .closed = self.state.withLock({ $0.phase }) { break }
            do {
                let channel = try await self.connect()
                let (stream, continuation) = AsyncStream<Result<Void, any Error>>.makeStream()
                let served = Task { await self.serve(channel, handshake: continuation) }
                var succeeded = false
                for await result in stream {
                    if case .success = result { succeeded = true }
                    break
                }
                if succeeded { backoff = self.configuration.reconnectBackoff.initial }
                await served.value
                if !succeeded { backoff = Swift.min(backoff * 2, self.configuration.reconnectBackoff.maximum) }
            } catch {
                self.logger.debug("reconnect failed", metadata: ["error": "\(error)"])
                backoff = Swift.min(backoff * 2, self.configuration.reconnectBackoff.maximum)
            }
        }
    }

    /// Runs one channel: hello, resume, then read until it closes.
    func serve(_ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, handshake: AsyncStream<Result<Void, any Error>>.Continuation) async {
        do {
            try await channel.executeThenClose { inbound, outbound in
                var frames = inbound.makeAsyncIterator()
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
                let hello = ServerHello(wire: ok)
                let outbox = Outbox<ByteBuffer>(limit: Self.maxQueuedRequests)
                let underlying = channel.channel
                outbox.onOverflow { underlying.close(promise: nil) }
                let link = self.state.withLock { state -> Link in
                    state.generation += 1
                    state.hello = hello
                    state.lastClosing = nil
                    let link = Link(outbox: outbox, channel: underlying, generation: state.generation)
                    state.phase = .resuming(link)
                    return link
                }
                handshake.yield(.success(()))
                handshake.finish()
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
                        group.cancelAll()
                    }
                    while let frame = try await frames.next() {
                        self.dispatch(frame)
                    }
                }
            }
        } catch {
            handshake.yield(.failure(error))
            handshake.finish()
            self.logger.debug("connection ended", metadata: ["error": "\(error)"])
        }
        self.connectionLost()
    }

    /// Lets every listener re-establish its state, then opens the gate.
    func resumeListeners(link: Link, epoch: UInt64) async {
        let listeners = self.state.withLock { Array($0.sessionListeners.values) + Array($0.otherListeners.values) }
        for listener in listeners { await listener.reconnected(self, epoch: epoch) }
        let waiters = self.state.withLock { state -> [CheckedContinuation<Link, any Error>] in
            guard case .resuming(let current) = state.phase, current.generation == link.generation else { return [] }
            state.phase = .ready(link)
            defer { state.readyWaiters.removeAll() }
            return Array(state.readyWaiters.values)
        }
        for waiter in waiters { waiter.resume(returning: link) }
    }

    func connectionLost() {
        let pending = self.state.withLock { state -> [EventLoopPromise<WireResponse>] in
            if case .closed = state.phase {} else { state.phase = .connecting }
            defer { state.pending.removeAll() }
            return state.pending.values.map(\.promise)
        }
        for promise in pending { promise.fail(ConnectionLost()) }
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
        let channel: (any Channel)? = self.state.withLock { state in
            switch state.phase {
            case .resuming(let link), .ready(let link): link.channel
            default: nil
            }
        }
        channel?.close(promise: nil)
    }

    // MARK: - Requests

    /// The current link once requests may flow (`internal` requests may flow while
    /// listeners resume).
    func link(duringResume: Bool) async throws -> Link {
        let immediate = try self.state.withLock { state -> Link? in
            switch state.phase {
            case .ready(let link): return link
            case .resuming(let link) where duringResume: return link
            case .closed: throw LeaseholdError(code: .unavailable, message: "the client is closed")
            default: return nil
            }
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
            waiter?.resume(
                throwing: LeaseholdError(
                    code: .unavailable,
                    message: "not connected to \(self.configuration.host):\(self.configuration.port) for \(timeout)" + (self.closingMessage.map { " (\($0))" } ?? "")
                )
            )
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            let ready = self.state.withLock { state -> Result<Link, any Error>? in
                switch state.phase {
                case .ready(let link): return .success(link)
                case .closed: return .failure(LeaseholdError(code: .unavailable, message: "the client is closed"))
                default:
                    state.readyWaiters[id] = continuation
                    return nil
                }
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    /// Sends one request and waits for its response.
    /// - Throws: `ConnectionLost` if the connection drops first.
    func send(_ request: WireRequest, duringResume: Bool = false) async throws -> WireResponse {
        let link = try await self.link(duringResume: duringResume)
        let promise = link.channel.eventLoop.makePromise(of: WireResponse.self)
        let id = self.state.withLock { state -> UInt64? in
            // The link may have died between the two locks.
            switch state.phase {
            case .ready(let current), .resuming(let current):
                guard current.generation == link.generation else { return nil }
            default:
                return nil
            }
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
        return try await promise.futureResult.get()
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
            var channel: (any Channel)?
            switch state.phase {
            case .resuming(let link), .ready(let link): channel = link.channel
            default: break
            }
            state.phase = .closed
            defer { state.readyWaiters.removeAll() }
            return (channel, Array(state.readyWaiters.values))
        }
        for waiter in waiters { waiter.resume(throwing: LeaseholdError(code: .unavailable, message: "the client is closed")) }
        channel?.close(promise: nil)
    }
}
