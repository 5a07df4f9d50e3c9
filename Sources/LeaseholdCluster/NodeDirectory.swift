import LeaseholdEtcd
import LeaseholdMessages

/// Each node's applied position, published in etcd for operators and tools (issue 11,
/// "each node publishes its applied position"; `leaseholdctl cluster` builds on it).
///
/// Lifecycle: a node puts `nodes/<name>` (a `NodeStatus`) under the lease of its current
/// election whenever its role, term, applied index, epoch or number of connected clients
/// changed, at most once a second
/// (``ClusterNode``); the key goes with the lease, so a node that died or lost its
/// election drops out within its lease TTL, and its next round publishes again under the
/// new lease. Nothing in the cluster's safety depends on these keys: they are reports.
public enum NodeDirectory {
    /// One node's report.
    public struct Entry: Sendable, Hashable {
        public var name: String
        public var endpoint: String
        public var role: NodeRole
        public var term: UInt64
        public var appliedIndex: UInt64
        public var epoch: UInt64
        public var connectedClients: Int

        public init(name: String, endpoint: String, role: NodeRole, term: UInt64, appliedIndex: UInt64, epoch: UInt64 = 0, connectedClients: Int = 0) {
            self.name = name
            self.endpoint = endpoint
            self.role = role
            self.term = term
            self.appliedIndex = appliedIndex
            self.epoch = epoch
            self.connectedClients = connectedClients
        }

        var message: Leasehold_Cluster_V1_NodeStatus {
            var message = Leasehold_Cluster_V1_NodeStatus()
            message.name = self.name
            message.endpoint = self.endpoint
            message.role = self.role.wire
            message.term = self.term
            message.appliedIndex = self.appliedIndex
            message.epoch = self.epoch
            message.connectedClients = UInt32(clamping: self.connectedClients)
            return message
        }

        init(message: Leasehold_Cluster_V1_NodeStatus) {
            self.init(
                name: message.name, endpoint: message.endpoint, role: NodeRole(wire: message.role), term: message.term,
                appliedIndex: message.appliedIndex, epoch: message.epoch, connectedClients: Int(message.connectedClients)
            )
        }
    }

    /// Puts `entry` under `lease`.
    public static func publish(_ entry: Entry, lease: Int64, client: EtcdClient, keys: ClusterKeys) async throws {
        _ = try await client.put(keys.node(entry.name), try entry.message.serializedBytes(), lease: lease)
    }

    /// Every node whose lease is alive, by name.
    public static func read(client: EtcdClient, keys: ClusterKeys) async throws -> [Entry] {
        let range = try await client.range(keys.nodesPrefix, end: etcdPrefixEnd(keys.nodesPrefix))
        return try range.kvs.map { Entry(message: try Leasehold_Cluster_V1_NodeStatus(serializedBytes: $0.value)) }.sorted { $0.name < $1.name }
    }
}
