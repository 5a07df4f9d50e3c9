import ArgumentParser
import Foundation
import LeaseholdCertificates
import LeaseholdCore
import LeaseholdCluster
import LeaseholdEtcd
import LeaseholdNode
import LeaseholdServer
import LeaseholdStore
import Logging
import ServiceLifecycle

@main
struct Leaseholdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leaseholdd",
        abstract: "The Leasehold lease coordination daemon.",
        discussion: """
            With no flags it serves ./leasehold-data on 127.0.0.1:7420, creating a 1 TiB volume \
            of 4 KiB blocks and development certificates on first start. Every option can also \
            come from a LEASEHOLD_* environment variable (LEASEHOLD_DATA_DIR, LEASEHOLD_LISTEN, \
            ...) or a config file (--config); flags win over the environment, which wins over \
            the file. See docs/configuration.md.
            """,
        subcommands: [Serve.self, ClusterCommand.self, Certs.self],
        defaultSubcommand: Serve.self
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server (the default).")

    @Option(help: "A config file of 'key = value' lines (LEASEHOLD_CONFIG).") var config: String?
    @Option(help: "Data directory: database, auto-TLS certificates, snapshots (default ./leasehold-data).") var dataDir: String?
    @Option(help: "Address to listen on, host:port (default 127.0.0.1:7420).") var listen: String?
    @OptionGroup(title: "Volume and settings (in cluster mode: from etcd, see 'cluster init')") var volume: VolumeOptions
    @Option(help: "Server certificate (PEM); with --key and --client-ca, replaces auto-TLS.") var cert: String?
    @Option(help: "Server private key (PEM).") var key: String?
    @Option(help: "CA that signs client certificates (PEM).") var clientCa: String?
    @Option(help: "Largest frame in bytes (default 4194304).") var maxFrameBytes: Int?
    @Option(help: "Unanswered requests allowed per connection (default 1024).") var maxInFlight: Int?
    @Option(help: "Event loop threads (default: the number of cores).") var eventLoopThreads: Int?
    @Option(help: "Time a new connection has to finish TLS and send Hello (default 10s).") var helloTimeout: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical (default info).") var logLevel: String?
    @Option(help: "Serve Prometheus metrics over plain HTTP at host:port/metrics (default: off), e.g. 127.0.0.1:9420.")
    var metrics: String?
    @OptionGroup(title: "Cluster mode") var etcd: EtcdOptions
    @Option(help: "Cluster mode: this node's unique name (default: the host name).") var node: String?
    @Option(help: "Cluster mode: host:port clients are told to connect to when this node leads (default: --listen).") var advertise: String?
    @Option(help: "Cluster mode: TTL of the node's etcd lease, the leadership lease (default 5s; etcd may grant more).")
    var leaderTtl: String?
    @Option(help: "Cluster mode: a client certificate of a node-role identity (PEM), to copy a peer's snapshot when this node is behind the checkpoint (default: read it from etcd).")
    var peerCert: String?
    @Option(help: "Cluster mode: its key (PEM).") var peerKey: String?

    func run() async throws {
        let lookup = try Lookup(config: self.config)
        let levelText = lookup.value(self.logLevel, "log-level") ?? "info"
        guard let level = Logger.Level(rawValue: levelText) else { throw ValidationError("log-level: unknown level '\(levelText)'") }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "leaseholdd")

        let dataDirectory = lookup.value(self.dataDir, "data-dir") ?? "./leasehold-data"
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        // Held until the process ends: one server per data directory.
        _ = try DataDirectoryLock(directory: dataDirectory)
        let etcdEndpoints = self.etcd.endpoints(lookup)
        // A data directory a cluster node used belongs to that cluster: alone, it would
        // serve a stale copy of the volume.
        if etcdEndpoints == nil, let mark = try ClusterMark.read(in: dataDirectory) {
            throw ValidationError(
                "\(dataDirectory) belongs to cluster '\(mark.cluster)': start it with --etcd-endpoints, or use another data directory to serve alone"
            )
        }
        // The embedded default: the data directory's SQLite file is the journal's sink. In
        // cluster mode the etcd log is.
        let store = etcdEndpoints == nil ? try Store(path: (dataDirectory as NSString).appendingPathComponent("leasehold.db")) : nil
        var configuration = ServerConfiguration(sink: store)
        configuration.dataDirectory = dataDirectory
        if let listen = try lookup.address(self.listen, "listen") {
            configuration.host = listen.host
            configuration.port = listen.port
        }
        if let metrics = try lookup.address(self.metrics, "metrics") {
            configuration.metrics = ServerConfiguration.MetricsListener(host: metrics.host, port: metrics.port)
        }
        configuration.coordinator = try self.volume.coordinator(lookup)
        configuration.admins = self.volume.admins(lookup)
        configuration.targets = self.volume.targets(lookup)
        let cert = lookup.value(self.cert, "cert")
        let key = lookup.value(self.key, "key")
        let clientCA = lookup.value(self.clientCa, "client-ca")
        switch (cert, key, clientCA) {
        case (nil, nil, nil):
            break
        case (let cert?, let key?, let clientCA?):
            configuration.tls = ServerConfiguration.TLSPaths(certificate: cert, key: key, clientCA: clientCA)
        default:
            throw ValidationError("cert, key and client-ca go together: give all three, or none for auto-TLS")
        }
        if let bytes = try lookup.number(self.maxFrameBytes, "max-frame-bytes") {
            guard bytes >= 64 * 1_024 else { throw ValidationError("max-frame-bytes must be at least 65536") }
            configuration.maxFrameBytes = bytes
        }
        if let inFlight = try lookup.number(self.maxInFlight, "max-in-flight") { configuration.maxInFlightPerConnection = Swift.max(1, inFlight) }
        if let threads = try lookup.number(self.eventLoopThreads, "event-loop-threads") { configuration.eventLoopThreads = Swift.max(1, threads) }
        if let timeout = try lookup.duration(self.helloTimeout, "hello-timeout") {
            guard timeout > .zero else { throw ValidationError("hello-timeout must be above 0") }
            configuration.helloTimeout = timeout
        }

        if let endpoints = etcdEndpoints {
            let etcd = try self.etcd.etcd(endpoints, lookup)
            let cluster = try self.etcd.clusterName(lookup)
            let node = lookup.value(self.node, "node") ?? ProcessInfo.processInfo.hostName
            let advertise = lookup.value(self.advertise, "advertise") ?? "\(configuration.host):\(configuration.port)"
            guard HostPort(text: advertise) != nil else { throw ValidationError("advertise: '\(advertise)' is not host:port") }
            let ttl = try lookup.duration(self.leaderTtl, "leader-ttl") ?? .seconds(5)
            guard ttl >= .seconds(1) else { throw ValidationError("leader-ttl must be at least 1s") }
            let ignored = self.volume.given(lookup)
            if !ignored.isEmpty {
                logger.warning(
                    "ignored in cluster mode: the cluster's volume and settings in etcd apply (written by 'leaseholdd cluster init')",
                    metadata: ["ignored": "\(ignored.joined(separator: ", "))"]
                )
            }
            var nodeConfiguration = ClusterNode.Configuration(etcd: etcd, cluster: cluster, node: node, advertise: advertise, leaderTTL: ttl)
            switch (lookup.value(self.peerCert, "peer-cert"), lookup.value(self.peerKey, "peer-key")) {
            case (nil, nil):
                break
            case (let cert?, let key?):
                for path in [cert, key] where !FileManager.default.fileExists(atPath: path) {
                    throw ValidationError("peer-cert/peer-key: \(path) does not exist")
                }
                // Peers' server certificates chain to the CA that signs client certificates
                // (one CA per cluster), or the data directory's development CA.
                let ca = clientCA ?? TLSFiles(dataDirectory: dataDirectory).caCertificate
                nodeConfiguration.peerIdentity = PeerSnapshots.Identity(certificatePath: cert, keyPath: key, caPath: ca)
            default:
                throw ValidationError("peer-cert and peer-key go together")
            }
            let clusterNode = try await ClusterNode.start(configuration: nodeConfiguration, server: configuration, logger: logger)
            let group = ServiceGroup(services: [clusterNode], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            try await group.run()
            return
        }

        let server = try await LeaseholdServer.start(configuration: configuration, logger: logger)
        let group = ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}

