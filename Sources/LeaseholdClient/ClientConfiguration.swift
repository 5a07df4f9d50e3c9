import Foundation
import LeaseholdCertificates
import LeaseholdMessages
import LeaseholdWire
import NIOCore
import NIOPosix

/// How to reach a Leasehold server and who to be.
public struct ClientConfiguration: Sendable {
    /// Server address; an IP literal is checked against the certificate's IP names.
    public var host: String = "127.0.0.1"
    public var port: Int = 7420
    /// This client's certificate and key (PEM); its common name is the identity.
    public var certificatePath: String
    public var keyPath: String
    /// The CA that signed the server's certificate (PEM).
    public var caPath: String
    /// Free text the server logs.
    public var clientName: String = "LeaseholdClient"
    /// Largest frame sent or accepted.
    public var maxFrameBytes: Int = FrameLimits.defaultMaxFrameLength
    /// First and longest pause between reconnection attempts (doubling in between).
    public var reconnectBackoff: (initial: Duration, maximum: Duration) = (.milliseconds(20), .seconds(1))
    /// How long a request waits for a lost connection to come back before it fails with
    /// `unavailable`.
    public var reconnectTimeout: Duration = .seconds(30)
    /// Safety margin of the local lease deadline: the application is told to stop DMA
    /// (jeopardy) at `last renewal sent + TTL - margin`; `nil` uses max(TTL / 10, 100 ms).
    public var jeopardyMargin: Duration?
    /// The event loops the connection runs on. The default is NIO's shared
    /// `MultiThreadedEventLoopGroup.singleton` (one thread per core), so that many clients
    /// in one process share threads instead of starting one each; the client never shuts
    /// down a group it was given.
    public var eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton

    /// A configuration with explicit certificate paths.
    public init(host: String = "127.0.0.1", port: Int = 7420, certificatePath: String, keyPath: String, caPath: String) {
        self.host = host
        self.port = port
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.caPath = caPath
    }

    /// The development certificates a server's auto-TLS wrote into `dataDirectory`:
    /// `identity` is `admin` or a name issued with `leaseholdd certs issue`.
    public static func development(
        dataDirectory: String = "./leasehold-data",
        identity: String = "admin",
        host: String = "127.0.0.1",
        port: Int = 7420
    ) -> ClientConfiguration {
        let files = TLSFiles(dataDirectory: dataDirectory)
        return ClientConfiguration(
            host: host,
            port: port,
            certificatePath: files.clientCertificate(identity),
            keyPath: files.clientKey(identity),
            caPath: files.caCertificate
        )
    }
}
