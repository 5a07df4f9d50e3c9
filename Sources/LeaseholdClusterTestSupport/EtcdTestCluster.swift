import Foundation
import LeaseholdCluster
import LeaseholdEtcd
import Synchronization

/// Clusters of the tests in the shared etcd member: each asks for a fresh cluster name,
/// a client (one per member set, kept for the life of the process), and a sink that
/// leads it.
public enum EtcdTestCluster {
    private static let clients = Mutex<[String: EtcdClient]>([:])

    /// A client of `members`, shared by the tests of the process.
    public static func client(_ members: EtcdMembers) -> EtcdClient {
        let key = members.endpoints.joined(separator: ",")
        return Self.clients.withLock { clients in
            if let client = clients[key] { return client }
            let client = EtcdClient(EtcdConfiguration(endpoints: members.endpoints, requestTimeout: .seconds(10)))
            clients[key] = client
            return client
        }
    }

    /// A cluster name no other test uses.
    public static func freshName() -> String { "test-\(UUID().uuidString.prefix(13).lowercased())" }

    /// A lease and a leader key under it for `keys`: what winning the election gives.
    public static func lead(_ keys: ClusterKeys, client: EtcdClient, ttl: Int64 = 60) async throws -> (lease: EtcdLease, leadership: EtcdSink.Leadership) {
        let lease = try await client.grantLease(ttl: ttl)
        let key = keys.leader(lease: lease.id)
        let result = try await client.txn(
            [.createRevision(key, equals: 0)], success: [.put(key, Array("test".utf8), lease: lease.id)], failure: []
        )
        guard result.succeeded else { throw EtcdMembersError("leader key \(key) already exists") }
        return (lease, EtcdSink.Leadership(key: key, term: UInt64(result.revision)))
    }

    /// A sink that leads a fresh cluster in the shared member.
    /// - Parameter compacting: on the member of the tests that compact etcd's history
    ///   (``EtcdMembers/sharedForCompaction()``).
    public static func leaderSink(maxBatchesInFlight: Int = 8, limits: EtcdSink.Limits = EtcdSink.Limits(), compacting: Bool = false) async throws -> EtcdSink {
        let members = compacting ? try await EtcdMembers.sharedForCompaction() : try await EtcdMembers.shared()
        let client = Self.client(members)
        let keys = ClusterKeys(cluster: Self.freshName())
        let (_, leadership) = try await Self.lead(keys, client: client)
        return EtcdSink(client: client, keys: keys, leadership: leadership, maxBatchesInFlight: maxBatchesInFlight, limits: limits)
    }
}
