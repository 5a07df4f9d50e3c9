import LeaseholdMessages

/// `clusterStatus`: who leads, who lags and why, as the node that answered sees it
/// (every node answers, a standby and a node cut off from etcd too). A single node lists
/// itself alone.
public struct ClusterStatus: Sendable, Hashable, Codable {
    /// A node as it last reported itself in etcd (the answering node: as it is now).
    public struct Node: Sendable, Hashable, Codable {
        public var name: String
        /// Where clients reach it.
        public var endpoint: String
        public var role: NodeRole
        /// The newest term it knows: its own while it leads.
        public var term: UInt64
        public var epoch: UInt64
        /// The highest log index it applied (a standby) or made durable (the leader).
        public var appliedIndex: UInt64
        /// Log entries it is behind the head (0 when the head is unknown).
        public var lag: UInt64
        public var connectedClients: Int
    }

    /// An etcd member and what its own `Status` said.
    public struct EtcdMember: Sendable, Hashable, Codable {
        public var name: String
        public var clientURL: String
        public var healthy: Bool
        /// The member says it is the raft leader.
        public var leader: Bool
        /// Its database size in bytes (what etcd's quota is checked against).
        public var databaseBytes: UInt64
        /// Why it is not healthy.
        public var error: String?
        /// Its raft term (0 when it did not answer): it grows with every etcd election.
        public var raftTerm: UInt64
    }

    /// The cluster's name; empty for a single node.
    public var cluster: String
    /// The node that answered.
    public var answeredBy: String
    /// The log head (`term:index`); `nil` when etcd could not be read, or a single node.
    public var head: ServerStatus.LogPosition?
    public var nodes: [Node]
    public var etcdMembers: [EtcdMember]
    /// What could not be read and why; `nil` when everything was.
    public var problem: String?

    /// The node that says it leads, if any.
    public var leader: Node? { self.nodes.first { $0.role == .leader } }

    init(wire: Leasehold_V1_ClusterStatus) {
        self.cluster = wire.cluster
        self.answeredBy = wire.answeredBy
        self.head = wire.hasHead ? ServerStatus.LogPosition(term: wire.head.term, index: wire.head.index) : nil
        self.nodes = wire.nodes.map {
            Node(
                name: $0.name, endpoint: $0.endpoint, role: NodeRole(wire: $0.role), term: $0.term, epoch: $0.epoch, appliedIndex: $0.appliedIndex,
                lag: $0.lag, connectedClients: Int($0.connectedClients)
            )
        }
        self.etcdMembers = wire.etcdMembers.map {
            EtcdMember(
                name: $0.name, clientURL: $0.clientURL, healthy: $0.healthy, leader: $0.leader, databaseBytes: $0.dbSize,
                error: $0.error.isEmpty ? nil : $0.error, raftTerm: $0.raftTerm
            )
        }
        self.problem = wire.problem.isEmpty ? nil : wire.problem
    }
}

extension LeaseholdClient {
    /// The cluster's nodes and etcd members (admin role). Any node answers: a client made
    /// with ``ClientConfiguration/acceptsStandby`` asks the first node that answers, even
    /// while no node leads.
    public func clusterStatus() async throws -> ClusterStatus {
        let response = try await self.raw(.clusterStatus, retry: true)
        guard case .clusterStatus(let status)? = response.result else { throw LeaseholdSession.unexpected("clusterStatus") }
        return ClusterStatus(wire: status)
    }
}
