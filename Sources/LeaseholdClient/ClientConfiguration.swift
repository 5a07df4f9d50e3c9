import Foundation
import LeaseholdCertificates
import LeaseholdMessages
import LeaseholdWire
import NIOCore
import NIOPosix

/// How to reach a Leasehold server (or the nodes of a cluster) and who to be.
public struct ClientConfiguration: Sendable {
    /// The server, or the nodes of a cluster: the client connects to any, follows the
    /// leader's endpoint that a standby names, and goes on to the next when one does not
    /// answer. An IP literal is checked against the certificate's IP names.
    public var endpoints: [HostPort]
    /// The first endpoint's host (setting it makes it the only endpoint's).
    public var host: String {
        get { self.endpoints[0].host }
        set { self.endpoints = [HostPort(host: newValue, port: self.endpoints[0].port)] }
    }
    /// The first endpoint's port (setting it makes it the only endpoint's).
    public var port: Int {
        get { self.endpoints[0].port }
        set { self.endpoints = [HostPort(host: self.endpoints[0].host, port: newValue)] }
    }
    /// This client's certificate and key (PEM); its common name is the identity.
    public var certificatePath: String
    public var keyPath: String
    /// The CA that signed the server's certificate (PEM).
    public var caPath: String
    /// Free text the server logs.
    public var clientName: String = "LeaseholdClient"
    /// Largest frame sent or accepted.
    public var maxFrameBytes: Int = FrameLimits.defaultMaxFrameLength
    /// First and longest pause between rounds of connection attempts (doubling each
    /// round, with jitter; the first round over the endpoints goes without a pause).
    public var reconnectBackoff: (initial: Duration, maximum: Duration) = (.milliseconds(20), .milliseconds(500))
    /// How long a request waits for a lost connection to come back before it fails with
    /// `unavailable`; also how long `connect` waits for a leader while nodes answer but
    /// none leads yet.
    public var reconnectTimeout: Duration = .seconds(30)
    /// How long a TCP connect to one endpoint may take before the next is tried (a
    /// machine that is gone answers nothing).
    public var connectTimeout: Duration = .seconds(1)
    /// How long the TLS handshake and `Hello` may take once connected (a stopped or
    /// partitioned node may accept the TCP connection and then say nothing).
    public var handshakeTimeout: Duration = .seconds(3)
    /// Accept a standby when no leader answers first: for admin reads that any node
    /// answers (`leaseholdctl cluster`); everything else is `notLeader` there.
    public var acceptsStandby = false
    /// Seeds the reconnection jitter (`nil`: random).
    public var jitterSeed: UInt64?
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
        self.init(endpoints: [HostPort(host: host, port: port)], certificatePath: certificatePath, keyPath: keyPath, caPath: caPath)
    }

    /// A configuration for the nodes of a cluster (or one server).
    public init(endpoints: [HostPort], certificatePath: String, keyPath: String, caPath: String) {
        precondition(!endpoints.isEmpty, "a client needs at least one endpoint")
        self.endpoints = endpoints
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.caPath = caPath
    }

    /// The development certificates a server's auto-TLS wrote into `dataDirectory`:
    /// `identity` is `admin` or a name issued with `leaseholdd certs issue`. A
    /// `scripts/dev-cluster` directory works too: its `cluster.json` gives the nodes'
    /// endpoints unless `host` or `port` is given (the default is 127.0.0.1:7420).
    public static func development(
        dataDirectory: String = "./leasehold-data",
        identity: String = "admin",
        host: String? = nil,
        port: Int? = nil
    ) -> ClientConfiguration {
        let given = HostPort(host: host ?? "127.0.0.1", port: port ?? 7420)
        let endpoints = host == nil && port == nil ? DevelopmentCluster.endpoints(in: dataDirectory) ?? [given] : [given]
        return .development(dataDirectory: dataDirectory, identity: identity, endpoints: endpoints)
    }

    /// The development certificates of `dataDirectory`, for these endpoints.
    public static func development(dataDirectory: String, identity: String = "admin", endpoints: [HostPort]) -> ClientConfiguration {
        let files = TLSFiles(dataDirectory: dataDirectory)
        return ClientConfiguration(
            endpoints: endpoints,
            certificatePath: files.clientCertificate(identity),
            keyPath: files.clientKey(identity),
            caPath: files.caCertificate
        )
    }
}

/// What a `scripts/dev-cluster` directory's `cluster.json` says about the nodes.
enum DevelopmentCluster {
    struct File: Decodable {
        struct Node: Decodable { var endpoint: String }
        var nodes: [Node]
    }

    /// The nodes' endpoints, or `nil` when the directory holds no readable `cluster.json`.
    static func endpoints(in directory: String) -> [HostPort]? {
        let path = (directory as NSString).appendingPathComponent("cluster.json")
        guard let data = FileManager.default.contents(atPath: path), let file = try? JSONDecoder().decode(File.self, from: data) else { return nil }
        let endpoints = file.nodes.compactMap { HostPort(text: $0.endpoint) }
        return endpoints.isEmpty ? nil : endpoints
    }
}
