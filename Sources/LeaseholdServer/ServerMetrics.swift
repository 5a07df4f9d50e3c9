import CoreMetrics
import LeaseholdCore
import LeaseholdJournal
import LeaseholdMessages
import Synchronization

/// The server's metrics, made through a swift-metrics factory (Prometheus in
/// `leaseholdd --metrics-port`; docs/operations.md lists them).
///
/// Counters and histograms are recorded where things happen: requests when answered,
/// commits by the journal's writer, recalls and expirations from the observations of
/// each Coordinator step. Gauges of the Coordinator's state (sessions, pins, layouts,
/// blocks) are sampled when the endpoint is scraped, not kept up to date per request.
final class ServerMetrics: Sendable {
    struct RequestKey: Hashable {
        var operation: String
        var result: String
    }

    private let factory: any MetricsFactory
    private let requests = Mutex<[RequestKey: CoreMetrics.Counter]>([:])

    let commitSteps: Recorder
    let commitDuration: CoreMetrics.Timer
    let commitSync: CoreMetrics.Timer
    let recallsSent: CoreMetrics.Counter
    let recallsAnswered: CoreMetrics.Counter
    let recallsRevoked: CoreMetrics.Counter
    let recallLatency: CoreMetrics.Timer
    let expirations: CoreMetrics.Counter
    let expiryLateness: CoreMetrics.Timer

    let sessions: Gauge
    let connectedSessions: Gauge
    let pins: Gauge
    let layouts: Gauge
    let outstandingRecalls: Gauge
    let freeBlocks: Gauge
    let busyBlocks: Gauge
    let quarantinedBlocks: Gauge
    let mappedBlocks: Gauge
    let unresolvedFences: Gauge
    let connections: Gauge
    let epoch: Gauge
    // Cluster mode.
    let roles: [(NodeRole, Gauge)]
    let term: Gauge
    let appliedIndex: Gauge
    let lag: Gauge
    let batchesInFlight: Gauge
    let takeovers: CoreMetrics.Counter
    let standDowns: CoreMetrics.Counter