struct Certs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Development certificates in a data directory (auto-TLS).",
        subcommands: [Init.self, Issue.self]
    )

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create the development CA, server and admin certificates if missing.")
        @Option(help: "Data directory (default ./leasehold-data).") var dataDir: String = "./leasehold-data"

        func run() throws {
            let files = TLSFiles(dataDirectory: self.dataDir)
            if try files.ensureDevelopmentCertificates() {
                print("created \(files.directory): ca.pem, server.pem, clients/admin.pem")
            } else {
                print("\(files.caCertificate) exists; nothing created")
            }
        }
    }

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a client certificate whose common name is NAME, signed by the data directory's CA.",
            discussion: "Roles are not in the certificate: list NAME with --admin or --target when starting the server."
        )
        @Argument(help: "The client's identity.") var name: String
        @Option(help: "Data directory (default ./leasehold-data).") var dataDir: String = "./leasehold-data"
        @Option(help: "Validity (default 365 days), e.g. 30d is written 720h.") var validity: String = "8760h"
        @Flag(help: "A certificate for both ends (an etcd member on 127.0.0.1: its clients' server and its own gateway's client), as tls/peers/NAME.pem.")
        var peer = false

        func run() throws {
            guard let validity = Duration(text: self.validity) else { throw ValidationError("validity: '\(self.validity)' is not a duration") }
            let files = TLSFiles(dataDirectory: self.dataDir)
            let paths = try self.peer ? files.issuePeer(self.name, validity: validity) : files.issueClient(self.name, validity: validity)
            print("certificate: \(paths.certificate)\nkey:         \(paths.key)")
        }
    }
}
