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
        subcommands: [Serve.self, Certs.self],
        defaultSubcommand: Serve.self
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server (the default).")

    @Option(help: "A config file of 'key = value' lines (LEASEHOLD_CONFIG).") var config: String?
    @Option(help: "Data directory: database, auto-TLS certificates, snapshots (default ./leasehold-data).") var dataDir: String?
    @Option(help: "Address to listen on, host:port (default 127.0.0.1:7420).") var listen: String?
    @Option(help: "Block size in bytes, first start only (default 4096).") var blockSize: UInt64?
    @Option(help: "Blocks in the volume, first start only (default 268435456).") var blockCount: UInt64?
    @Option(help: "Shortest session TTL (default 1s).") var minTtl: String?
    @Option(help: "Session TTL when a client asks for none (default 10s).") var defaultTtl: String?
    @Option(help: "Longest session TTL (default 300s).") var maxTtl: String?
    @Option(help: "Longest own expiry of a short-term pin (default 30s).") var maxShortTermPin: String?
    @Option(help: "Time a holder has to answer a recall (default 10s).") var recallTimeout: String?
    @Option(help: "Time busy blocks stay busy after their last holder is gone (default 5s; 0 allowed).") var releaseDelay: String?
    @Option(help: "Cap of every wait (default 60s).") var maxWait: String?
    @Option(help: "An identity with the admin role; repeatable (default: admin).") var admin: [String] = []
    @Option(help: "An identity with the storage-target role; repeatable.") var target: [String] = []
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
    @Option(help: "Cluster mode: etcd client URLs, comma-separated (http://127.0.0.1:2379,...). Without it the node serves alone.")
    var etcdEndpoints: String?
    @Option(help: "CA that signs the etcd members' certificates (PEM); with --etcd-cert and --etcd-key: mutual TLS to etcd.")
    var etcdCa: String?
    @Option(help: "This node's client certificate for etcd (PEM).") var etcdCert: String?
    @Option(help: "This node's client key for etcd (PEM).") var etcdKey: String?
    @Option(help: "Cluster mode: the cluster's name; its keys live under /leasehold/NAME/ (default leasehold).") var cluster: String?
    @Option(help: "Cluster mode: this node's unique name (default: the host name).") var node: String?
    @Option(help: "Cluster mode: host:port clients are told to connect to when this node leads (default: --listen).") var advertise: String?
    @Option(help: "Cluster mode: TTL of the node's etcd lease, the leadership lease (default 5s; etcd may grant more).")
    var leaderTtl: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let file = try (self.config ?? environment["LEASEHOLD_CONFIG"]).map(ConfigFile.init(path:)) ?? ConfigFile()
        /// Flag, then LEASEHOLD_<KEY>, then the config file.
        func value(_ flag: String?, _ key: String) -> String? {
            flag ?? environment["LEASEHOLD_" + key.uppercased().replacingOccurrences(of: "-", with: "_")] ?? file.values[key]
        }
        func list(_ flag: [String], _ key: String) -> [String]? {
            if !flag.isEmpty { return flag }
            return value(nil, key).map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        }
        func duration(_ flag: String?, _ key: String) throws -> Duration? {
            guard let text = value(flag, key) else { return nil }
            guard let parsed = Duration(text: text) else { throw ValidationError("\(key): '\(text)' is not a duration (e.g. 250ms, 10s, 5m)") }
            return parsed
        }
        func address(_ flag: String?, _ key: String) throws -> HostPort? {
            guard let text = value(flag, key) else { return nil }
            guard let address = HostPort(text: text) else { throw ValidationError("\(key): '\(text)' is not host:port") }
            return address
        }
        func number<T: LosslessStringConvertible>(_ flag: T?, _ key: String) throws -> T? {
            if let flag { return flag }
            guard let text = value(nil, key) else { return nil }
            guard let parsed = T(text) else { throw ValidationError("\(key): '\(text)' is not a number") }
            return parsed
        }

        let levelText = value(self.logLevel, "log-level") ?? "info"
        guard let level = Logger.Level(rawValue: levelText) else { throw ValidationError("log-level: unknown level '\(levelText)'") }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "leaseholdd")

        // The embedded default: the data directory's SQLite file is the journal's sink.
        let dataDirectory = value(self.dataDir, "data-dir") ?? "./leasehold-data"
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        let etcdEndpoints = value(self.etcdEndpoints, "etcd-endpoints").map {
            $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        // A data directory a cluster node used belongs to that cluster: alone, it would
        // serve a stale copy of the volume.
        let clusterMark = (dataDirectory as NSString).appendingPathComponent("cluster")
        if etcdEndpoints == nil, let owner = try? String(contentsOfFile: clusterMark, encoding: .utf8) {
            throw ValidationError(
                "\(dataDirectory) belongs to cluster '\(owner.trimmingCharacters(in: .whitespacesAndNewlines))': start it with --etcd-endpoints, or use another data directory to serve alone"
            )
        }
        // The embedded default: the data directory's SQLite file is the journal's sink. In
        // cluster mode the etcd log is.
        let store = etcdEndpoints == nil ? try Store(path: (dataDirectory as NSString).appendingPathComponent("leasehold.db")) : nil
        var configuration = ServerConfiguration(sink: store)
        configuration.dataDirectory = dataDirectory
        if let listen = try address(self.listen, "listen") {
            configuration.host = listen.host
            configuration.port = listen.port
        }
        if let metrics = try address(self.metrics, "metrics") {
            configuration.metrics = ServerConfiguration.MetricsListener(host: metrics.host, port: metrics.port)
        }
        var coordinator = CoordinatorConfiguration()
        let blockSize = try number(self.blockSize, "block-size") ?? VolumeGeometry.default.blockSize
        let blockCount = try number(self.blockCount, "block-count") ?? VolumeGeometry.default.blockCount
        do {
            coordinator.geometry = try VolumeGeometry(blockSize: blockSize, blockCount: blockCount)
        } catch {
            throw ValidationError("volume geometry: \(error)")
        }
        if let ttl = try duration(self.minTtl, "min-ttl") { coordinator.minimumTTL = ttl }
        if let ttl = try duration(self.defaultTtl, "default-ttl") { coordinator.defaultTTL = ttl }
        if let ttl = try duration(self.maxTtl, "max-ttl") { coordinator.maximumTTL = ttl }
        guard coordinator.minimumTTL > .zero, coordinator.minimumTTL <= coordinator.defaultTTL, coordinator.defaultTTL <= coordinator.maximumTTL else {
            throw ValidationError("TTLs must satisfy 0 < min-ttl <= default-ttl <= max-ttl")
        }
        if let limit = try duration(self.maxShortTermPin, "max-short-term-pin") { coordinator.maxShortTermPin = limit }
        if let timeout = try duration(self.recallTimeout, "recall-timeout") { coordinator.recallTimeout = timeout }
        if let delay = try duration(self.releaseDelay, "release-delay") { coordinator.releaseDelay = delay }
        if let wait = try duration(self.maxWait, "max-wait") { coordinator.maxWait = wait }
        configuration.coordinator = coordinator
        if let admins = list(self.admin, "admin") { configuration.admins = Set(admins) }
        if let targets = list(self.target, "target") { configuration.targets = Set(targets) }
        let cert = value(self.cert, "cert")
        let key = value(self.key, "key")
        let clientCA = value(self.clientCa, "client-ca")
        switch (cert, key, clientCA) {
        case (nil, nil, nil):
            break
        case (let cert?, let key?, let clientCA?):
            configuration.tls = ServerConfiguration.TLSPaths(certificate: cert, key: key, clientCA: clientCA)
        default:
            throw ValidationError("cert, key and client-ca go together: give all three, or none for auto-TLS")
        }
        if let bytes = try number(self.maxFrameBytes, "max-frame-bytes") {
            guard bytes >= 64 * 1_024 else { throw ValidationError("max-frame-bytes must be at least 65536") }
            configuration.maxFrameBytes = bytes
        }
        if let inFlight = try number(self.maxInFlight, "max-in-flight") { configuration.maxInFlightPerConnection = Swift.max(1, inFlight) }
        if let threads = try number(self.eventLoopThreads, "event-loop-threads") { configuration.eventLoopThreads = Swift.max(1, threads) }
        if let timeout = try duration(self.helloTimeout, "hello-timeout") {
            guard timeout > .zero else { throw ValidationError("hello-timeout must be above 0") }
            configuration.helloTimeout = timeout
        }

        if let endpoints = etcdEndpoints {
            guard !endpoints.isEmpty else { throw ValidationError("etcd-endpoints: give at least one URL") }
            for endpoint in endpoints where !(endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://")) {
                throw ValidationError("etcd-endpoints: '\(endpoint)' is not an http:// or https:// URL")
            }
            var etcd = EtcdConfiguration(endpoints: endpoints)
            switch (value(self.etcdCa, "etcd-ca"), value(self.etcdCert, "etcd-cert"), value(self.etcdKey, "etcd-key")) {
            case (nil, nil, nil):
                break
            case (let ca?, let cert?, let key?):
                etcd.tls = try EtcdConfiguration.mutualTLS(ca: ca, certificate: cert, key: key)
            default:
                throw ValidationError("etcd-ca, etcd-cert and etcd-key go together: give all three, or none for plain HTTP")
            }
            let cluster = value(self.cluster, "cluster") ?? "leasehold"
            guard ClusterKeys.isValidName(cluster) else { throw ValidationError("cluster: '\(cluster)' is not a name of letters, digits, '-', '_' and '.'") }
            let node = value(self.node, "node") ?? ProcessInfo.processInfo.hostName
            let advertise = value(self.advertise, "advertise") ?? "\(configuration.host):\(configuration.port)"
            guard HostPort(text: advertise) != nil else { throw ValidationError("advertise: '\(advertise)' is not host:port") }
            let ttl = try duration(self.leaderTtl, "leader-ttl") ?? .seconds(5)
            guard ttl >= .seconds(1) else { throw ValidationError("leader-ttl must be at least 1s") }
            try cluster.write(toFile: clusterMark, atomically: true, encoding: .utf8)
            let clusterNode = try await ClusterNode.start(
                configuration: ClusterNode.Configuration(etcd: etcd, cluster: cluster, node: node, advertise: advertise, leaderTTL: ttl),
                server: configuration, logger: logger
            )
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

        func run() throws {
            guard let validity = Duration(text: self.validity) else { throw ValidationError("validity: '\(self.validity)' is not a duration") }
            let paths = try TLSFiles(dataDirectory: self.dataDir).issueClient(self.name, validity: validity)
            print("certificate: \(paths.certificate)\nkey:         \(paths.key)")
        }
    }
}
