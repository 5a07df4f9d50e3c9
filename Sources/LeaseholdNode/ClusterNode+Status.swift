import LeaseholdCluster
import LeaseholdEtcd
import LeaseholdJournal
import LeaseholdMessages

// MARK: - ClusterStatus
//
// What `leaseholdctl cluster` shows, as any node sees it: this node from its own live
// figures, the others from their reports in etcd (``NodeDirectory``), their lag behind
// the log head, and each etcd member's own `Status`. Every read has a short deadline and
// a failure is reported in `problem` (a node without an etcd quorum still answers).

extension ClusterNode {
    /// How long one etcd member's `Status` may take before it counts as unhealthy.
    static let memberStatusTimeout = Duration.seconds(1)

    func clusterStatus() async -> Leasehold_V1_ClusterStatus {
        var status = Leasehold_V1_ClusterStatus()
        status.cluster = self.configuration.cluster
        status.answeredBy = self.configuration.node
        var problems: [String] = []

        async let directory = NodeDirectory.read(client: self.client, keys: self.keys)
        async let head = LogFollower(client: self.client, keys: self.keys).head()
        async let members = self.etcdMembers()

        var headPosition: LogPosition?
        do {
            headPosition = try await head.position
        } catch {
            problems.append("the log head could not be read: \(error)")
        }
        if let position = headPosition {
            status.head.term = position.term
            status.head.index = position.index
        }
        var entries: [NodeDirectory.Entry] = []
        do {
            entries = try await directory
        } catch {
            problems.append("the nodes' reports could not be read: \(error)")
        }
        // This node from its live figures, the others as they reported themselves.
        entries.removeAll { $0.name == self.configuration.node }
        entries.append(self.ownEntry)
        status.nodes = entries.sorted { $0.name < $1.name }.map { entry in
            var node = Leasehold_V1_ClusterNodeInfo()
            node.name = entry.name
            node.endpoint = entry.endpoint
            node.role = entry.role.wire
            node.term = entry.term
            node.epoch = entry.epoch
            node.appliedIndex = entry.appliedIndex
            node.connectedClients = UInt32(clamping: entry.connectedClients)
            if let position = headPosition, position.index > entry.appliedIndex { node.lag = position.index - entry.appliedIndex }
            return node
        }
        let (infos, memberProblem) = await members
        status.etcdMembers = infos
        if let memberProblem { problems.append(memberProblem) }
        status.problem = problems.joined(separator: "; ")
        return status
    }

    /// Every etcd member with what its own `Status` says; the configured endpoints when
    /// the member list cannot be read.
    func etcdMembers() async -> ([Leasehold_V1_EtcdMemberInfo], String?) {
        var problem: String?
        var listed: [(name: String, url: String, id: Int64?)]
        do {
            listed = try await self.client.members().map { ($0.name, $0.clientURLs.first ?? "", $0.id) }
        } catch {
            problem = "the etcd member list could not be read: \(error)"
            listed = self.configuration.etcd.endpoints.map { ("", $0, nil) }
        }
        let client = self.client
        let statuses = await withTaskGroup(of: (Int, Result<EtcdStatus, any Error>).self) { group in
            for (index, member) in listed.enumerated() where !member.url.isEmpty {
                group.addTask {
                    // The result first, then the tuple: `return (index, .success(try await
                    // ...))` inside `do` in a closure comes back with index 0 from a
                    // release build of Swift 6.3.1 (an optimizer bug, reproduced apart),
                    // and every member but one read as not started.
                    let result: Result<EtcdStatus, any Error>
                    do {
                        result = .success(try await client.status(of: member.url, timeout: Self.memberStatusTimeout))
                    } catch {
                        result = .failure(error)
                    }
                    return (index, result)
                }
            }
            var results: [Int: Result<EtcdStatus, any Error>] = [:]
            for await (index, result) in group { results[index] = result }
            return results
        }
        let infos = listed.enumerated().map { index, member in
            var info = Leasehold_V1_EtcdMemberInfo()
            info.name = member.name
            info.clientURL = member.url
            switch statuses[index] {
            case .success(let status)?:
                // Healthy: it answers, reports no errors and knows a raft leader (a member
                // cut off from the quorum answers `Status` too, without a leader).
                info.healthy = status.errors.isEmpty && status.leader != 0
                info.leader = status.leader != 0 && status.leader == status.memberID
                info.dbSize = UInt64(clamping: status.dbSize)
                info.raftTerm = UInt64(clamping: status.raftTerm)
                info.error = status.leader == 0 ? "it knows no raft leader (no quorum)" : status.errors.joined(separator: "; ")
            case .failure(let error)?:
                info.error = "\(error)"
            case nil:
                info.error = "it has no client URL (not started yet)"
            }
            return info
        }
        return (infos.sorted { ($0.name, $0.clientURL) < ($1.name, $1.clientURL) }, problem)
    }
}
