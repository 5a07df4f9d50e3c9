import Foundation
import LeaseholdCertificates
import LeaseholdCore
import LeaseholdJournal
import LeaseholdMessages
import LeaseholdWire
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Prometheus
import ServiceLifecycle
import Synchronization

/// The Leasehold server: mutual TLS on one port, length-prefixed protobuf frames, one
/// Coordinator behind a group-commit journal.
///
/// Lifecycle: ``start(configuration:logger:)`` generates development certificates in the
/// data directory when none are configured, loads the configured journal sink and boots
/// the Coordinator from it (``Boot``), and binds. ``run()`` serves until a graceful
/// shutdown (SIGTERM/SIGINT through a `ServiceGroup`, or ``shutdown()``): it stops
/// accepting, answers waiting requests with `unavailable`, lets every commit in flight
/// finish and its replies drain, closes the connections, the journal and the sink.
///
/// Cluster mode (docs/cluster.md): a server configured without a sink starts as a
/// **standby**: it answers `Hello` (role standby, the leader's endpoint) and `notLeader`
/// to everything else. ``lead(sink:term:gate:onFailure:)`` boots a Coordinator from the
/// log and serves as the leader, every output checked against the gate (the leadership
/// deadline); ``standDown(leader:term:reason:)`` abandons the journal and the
/// Coordinator (memory is dropped; the log is the truth), closes the clients'
/// connections with `notLeader`, and goes back to standby.
public final class LeaseholdServer: Service, Sendable {
    /// What the node does with requests now.
    enum Mode {
        /// Serving from a Coordinator: alone, or as its cluster's leader.
        case serving(Serving)
        /// A standby: `Hello` and `notLeader` only.
        case standby(leader: String?, term: UInt64, epoch: UInt64)
    }

    struct Serving {
        var owner: CoordinatorOwner
        var journal: Journal
        var sink: any JournalSink
        var role: NodeRole
        var term: UInt64
    }

    public let configuration: ServerConfiguration
    let logger: Logger
    let group: MultiThreadedEventLoopGroup
    let mode: Mutex<Mode>
    let metrics: ServerMetrics?
    let serverChannel: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ServerMessage>, Never>
    let connections = Mutex<[ObjectIdentifier: Connection]>([:])
    /// Every accepted channel until it closes (also those still in the TLS handshake,
    /// before Hello, or not yet picked up by the accept loop), so that a shutdown can
    /// close them all.
    let channels: ChannelRegistry
    let connectionCounter = Atomic<UInt64>(0)
    let snapshotCounter = Atomic<UInt64>(0)
    let metricsEndpoint: MetricsEndpoint?
    /// Runs once a graceful shutdown has settled: no more requests run, everything released
    /// is durable and queued to its connection (cluster mode: resign here).
    let settled = Mutex<(@Sendable () async -> Void)?>(nil)
    /// Set once ``run()`` shuts the event loops down: a ``shutdown()`` after that (SIGTERM
    /// to a cluster node that already stopped serving) has nothing left to close, and
    /// scheduling on a loop that shut down is an error in NIO (a crash in its strict mode).
    let loopsShutDown = Mutex(false)
    /// Where a standby answers admin queries from (cluster mode); `nil`: it refuses them.
    let standbyReads = Mutex<StandbyReads?>(nil)
    /// Where `ClusterStatus` is answered from (cluster mode); `nil`: this node alone.
    let clusterStatusSource = Mutex<(@Sendable () async -> Leasehold_V1_ClusterStatus)?>(nil)
    /// A cluster node's figures for the metrics; `nil` for a single node.
    let clusterFigures = Mutex<(@Sendable () -> ClusterFigures)?>(nil)

    /// The port the server listens on (useful when configured with port 0).
    public let localPort: Int
    /// The port of the metrics endpoint, if one is configured.
    public var metricsPort: Int? { self.metricsEndpoint?.localPort }

    private init(
        configuration: ServerConfiguration, logger: Logger, group: MultiThreadedEventLoopGroup, mode: Mode, metrics: ServerMetrics?,
        serverChannel: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ServerMessage>, Never>,
        channels: ChannelRegistry, metricsEndpoint: MetricsEndpoint?
    ) {
        self.channels = channels
        self.metricsEndpoint = metricsEndpoint
        self.configuration = configuration
        self.logger = logger
        self.group = group
        self.mode = Mutex(mode)
        self.metrics = metrics
        self.serverChannel = serverChannel
        self.localPort = serverChannel.channel.localAddress?.port ?? configuration.port
    }

