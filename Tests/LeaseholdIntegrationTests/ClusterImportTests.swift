import Foundation
import LeaseholdCertificates
import LeaseholdClient
import LeaseholdClusterTestSupport
import LeaseholdTestSupport
import Testing

/// `leaseholdd cluster init --import` with real processes: a running single node cannot
/// be imported (its data directory is locked), a stopped one is, its directory then
/// refuses to serve alone, and a cluster node serves what it held.
@Suite("Cluster: importing a single node", .serialized, .enabled(if: EtcdMembers.isInstalled || requireEtcd()))
struct ClusterImportTests {
    static func leaseholdd(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        let child = try Child("leaseholdd", arguments)
        let status = try await child.waitForEnd(timeout: .seconds(60))
        return (status, child.stdout + child.stderr)
    }

    @Test("a locked directory is refused; a stopped node's volume moves into the cluster and its directory no longer serves alone")
    func importStoppedNode() async throws {
        let etcd = try await EtcdMembers.shared()
        let single = try await Daemon()
        let client = try await single.client("host-a")
        let session = try await client.openSession(name: "s", ttl: .seconds(30))
        let inode = try await session.createInode()
        _ = try await session.allocate(inode, ByteRange(offset: 0, length: 4 * 4_096))
        try await session.close()
        client.close()

        let cluster = "import-\(UUID().uuidString.prefix(8).lowercased())"
        let initialize = ["cluster", "init", "--etcd-endpoints", etcd.endpoints.joined(separator: ","), "--cluster", cluster, "--import", single.directory]
        // Running: its data directory is locked.
        let running = try await Self.leaseholdd(initialize)
        #expect(running.status != 0 && running.output.contains("another leaseholdd uses"), "\(running.output)")
        // A second server on the same directory is refused the same way.
        let second = try await Self.leaseholdd(["--data-dir", single.directory, "--listen", "127.0.0.1:0"])
        #expect(second.status != 0 && second.output.contains("another leaseholdd uses"), "\(second.output)")

        // Stopped: imported.
        let port = single.port
        await single.kill()
        let imported = try await Self.leaseholdd(initialize)
        #expect(imported.status == 0 && imported.output.contains("imported from"), "\(imported.output)")
        let alone = try await Self.leaseholdd(["--data-dir", single.directory, "--listen", "127.0.0.1:\(port)"])
        #expect(alone.status != 0 && alone.output.contains("belongs to cluster '\(cluster)'"), "\(alone.output)")
        let again = try await Self.leaseholdd(initialize)
        #expect(again.status != 0, "a second import of the same directory: \(again.output)")

        // A cluster node serves the imported volume (the single node's certificates).
        let node = FileManager.default.temporaryDirectory.appendingPathComponent("leasehold-import-node-\(UUID().uuidString)").path
        let files = TLSFiles(dataDirectory: single.directory)
        let serving = try Child(
            "leaseholdd",
            [
                "--data-dir", node, "--listen", "127.0.0.1:\(port)", "--etcd-endpoints", etcd.endpoints.joined(separator: ","), "--cluster", cluster,
                "--node", "n0", "--leader-ttl", "2s", "--cert", files.serverCertificate, "--key", files.serverKey, "--client-ca", files.caCertificate,
                "--log-level", "notice",
            ]
        )
        defer {
            serving.signal(SIGTERM)
            try? FileManager.default.removeItem(atPath: node)
            try? FileManager.default.removeItem(atPath: single.directory)
        }
        try await eventually("the node leads the imported volume", timeout: .seconds(60)) {
            guard serving.isRunning else { throw DaemonFailed(message: "the node exited: \(serving.stderr)") }
            guard let admin = try? await single.client() else { return false }
            defer { admin.close() }
            // The leader's answer (a standby answers from the log it applied, or notLeader).
            guard let status = try? await admin.status(), status.reflects == nil, let inodes = try? await admin.inodes(),
                let violations = try? await admin.checkInvariants(), violations.isEmpty
            else { return false }
            return inodes.contains { $0.inode == inode }
        }
        serving.signal(SIGTERM)
        await serving.wait(timeout: .seconds(20))
    }
}
