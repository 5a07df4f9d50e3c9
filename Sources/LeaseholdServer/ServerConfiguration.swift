import Foundation
import LeaseholdCertificates
import LeaseholdCore
import LeaseholdJournal
import LeaseholdMessages
import LeaseholdWire
import NIOCore

/// Everything a server needs to start. `leaseholdd` fills it from flags, environment
/// and a config file (docs/configuration.md); tests build it directly.
public struct ServerConfiguration: Sendable {
    /// Where the journal makes the Coordinator's state durable: the SQLite file of the data
    /// directory (`leaseholdd` opens it), or memory in tests. The server loads its state
    /// from it at start and closes it when it stops. `nil`: a cluster node, which starts
    /// as a standby and gets its sink (the etcd log) when it wins leadership.
    public var sink: (any JournalSink)?
    /// The data directory: auto-TLS certificates and snapshots (and, for `leaseholdd`, the
    /// database).
    public var dataDirectory: String = "./leasehold-data"
    /// Address to listen on; port 0 picks a free one (see ``LeaseholdServer/localPort``).
    public var host: String = "127.0.0.1"
    public var port: Int = 7420
    /// Certificate paths; all `nil` means auto-TLS in the data directory.
    public var tls: TLSPaths?
    /// Identities with the admin role.
    public var admins: Set<String> = ["admin"]
    /// Identities with the target role.
    public var targets: Set<String> = []
    /// A cluster's node identities: they may copy snapshots, as a peer joining does.
    public var nodeIdentities: Set<String> = []
    /// In a cluster, the UUID of the volume it serves (etcd's `volume`): snapshots name it.
    public var volumeUUID: UUID?
    /// Coordinator settings; `geometry` applies at the first start only.
    public var coordinator = CoordinatorConfiguration()
    /// Largest frame accepted and sent.
    public var maxFrameBytes: Int = FrameLimits.defaultMaxFrameLength
    /// Requests a connection may have unanswered; more are `resourceExhausted`.
    public var maxInFlightPerConnection: Int = 1_024
    /// Frames queued for a connection before it is closed as a slow consumer.
    public var maxQueuedFramesPerConnection: Int = 65_536
    /// Event loop threads (NIO); the journal has its own.
    public var eventLoopThreads: Int = System.coreCount
    /// Time from accepting a connection to its `Hello` (the TLS handshake included); a
    /// peer that takes longer is closed, so a silent or half-open peer holds nothing.
    public var helloTimeout: Duration = .seconds(10)
    /// While more timers are due than one tick fires (`coordinator.maxTimersPerStep`),
    /// the next tick waits this long: an expiry storm is paced at maxTimersPerStep per
    /// tickPacing (256 per 10 ms, 25,600 timers/s) instead of taking the journal over.
    public var tickPacing: Duration = .milliseconds(10)
    /// Where to serve Prometheus metrics (plain HTTP, `GET /metrics`); `nil`, the
    /// default, serves none and records none.
    public var metrics: MetricsListener?

    public init(sink: (any JournalSink)?) {
        self.sink = sink
    }

    /// The address of the metrics endpoint; port 0 picks a free one (see
    /// ``LeaseholdServer/metricsPort``).
    public struct MetricsListener: Sendable, Hashable {
        public var host: String
        public var port: Int

        public init(host: String = "127.0.0.1", port: Int = 9420) {
            self.host = host
            self.port = port
        }
    }

    /// Paths of configured certificates (PEM).
    public struct TLSPaths: Sendable, Hashable {
        public var certificate: String
        public var key: String
        /// The CA that signs client certificates.
        public var clientCA: String

        public init(certificate: String, key: String, clientCA: String) {
            self.certificate = certificate
            self.key = key
            self.clientCA = clientCA
        }
    }

    /// The TLS paths in effect: configured ones, or the data directory's development set.
    public var effectiveTLS: TLSPaths {
        if let tls = self.tls { return tls }
        let files = TLSFiles(dataDirectory: self.dataDirectory)
        return TLSPaths(certificate: files.serverCertificate, key: files.serverKey, clientCA: files.caCertificate)
    }
}