    /// Histogram buckets `leaseholdd` gives the Prometheus factory, by metric label.
    static let durationBuckets: [String: [Duration]] = [
        "leasehold_commit_duration_seconds": ServerMetrics.microsecondBuckets,
        "leasehold_commit_sync_duration_seconds": ServerMetrics.microsecondBuckets,
        "leasehold_recall_latency_seconds": [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(500),
            .seconds(1), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
        ],
        "leasehold_expiry_lateness_seconds": [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
        ],
    ]
    static let valueBuckets: [String: [Double]] = [
        "leasehold_commit_steps": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1_024]
    ]
    private static let microsecondBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(500),
        .seconds(1),
    ]

    init(factory: any MetricsFactory) {
        self.factory = factory
        self.commitSteps = Recorder(label: "leasehold_commit_steps", factory: factory)
        self.commitDuration = Timer(label: "leasehold_commit_duration_seconds", factory: factory)
        self.commitSync = Timer(label: "leasehold_commit_sync_duration_seconds", factory: factory)
        self.recallsSent = Counter(label: "leasehold_recalls_sent_total", factory: factory)
        self.recallsAnswered = Counter(label: "leasehold_recalls_answered_total", factory: factory)
        self.recallsRevoked = Counter(label: "leasehold_recalls_revoked_total", factory: factory)
        self.recallLatency = Timer(label: "leasehold_recall_latency_seconds", factory: factory)
        self.expirations = Counter(label: "leasehold_expirations_total", factory: factory)
        self.expiryLateness = Timer(label: "leasehold_expiry_lateness_seconds", factory: factory)
        func gauge(_ label: String) -> Gauge { Gauge(label: label, factory: factory) }
        self.sessions = gauge("leasehold_sessions")
        self.connectedSessions = gauge("leasehold_connected_sessions")
        self.pins = gauge("leasehold_pins")
        self.layouts = gauge("leasehold_layouts")
        self.outstandingRecalls = gauge("leasehold_outstanding_recalls")
        self.freeBlocks = gauge("leasehold_free_blocks")
        self.busyBlocks = gauge("leasehold_busy_blocks")
        self.quarantinedBlocks = gauge("leasehold_quarantined_blocks")
        self.mappedBlocks = gauge("leasehold_mapped_blocks")
        self.unresolvedFences = gauge("leasehold_unresolved_fences")
        self.connections = gauge("leasehold_connections")
        self.epoch = gauge("leasehold_epoch")
        self.roles = [NodeRole.single, .leader, .standby].map {
            ($0, Gauge(label: "leasehold_node_role", dimensions: [("role", $0.rawValue)], factory: factory))
        }
        self.term = gauge("leasehold_cluster_term")
        self.appliedIndex = gauge("leasehold_cluster_applied_index")
        self.lag = gauge("leasehold_cluster_lag_entries")
        self.batchesInFlight = gauge("leasehold_journal_batches_in_flight")
        self.takeovers = Counter(label: "leasehold_cluster_takeovers_total", factory: factory)
        self.standDowns = Counter(label: "leasehold_cluster_stand_downs_total", factory: factory)
    }

    /// What a node is in its cluster, at scrape time.
    func sample(role: NodeRole, term: UInt64, cluster: ClusterFigures?, batchesInFlight: Int) {
        for (candidate, gauge) in self.roles { gauge.record(candidate == role ? 1 : 0) }
        self.term.record(term)
        self.batchesInFlight.record(batchesInFlight)
        if let cluster {
            self.appliedIndex.record(cluster.appliedIndex)
            self.lag.record(cluster.lag)
        }
    }

    /// Counts one answered request: `result` is `ok` or the error's name.
    func request(_ operation: String, _ reply: Reply) {
        self.request(operation, result: reply.error?.code.name ?? "ok")
    }

    func request(_ operation: String, result: String) {
        let key = RequestKey(operation: operation, result: result)
        let counter = self.requests.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(label: "leasehold_requests_total", dimensions: [("op", operation), ("result", result)], factory: self.factory)
            counters[key] = counter
            return counter
        }
        counter.increment()
    }

    func record(_ commit: Journal.Commit) {
        self.commitSteps.record(commit.changeSets)
        self.commitDuration.record(commit.duration)
        self.commitSync.record(commit.sync)
    }

    func record(_ observations: Observations) {
        if observations.recallsSent > 0 { self.recallsSent.increment(by: observations.recallsSent) }
        for latency in observations.recallsAnswered {
            self.recallsAnswered.increment()
            self.recallLatency.record(latency)
        }
        if observations.recallsRevoked > 0 { self.recallsRevoked.increment(by: observations.recallsRevoked) }
        for lateness in observations.expiryLateness {
            self.expirations.increment()
            self.expiryLateness.record(lateness)
        }
    }

    /// Sets the gauges from the Coordinator's figures, at scrape time.
    func sample(_ status: VolumeStatus, connectedSessions: Int, connections: Int) {
        self.sessions.record(status.sessions)
        self.connectedSessions.record(connectedSessions)
        self.pins.record(status.pins)
        self.layouts.record(status.layouts)
        self.outstandingRecalls.record(status.outstandingRecalls)
        self.freeBlocks.record(status.freeBlocks)
        self.busyBlocks.record(status.busyBlocks)
        self.quarantinedBlocks.record(status.quarantinedBlocks)
        self.mappedBlocks.record(status.mappedBlocks)
        self.unresolvedFences.record(status.unresolvedFences)
        self.connections.record(connections)
        self.epoch.record(status.epoch)
    }
}

/// A cluster node's figures for the metrics (``LeaseholdServer/serveClusterFigures(from:)``).
public struct ClusterFigures: Sendable {
    /// The highest log index applied (a standby) or made durable (the leader).
    public var appliedIndex: UInt64
    /// Entries behind the leader, as of its last report (0 on the leader).
    public var lag: UInt64

    public init(appliedIndex: UInt64, lag: UInt64) {
        self.appliedIndex = appliedIndex
        self.lag = lag
    }
}

extension CoreMetrics.Timer {
    func record(_ duration: Duration) {
        self.recordNanoseconds(duration.nanosecondsClamped)
    }
}
