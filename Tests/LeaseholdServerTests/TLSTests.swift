import Foundation
import LeaseholdCertificates
import LeaseholdClient
import LeaseholdCore
import LeaseholdTestSupport
import NIOCore
import NIOPosix
import NIOSSL
import Testing

/// Mutual TLS: only certificates signed by the configured CA and currently valid get in;
/// the identity is the certificate's common name and roles come from the server's lists.
@Suite("Mutual TLS and roles", .timeLimit(.minutes(1)))
struct TLSTests {
    /// Connects with the given files and expects the connection to be refused.
    func expectRefused(_ cluster: TestCluster, certificate: String?, key: String?) async throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv13
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(cluster.files.caCertificate))
        if let certificate, let key {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
        }
        let context = try NIOSSLContext(configuration: tls)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let inbox = Inbox()
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    try channel.pipeline.syncOperations.addHandler(CollectHandler(inbox: inbox))
                }
            }
            .connect(host: "127.0.0.1", port: cluster.port)
            .get()
        // In TLS 1.3 the client learns of the refusal when it tries to use the
        // connection: the server closes it after failing the client's certificate.
        var hello = ByteBuffer()
        hello.writeInteger(UInt32(2))
        hello.writeBytes([0x52, 0x00])
        try? await channel.writeAndFlush(hello)
        try await eventually("the server refuses the connection") { inbox.state.withLock { $0.closed } }
        #expect(inbox.state.withLock { $0.bytes.readableBytes } == 0, "a refused peer gets no frame")
        try? await group.shutdownGracefully()
    }

    @Test("no client certificate, one from another CA, and an expired one are all refused; a good one still works")
    func refusals() async throws {
        let cluster = try await TestCluster.start()
        let scratch = cluster.directory + "/scratch"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)

        try await self.expectRefused(cluster, certificate: nil, key: nil)

        let stranger = try CertificateAuthority.create(commonName: "Some other CA")
        try stranger.issue(commonName: "admin", usage: .client).write(certificate: scratch + "/other.pem", key: scratch + "/other-key.pem")
        try await self.expectRefused(cluster, certificate: scratch + "/other.pem", key: scratch + "/other-key.pem")

        let authority = try CertificateAuthority(
            certificatePEM: try String(contentsOfFile: cluster.files.caCertificate, encoding: .utf8),
            privateKeyPEM: try String(contentsOfFile: cluster.files.caKey, encoding: .utf8)
        )
        try authority.issue(
            commonName: "admin",
            usage: .client,
            notValidBefore: Date().addingTimeInterval(-7_200),
            notValidAfter: Date().addingTimeInterval(-3_600)
        ).write(certificate: scratch + "/expired.pem", key: scratch + "/expired-key.pem")
        try await self.expectRefused(cluster, certificate: scratch + "/expired.pem", key: scratch + "/expired-key.pem")

        // The library reports a refused handshake as `unavailable`: at once when the alert
        // arrives, within its reconnect timeout (5 s here) when the server's close comes
        // first (it then reads like a node that took the connection and said nothing).
        let asked = ContinuousClock.now
        let error = await #expect(throws: LeaseholdError.self) {
            var configuration = try cluster.configuration("admin")
            configuration.certificatePath = scratch + "/other.pem"
            configuration.keyPath = scratch + "/other-key.pem"
            _ = try await LeaseholdClient.connect(configuration)
        }
        #expect(error?.code == .unavailable)
        #expect(ContinuousClock.now - asked < .seconds(15), "the refusal took \(ContinuousClock.now - asked)")

        let admin = try await cluster.client()
        #expect(admin.server.identity == "admin")
        #expect(admin.server.isAdmin)
        #expect(try await admin.status().volume.blockCount == 1 << 16)
        admin.close()
        try await cluster.stop()
    }

    @Test("a non-admin calling an admin operation gets permissionDenied; a non-target cannot follow fences")
    func roles() async throws {
        let cluster = try await TestCluster.start()
        let user = try await cluster.client("alice")
        #expect(user.server.identity == "alice")
        #expect(!user.server.isAdmin)
        for operation in [
            { _ = try await user.status() },
            { _ = try await user.pins() },
            { _ = try await user.checkInvariants() },
            { _ = try await user.evict(SessionID(rawValue: 1)) },
            { _ = try await user.snapshot(to: cluster.directory + "/x.db") },
        ] as [@Sendable () async throws -> Void] {
            let error = await #expect(throws: LeaseholdError.self) { try await operation() }
            #expect(error?.code == .permissionDenied)
            #expect(error?.message.contains("admin role") == true)
        }
        var feed = user.fenceFeed().makeAsyncIterator()
        let error = await #expect(throws: LeaseholdError.self) { _ = try await feed.next() }
        #expect(error?.code == .permissionDenied)
        user.close()
        try await cluster.stop()
    }
}
