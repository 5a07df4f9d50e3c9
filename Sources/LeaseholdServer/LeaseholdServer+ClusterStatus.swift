import LeaseholdCore
import LeaseholdMessages
import Synchronization

// MARK: - ClusterStatus
//
// Every node answers `ClusterStatus` (admin role): a standby, a leader whose lease ran
// out, a node that cannot reach etcd. In cluster mode the node installs where the answer
// comes from (`serveClusterStatus`: the nodes' published reports, the log head, the etcd
// members); a single node answers with itself.

extension LeaseholdServer {
    /// Cluster mode: `ClusterStatus` is answered by `source` (which must not wait long on
    /// etcd: it says what it could not read instead).
    public func serveClusterStatus(from source: @escaping @Sendable () async -> Leasehold_V1_ClusterStatus) {
        self.clusterStatusSource.withLock { $0 = source }
    }

    /// Cluster mode: where the metrics' applied index and lag come from.
    public func serveClusterFigures(from source: @escaping @Sendable () -> ClusterFigures) {
        self.clusterFigures.withLock { $0 = source }
    }

    /// Counts a takeover (this node began to lead) or a stand-down in the metrics.
    public func countRoleChange(tookOver: Bool) {
        guard let metrics = self.metrics else { return }
        if tookOver { metrics.takeovers.increment() } else { metrics.standDowns.increment() }
    }

    /// Sets the gauges when the metrics endpoint is scraped.
    func sampleMetrics() {
        guard let metrics = self.metrics else { return }
        let serving = self.serving
        serving?.owner.sampleMetrics(connections: self.connectedClients)
        let (role, _, term) = self.announcedRole
        metrics.sample(
            role: role, term: term, cluster: self.clusterFigures.withLock { $0 }?(), batchesInFlight: serving?.journal.batchesInFlight ?? 0
        )
    }

    /// Client connections open now (past Hello).
    public var connectedClients: Int { self.connections.withLock { $0.count } }

    func answerClusterStatus(id: UInt64, _ connection: Connection) async {
        guard connection.caller.isAdmin else {
            connection.reply(id, .failure(.permissionDenied("clusterStatus needs the admin role; '\(connection.caller.identity)' does not have it")))
            return
        }
        var response = WireResponse()
        if let source = self.clusterStatusSource.withLock({ $0 }) {
            response.clusterStatus = await source()
        } else {
            var node = Leasehold_V1_ClusterNodeInfo()
            node.endpoint = "\(self.configuration.host):\(self.localPort)"
            node.role = self.role.wire
            node.epoch = self.epoch
            node.connectedClients = UInt32(clamping: self.connectedClients)
            response.clusterStatus.nodes = [node]
        }
        connection.send(.response(id: id, response))
    }
}
