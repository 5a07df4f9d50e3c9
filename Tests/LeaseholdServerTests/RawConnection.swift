import Foundation
import LeaseholdCertificates
import LeaseholdCore
import LeaseholdTestSupport
import LeaseholdMessages
import LeaseholdWire
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import Testing

/// What a raw connection received: bytes, and whether the server closed it.
final class Inbox: Sendable {
    let state = Mutex<(bytes: ByteBuffer, closed: Bool)>((ByteBuffer(), false))
}

/// Collects every inbound byte into an inbox.
final class CollectHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let inbox: Inbox

    init(inbox: Inbox) {
        self.inbox = inbox
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = Self.unwrapInboundIn(data)
        self.inbox.state.withLock { _ = $0.bytes.writeBuffer(&bytes) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.inbox.state.withLock { $0.closed = true }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// A bare mutual-TLS connection that writes whatever bytes a test wants and reads the
/// server's frames back, to probe the protocol's error handling.
final class RawConnection: Sendable {
    let channel: any Channel
    let group: MultiThreadedEventLoopGroup
    let inbox = Inbox()

    init(port: Int, certificate: String, key: String, ca: String) async throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv13
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
        tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
        let context = try NIOSSLContext(configuration: tls)
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let inbox = self.inbox
        self.channel = try await ClientBootstrap(group: self.group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    try channel.pipeline.syncOperations.addHandler(CollectHandler(inbox: inbox))
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
    }

    convenience init(cluster: TestCluster, identity: String = "admin") async throws {
        let configuration = try cluster.configuration(identity)
        try await self.init(port: cluster.port, certificate: configuration.certificatePath, key: configuration.keyPath, ca: configuration.caPath)
    }

    /// Writes raw bytes.
    func write(_ bytes: [UInt8]) async throws {
        try await self.channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    /// Writes one framed envelope.
    func send(_ envelope: WireEnvelope) async throws {
        var frame = ByteBuffer()
        let payload = EnvelopeCodec.encode(envelope)
        frame.writeInteger(UInt32(payload.readableBytes))
        frame.writeImmutableBuffer(payload)
        try await self.channel.writeAndFlush(frame)
    }

    func hello(major: UInt32 = WireProtocol.major) async throws {
        var request = WireRequest()
        request.hello.protocolMajor = major
        request.hello.clientName = "raw"
        try await self.send(EnvelopeCodec.request(id: 1, request))
    }

    /// Every whole frame received so far.
    var envelopes: [WireEnvelope] {
        get throws {
            var bytes = self.inbox.state.withLock { $0.bytes }
            var envelopes: [WireEnvelope] = []
            while let frame = bytes.readLengthPrefixedSlice(as: UInt32.self) { envelopes.append(try EnvelopeCodec.decode(frame)) }
            return envelopes
        }
    }

    var closed: Bool { self.inbox.state.withLock { $0.closed } }

    /// Waits for the server to close the connection, then returns what it sent.
    func readUntilClosed() async throws -> (envelopes: [WireEnvelope], closed: Bool) {
        try await eventually("the server closes the connection") { self.closed }
        return (try self.envelopes, self.closed)
    }

    /// Waits for the response to request `id`.
    func response(to id: UInt64) async throws -> WireResponse? {
        var found: WireResponse?
        try await eventually("the response to request \(id)") {
            found = try self.envelopes.response(to: id)
            return found != nil
        }
        return found
    }

    func close() async {
        try? await self.channel.close()
        try? await self.group.shutdownGracefully()
    }
}

extension [WireEnvelope] {
    /// The message of the `Closing` push, if the server sent one.
    var closing: Leasehold_V1_Closing? {
        for envelope in self {
            if case .push(let push)? = envelope.body, case .closing(let closing)? = push.body { return closing }
        }
        return nil
    }

    func response(to id: UInt64) -> WireResponse? {
        for envelope in self where envelope.id == id {
            if case .response(let response)? = envelope.body { return response }
        }
        return nil
    }
}
