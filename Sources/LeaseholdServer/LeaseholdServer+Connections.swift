import Foundation
import LeaseholdCore
import LeaseholdMessages
import LeaseholdWire
import Logging
import NIOCore
import NIOSSL

// MARK: - One connection
//
// A connection starts with the TLS handshake (a client certificate signed by the
// configured CA is required), then a `Hello` that must be its first request. From then
// on requests are read in a loop and handed to the Coordinator's owner without waiting
// for their replies (pipelining); a writer task sends whatever the outbox holds. A frame
// that breaks the protocol (oversize, not an envelope, no command this server knows, a
// request without an id) gets a `Closing` push or an error reply naming the problem,
// and only this connection is closed.

extension LeaseholdServer {
    func serve(_ channel: NIOAsyncChannel<ByteBuffer, ServerMessage>) async {
        let number = self.connectionCounter.add(1, ordering: .relaxed).newValue
        var logger = self.logger
        logger[metadataKey: "connection"] = "\(number)"
        logger[metadataKey: "peer.address"] = "\(channel.channel.remoteAddress?.description ?? "?")"
        do {
            try await channel.executeThenClose { inbound, outbound in
                var frames = inbound.makeAsyncIterator()
                let underlying = channel.channel
                let timeout = self.configuration.helloTimeout
                let helloDeadline = underlying.eventLoop.scheduleTask(in: .nanoseconds(Int64(clamping: timeout.nanosecondsClamped))) { [logger] in
                    logger.info("closing a connection that sent no Hello in time", metadata: ["connection.helloTimeout": "\(timeout)"])
                    underlying.close(promise: nil)
                }
                let first: ByteBuffer
                do {
                    defer { helloDeadline.cancel() }
                    guard let frame = try await frames.next() else { return }
                    first = frame
                } catch let error as NIOSSLError {
                    logger.info("TLS handshake failed", metadata: ["error": "\(error)"])
                    return
                } catch {
                    logger.info("connection failed before its first frame", metadata: ["error": "\(error)"])
                    return
                }
                guard let identity = try await Self.identity(of: channel.channel) else {
                    logger.warning("the peer certificate has no common name; closing")
                    return
                }
                logger[metadataKey: "peer.cn"] = "\(identity)"
                let caller = Caller(
                    identity: identity,
                    isAdmin: self.configuration.admins.contains(identity),
                    isTarget: self.configuration.targets.contains(identity)
                )
                let outbox = Outbox<ServerMessage>(limit: self.configuration.maxQueuedFramesPerConnection)
                let connection = Connection(number: number, caller: caller, outbox: outbox, channel: channel.channel, logger: logger)
                outbox.onOverflow { [logger] in
                    logger.warning("closing a slow consumer: its outbox is full")
                    underlying.close(promise: nil)
                }
                self.connections.withLock { $0[ObjectIdentifier(connection)] = connection }
                defer {
                    self.connections.withLock { $0[ObjectIdentifier(connection)] = nil }
                    self.owner?.connectionClosed(connection)
                }

                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        // The writer: batches of frames until the outbox is finished and
                        // drained, then the channel closes (which ends the reader).
                        while let batch = await outbox.next() {
                            do {
                                try await outbound.write(contentsOf: batch)
                            } catch {
                                break
                            }
                        }
                        underlying.close(promise: nil)
                    }
                    if self.handshake(first, connection) {
                        do {
                            while !connection.isClosing, let frame = try await frames.next() {
                                await self.received(frame, on: connection)
                            }
                        } catch let error as FrameTooLargeError {
                            connection.close(.protocolError, "\(error)")
                        } catch let error as TruncatedFrameError {
                            logger.info("connection ended inside a frame", metadata: ["error": "\(error)"])
                        } catch {
                            logger.debug("connection read ended", metadata: ["error": "\(error)"])
                        }
                    }
                    outbox.finish()
                    await group.waitForAll()
                }
            }
        } catch {
            logger.debug("connection closed with an error", metadata: ["error": "\(error)"])
        }
    }

    /// The common name of the peer's verified certificate.
    static func identity(of channel: any Channel) async throws -> String? {
        guard let certificate = try await channel.nioSSL_peerCertificate().get() else { return nil }
        return certificate.subjectName.last { $0.type == .commonName }?.value
    }

    /// Answers the first frame, which must be `Hello` with a major version this server
    /// speaks.
    /// - Returns: whether the connection goes on.
    func handshake(_ frame: ByteBuffer, _ connection: Connection) -> Bool {
        let envelope: WireEnvelope
        do {
            envelope = try EnvelopeCodec.decode(frame)
        } catch {
            connection.close(.protocolError, error.message)
            return false
        }
        guard case .request(let request)? = envelope.body, case .hello(let hello)? = request.command else {
            connection.close(.protocolError, "the first request of a connection must be Hello")
            return false
        }
        guard hello.protocolMajor == WireProtocol.major else {
            let error = LeaseholdError.protocolError(
                "protocol version \(hello.protocolMajor).\(hello.protocolMinor) is not supported: this server speaks \(WireProtocol.major).x"
            )
            _ = connection.admit(id: envelope.id, limit: .max)
            connection.reply(envelope.id, .failure(error))
            connection.close(.protocolError, error.message)
            return false
        }
        connection.logger.debug("hello", metadata: ["client.name": "\(hello.clientName)", "client.protocol": "\(hello.protocolMajor).\(hello.protocolMinor)"])
        let (role, leader, term) = self.announcedRole
        let reply = ServerHello(
            epoch: self.epoch,
            limits: self.limits,
            identity: connection.caller.identity,
            isAdmin: connection.caller.isAdmin,
            isTarget: connection.caller.isTarget,
            role: role,
            leaderEndpoint: leader,
            term: term
        )
        var response = WireResponse()
        response.helloOk = reply.wire
        _ = connection.admit(id: envelope.id, limit: .max)
        connection.send(.response(id: envelope.id, response))
        return true
    }

    /// Handles one frame after the handshake.
    func received(_ frame: ByteBuffer, on connection: Connection) async {
        let envelope: WireEnvelope
        do {
            envelope = try EnvelopeCodec.decode(frame)
        } catch {
            connection.close(.protocolError, error.message)
            return
        }
        guard case .request(let request)? = envelope.body else {
            connection.close(.protocolError, "a client may only send requests")
            return
        }
        guard envelope.id != 0 else {
            connection.close(.protocolError, "a request needs a non-zero id")
            return
        }
        switch connection.admit(id: envelope.id, limit: self.configuration.maxInFlightPerConnection) {
        case .admitted:
            break
        case .duplicate:
            // Two answers with one id could not be told apart: a protocol error, as a
            // reused stream id is in HTTP/2.
            connection.close(.protocolError, "request id \(envelope.id) is already in flight on this connection; ids must be unique among unanswered requests")
            return
        case .full:
            // Not counted in flight: answered at once.
            connection.outbox.send(
                .reply(
                    id: envelope.id,
                    .failure(
                        .resourceExhausted(
                            limit: "maxInFlightPerConnection",
                            message: "\(self.configuration.maxInFlightPerConnection) requests of this connection are unanswered; wait for replies"
                        )
                    )
                )
            )
            return
        }
        let body: WireRequestBody
        do {
            body = try WireRequestBody(wire: request)
        } catch {
            connection.reply(envelope.id, .failure(error))
            if error.code == .protocolError { connection.close(.protocolError, error.message) }
            return
        }
        if case .hello = body.command {
            connection.reply(envelope.id, .failure(.invalidArgument("Hello was already sent on this connection")))
            return
        }
        if case .clusterStatus = body.command {
            // It may wait on etcd's timeouts: not in front of this connection's other requests.
            let id = envelope.id
            Task { await self.answerClusterStatus(id: id, connection) }
            return
        }
        guard let serving = self.serving else {
            // A standby's snapshot: what a peer joining copies (and admins may).
            if case .createSnapshot = body.command {
                await self.createStandbySnapshot(id: envelope.id, connection)
                return
            }
            if case .readSnapshot(let name, let offset, let length) = body.command {
                self.readSnapshot(id: envelope.id, connection, name: name, offset: offset, length: length)
                return
            }
            if case .core(let command) = body.command, command.isAdminQuery, let reads = self.standbyReads.withLock({ $0 }),
                let (reply, position) = reads.answer(command, caller: connection.caller)
            {
                connection.send(.reflecting(id: envelope.id, reply, position))
            } else {
                connection.reply(envelope.id, .failure(self.notLeader))
            }
            return
        }
        if serving.role == .leader, let gate = serving.owner.gate, !gate() {
            connection.reply(envelope.id, .failure(LeaseholdError(code: .unavailable, message: "this node's leadership lease ran out; it answers nothing until it knows who leads")))
            return
        }
        switch body.command {
        case .hello:
            preconditionFailure("answered above")
        case .createSnapshot:
            await self.createSnapshot(id: envelope.id, connection)
        case .readSnapshot(let name, let offset, let length):
            self.readSnapshot(id: envelope.id, connection, name: name, offset: offset, length: length)
        default:
            serving.owner.submit(body, id: envelope.id, from: connection)
        }
    }
}
