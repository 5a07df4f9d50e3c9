import ArgumentParser
import LeaseholdClient

/// `leaseholdctl cluster`: who leads, who lags and why; any node answers.
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "The cluster's nodes (role, term, epoch, applied log index, lag, clients) and etcd members (health, leader, size).",
        discussion: "Any node answers, a standby too, and one cut off from etcd (it says what it could not read). A single node lists itself."
    )
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let status = try await self.connection.run(anyNode: true) { try await $0.clusterStatus() }
        let output = self.connection.output
        if output.json {
            print(Self.json(status).text)
            return
        }
        var header = status.cluster.isEmpty ? "single node" : "cluster \(status.cluster), answered by \(status.answeredBy)"
        if let head = status.head { header += ", log head \(head)" }
        print(header)
        print(
            Output.table(
                ["NODE", "ENDPOINT", "ROLE", "TERM", "EPOCH", "APPLIED", "LAG", "CLIENTS"],
                status.nodes.map {
                    [$0.name.isEmpty ? "-" : $0.name, $0.endpoint, $0.role.rawValue, "\($0.term)", "\($0.epoch)", "\($0.appliedIndex)", "\($0.lag)", "\($0.connectedClients)"]
                }
            ),
            terminator: ""
        )
        if !status.etcdMembers.isEmpty {
            print(
                Output.table(
                    ["ETCD MEMBER", "CLIENT URL", "HEALTH", "LEADER", "DB BYTES"],
                    status.etcdMembers.map {
                        [$0.name.isEmpty ? "-" : $0.name, $0.clientURL, $0.healthy ? "healthy" : "unhealthy: \($0.error ?? "")", $0.leader ? "yes" : "", "\($0.databaseBytes)"]
                    }
                ),
                terminator: ""
            )
        }
        if let problem = status.problem { print("problem: \(problem)") }
    }

    static func json(_ status: ClusterStatus) -> JSONValue {
        .object([
            ("cluster", .string(status.cluster)), ("answeredBy", .string(status.answeredBy)),
            ("head", status.head.map { .object([("term", .number($0.term)), ("index", .number($0.index))]) } ?? .null),
            (
                "nodes",
                .array(
                    status.nodes.map {
                        .object([
                            ("name", .string($0.name)), ("endpoint", .string($0.endpoint)), ("role", .string($0.role.rawValue)), ("term", .number($0.term)),
                            ("epoch", .number($0.epoch)), ("appliedIndex", .number($0.appliedIndex)), ("lag", .number($0.lag)),
                            ("connectedClients", .number(UInt64($0.connectedClients))),
                        ])
                    }
                )
            ),
            (
                "etcdMembers",
                .array(
                    status.etcdMembers.map {
                        .object([
                            ("name", .string($0.name)), ("clientURL", .string($0.clientURL)), ("healthy", .bool($0.healthy)), ("leader", .bool($0.leader)),
                            ("dbSize", .number($0.databaseBytes)), ("raftTerm", .number($0.raftTerm)), ("error", $0.error.map { .string($0) } ?? .null),
                        ])
                    }
                )
            ),
            ("problem", status.problem.map { .string($0) } ?? .null),
        ])
    }
}