    /// Boots the Coordinator from the configured sink and binds the listening socket.
    /// - Throws: a recovery error naming broken invariants, the sink's error, a TLS
    ///   configuration error, or a bind error.
    public static func start(configuration: ServerConfiguration, logger: Logger = Logger(label: "leasehold.server")) async throws -> LeaseholdServer {
        let fileManager = FileManager.default
        try fileManager.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        if configuration.tls == nil {
            let files = TLSFiles(dataDirectory: configuration.dataDirectory)
            if try files.ensureDevelopmentCertificates() {
                logger.notice(
                    "generated development certificates (auto-TLS)",
                    metadata: [
                        "tls.ca": "\(files.caCertificate)", "tls.server": "\(files.serverCertificate)", "tls.admin": "\(files.adminCertificate)",
                    ]
                )
            }
        }
        let sslContext = try Self.makeSSLContext(configuration.effectiveTLS)
        Self.removeSnapshots(in: configuration.dataDirectory, logger: logger)

        let registry = configuration.metrics.map { _ in PrometheusCollectorRegistry() }
        let metrics = registry.map { registry in
            var factory = PrometheusMetricsFactory(registry: registry)
            factory.durationHistogramBuckets = ServerMetrics.durationBuckets
            factory.valueHistogramBuckets = ServerMetrics.valueBuckets
            return ServerMetrics(factory: factory)
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: Swift.max(1, configuration.eventLoopThreads))
        let mode: Mode
        if let sink = configuration.sink {
            mode = .serving(try await Self.boot(sink: sink, role: .single, term: 0, configuration: configuration, group: group, metrics: metrics, logger: logger))
        } else {
            mode = .standby(leader: nil, term: 0, epoch: 0)
            logger.notice("starting as a standby")
        }
        let maxFrame = configuration.maxFrameBytes
        let channels = ChannelRegistry()
        let serverChannel: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ServerMessage>, Never>
        var metricsEndpoint: MetricsEndpoint?
        do {
            if let listener = configuration.metrics, let registry {
                metricsEndpoint = try await MetricsEndpoint.bind(
                    host: listener.host, port: listener.port, group: group, registry: registry, channels: channels
                )
            }
            serverChannel = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .bind(host: configuration.host, port: configuration.port) { channel in
                    channels.add(channel)
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameLength: maxFrame)))
                        try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(ServerMessageEncoder()))
                        return try NIOAsyncChannel<ByteBuffer, ServerMessage>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            metricsEndpoint?.close()
            if case .serving(let serving) = mode {
                serving.journal.close()
                try? serving.sink.close()
            }
            try? await group.shutdownGracefully()
            throw error
        }
        let server = LeaseholdServer(
            configuration: configuration, logger: logger, group: group, mode: mode, metrics: metrics,
            serverChannel: serverChannel, channels: channels, metricsEndpoint: metricsEndpoint
        )
        if case .serving(let serving) = mode { serving.owner.start() }
        logger.notice("listening", metadata: ["server.host": "\(configuration.host)", "server.port": "\(server.localPort)"])
        if let metricsEndpoint, let listener = configuration.metrics {
            logger.notice(
                "serving metrics",
                metadata: ["metrics.host": "\(listener.host)", "metrics.port": "\(metricsEndpoint.localPort ?? listener.port)", "metrics.path": "/metrics"]
            )
        }
        return server
    }

    /// Boots a Coordinator from `sink` (restoring as a new start: a new epoch, every
    /// deadline restarted in full) and makes its owner, not yet started.
    static func boot(
        sink: any JournalSink, role: NodeRole, term: UInt64, configuration: ServerConfiguration, group: MultiThreadedEventLoopGroup,
        metrics: ServerMetrics?, logger: Logger, gate: (@Sendable () -> Bool)? = nil, onFailure: (@Sendable (JournalFailure) -> Void)? = nil
    ) async throws -> Serving {
        var options = Journal.Options()
        options.logger = logger
        options.term = term
        options.onFailure = onFailure
        if let metrics { options.onCommit = { commit in metrics.record(commit) } }
        let boot = try await Boot.open(sink: sink, configuration: configuration.coordinator, at: CoordinatorOwner.now(), options: options)
        let coordinator = boot.coordinator
        logger.notice(
            boot.restored ? "state restored" : "volume created",
            metadata: [
                "journal.sink": "\(type(of: sink))", "journal.position": "\(boot.loadedPosition)", "volume.epoch": "\(coordinator.epoch)",
                "volume.blockSize": "\(coordinator.geometry.blockSize)", "volume.blockCount": "\(coordinator.geometry.blockCount)",
                "node.role": "\(role)", "node.term": "\(term)",
            ]
        )
        let owner = CoordinatorOwner(
            coordinator: coordinator, journal: boot.journal, timerLoop: group.next(), metrics: metrics, tickPacing: configuration.tickPacing, gate: gate
        )
        return Serving(owner: owner, journal: boot.journal, sink: sink, role: role, term: term)
    }

    static func makeSSLContext(_ paths: ServerConfiguration.TLSPaths) throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeServerConfigurationWithMTLS(
            certificateChain: try NIOSSLCertificate.fromPEMFile(paths.certificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: paths.key, format: .pem)),
            trustRoots: .certificates(try NIOSSLCertificate.fromPEMFile(paths.clientCA))
        )
        tls.minimumTLSVersion = .tlsv13
        return try NIOSSLContext(configuration: tls)
    }

    // MARK: - Serving

    /// Serves until a graceful shutdown, then drains and closes everything.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                if let endpoint = self.metricsEndpoint {
                    group.addTask {
                        await endpoint.run { self.sampleMetrics() }
                    }
                }
                try await self.serverChannel.executeThenClose { inbound in
                    for try await channel in inbound {
                        group.addTask { await self.serve(channel) }
                    }
                }
                // No longer accepting: answer what waits, let commits finish, close.
                self.logger.notice("shutting down: answering in-flight requests")
                self.metricsEndpoint?.close()
                await self.owner?.shutDown()
                if let settled = self.settled.withLock({ $0 }) { await settled() }
                let open = self.connections.withLock { Array($0.values) }
                for connection in open { connection.close(.shuttingDown, "the server is shutting down") }
                // Channels without a connection (handshake, no Hello yet) close now; a
                // peer that does not read its last frames gets a few seconds.
                let established = Set(open.map { ObjectIdentifier($0.channel) })
                for channel in self.channels.all where !established.contains(ObjectIdentifier(channel)) { channel.close(promise: nil) }
                group.addTask {
                    let deadline = ContinuousClock.now + .seconds(5)
                    while ContinuousClock.now < deadline, !self.channels.isEmpty {
                        try? await Task.sleep(for: .milliseconds(10))
                    }
                    for channel in self.channels.all { channel.close(promise: nil) }
                }
            }
        } onGracefulShutdown: {
            self.shutdown()
        }
        if let serving = self.serving {
            serving.journal.close()
            try serving.sink.close()
        }
        self.loopsShutDown.withLock { $0 = true }
        try await self.group.shutdownGracefully()
        self.logger.notice("stopped")
    }

    /// Sets what runs once a graceful shutdown has settled: after the last commit's replies
    /// are queued, before the connections close and drain.
    public func whenSettled(_ body: @escaping @Sendable () async -> Void) {
        self.settled.withLock { $0 = body }
    }

    /// Starts a graceful shutdown: stops accepting connections; ``run()`` then drains
    /// and returns.
    public func shutdown() {
        let channel = self.serverChannel.channel
        // On its loop, the loop runs; from elsewhere `close` only enqueues, under the lock
        // that orders it before the loops shut down.
        if channel.eventLoop.inEventLoop {
            channel.close(promise: nil)
        } else {
            self.loopsShutDown.withLock { shutDown in
                if !shutDown { channel.close(promise: nil) }
            }
        }
    }

    /// The current epoch (incremented at every start and every takeover); a standby's is
    /// the last it knew.
    public var epoch: UInt64 {
        switch self.mode.withLock({ $0 }) {
        case .serving(let serving): serving.owner.epoch
        case .standby(_, _, let epoch): epoch
        }
    }

    /// The limits `Hello` states: the served volume's, or the configured ones on a standby.
    var limits: ServerLimits {
        let (configuration, geometry) =
            self.owner?.state.withLock { ($0.coordinator.configuration, $0.coordinator.geometry) }
            ?? (self.configuration.coordinator, self.configuration.coordinator.geometry)
        return ServerLimits(
            configuration: configuration, geometry: geometry, maxFrameBytes: self.configuration.maxFrameBytes,
            maxInFlightRequests: self.configuration.maxInFlightPerConnection
        )
    }

    var serving: Serving? {
        if case .serving(let serving) = self.mode.withLock({ $0 }) { return serving }
        return nil
    }

    /// The owner of the Coordinator, while this node serves.
    var owner: CoordinatorOwner? { self.serving?.owner }

    /// What this node is now: alone, leader or standby.
    public var role: NodeRole {
        switch self.mode.withLock({ $0 }) {
        case .serving(let serving): serving.role
        case .standby: .standby
        }
    }
}

/// The open child channels of a server.
final class ChannelRegistry: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    /// Adds a channel until it closes.
    func add(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        self.channels.withLock { $0[key] = channel }
        channel.closeFuture.whenComplete { _ in self.channels.withLock { _ = $0.removeValue(forKey: key) } }
    }

    var all: [any Channel] { self.channels.withLock { Array($0.values) } }
    var isEmpty: Bool { self.channels.withLock { $0.isEmpty } }
}
