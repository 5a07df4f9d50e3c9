import Foundation
import LeaseholdCertificates
import LeaseholdClusterTestSupport
import LeaseholdEtcd
import NIOSSL
import Testing

@Suite("etcd client over the JSON gateway", .enabled(if: EtcdMembers.isInstalled || requireEtcd()))
struct EtcdClientTests {
    @Test("put, range, guarded transactions and leases against a real member")
    func basics() async throws {
        let members = try await EtcdMembers.shared()
        let client = EtcdTestCluster.client(members)
        let prefix = "/leasehold-test/\(EtcdTestCluster.freshName())/"
        let written = try await client.put(prefix + "a", [0, 1, 2, 255])
        let read = try await client.range(prefix + "a")
        #expect(read.kvs.first?.value == [0, 1, 2, 255])
        #expect(read.kvs.first?.createRevision == written)
        #expect(read.revision >= written)

        // A guarded write: holds only while the compare does; the failure branch reads.
        let held = try await client.txn([.modRevision(prefix + "a", equals: written)], success: [.put(prefix + "b", [7])], failure: [])
        #expect(held.succeeded)
        let refused = try await client.txn(
            [.modRevision(prefix + "a", equals: written + 100)], success: [.put(prefix + "c", [8])], failure: [.range(prefix + "a")]
        )
        #expect(!refused.succeeded)
        #expect(refused.ranges.first?.kvs.first?.modRevision == written)
        #expect(try await client.range(prefix + "c").kvs.isEmpty, "the success branch of a failed compare wrote nothing")

        let all = try await client.range(prefix, end: etcdPrefixEnd(prefix))
        #expect(all.kvs.map(\.key) == [prefix + "a", prefix + "b"])

        // A lease: granted at least the TTL asked, renewed, revoked with its keys.
        let lease = try await client.grantLease(ttl: 30)
        #expect(lease.ttl >= 30)
        try await client.put(prefix + "leased", [1], lease: lease.id)
        #expect(try await client.keepAlive(lease: lease.id) >= 30)
        try await client.revoke(lease: lease.id)
        #expect(try await client.range(prefix + "leased").kvs.isEmpty, "revoking a lease deletes its keys")
        #expect(try await client.keepAlive(lease: lease.id) == 0, "a revoked lease renews to TTL 0")
        await #expect(throws: EtcdError.self) { try await client.put(prefix + "x", [1], lease: lease.id) }
        do {
            try await client.put(prefix + "x", [1], lease: lease.id)
        } catch let error as EtcdError {
            #expect(error.kind == .refused && error.isLeaseNotFound, "\(error)")
        }
        #expect(try await client.delete(prefix, end: etcdPrefixEnd(prefix)) == 2)
        let status = try await client.status()
        #expect(status.version.hasPrefix("3."))
        #expect(try await client.alarms().isEmpty)
    }

    @Test("an endpoint that does not answer is skipped for the next; none answering is unreachable, not uncertain")
    func endpoints() async throws {
        let members = try await EtcdMembers.shared()
        let dead = "http://127.0.0.1:\(try freePorts(1)[0])"
        let client = EtcdClient(EtcdConfiguration(endpoints: [dead] + members.endpoints))
        defer { Task { try await client.shutdown() } }
        #expect(try await client.status().version.hasPrefix("3."))
        let none = EtcdClient(EtcdConfiguration(endpoints: [dead]))
        defer { Task { try await none.shutdown() } }
        do {
            _ = try await none.range("/x")
            Issue.record("a range on a port nobody listens on succeeded")
        } catch let error as EtcdError {
            #expect(error.kind == .unreachable, "\(error)")
            #expect(!error.mayHaveWritten)
        }
    }
}

@Suite("etcd watches", .enabled(if: EtcdMembers.isInstalled || requireEtcd()))
struct EtcdWatchTests {
    @Test("a watch delivers puts and deletes as they happen, in revision order, from the revision asked for")
    func watch() async throws {
        let members = try await EtcdMembers.shared()
        let client = EtcdTestCluster.client(members)
        let prefix = "/leasehold-test/\(EtcdTestCluster.freshName())/"
        let before = try await client.put(prefix + "old", [0])
        var updates = client.watch(prefix, end: etcdPrefixEnd(prefix), from: before).makeAsyncIterator()
        var history: [EtcdEvent] = []
        while history.isEmpty, let update = try await updates.next() { history += update.events }
        #expect(history.map(\.kv.key) == [prefix + "old"], "history from the revision asked for")
        try await client.put(prefix + "a", [1])
        var seen: [EtcdEvent] = []
        while seen.isEmpty, let update = try await updates.next() { seen += update.events }
        #expect(seen.first?.kv.key == prefix + "a" && seen.first?.kind == .put)
        try await client.delete(prefix + "a")
        seen = []
        while seen.isEmpty, let update = try await updates.next() { seen += update.events }
        #expect(seen.first?.kind == .delete)
        try await client.delete(prefix, end: etcdPrefixEnd(prefix))
    }
}

@Suite("etcd over mutual TLS", .enabled(if: EtcdMembers.isInstalled || requireEtcd()))
struct EtcdTLSTests {
    @Test("with the node's client certificate the client reads and writes through TLS; without one etcd refuses the connection")
    func mutualTLS() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("leasehold-etcd-tls-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let files = TLSFiles(dataDirectory: directory)
        _ = try files.ensureDevelopmentCertificates()
        let node = try files.issueClient("node-1")
        let member = try files.issuePeer("etcd-0")
        let tls = try EtcdConfiguration.mutualTLS(ca: files.caCertificate, certificate: node.certificate, key: node.key)
        let members = try await EtcdMembers.start(
            members: 1, tls: EtcdMembers.TLS(certificate: member.certificate, key: member.key, clientCA: files.caCertificate),
            healthClient: tls
        )
        defer { members.shutdown() }
        #expect(members.endpoints.allSatisfy { $0.hasPrefix("https://") })
        let client = EtcdClient(EtcdConfiguration(endpoints: members.endpoints, tls: tls))
        let revision = try await client.put("/leasehold-test/tls", [1, 2, 3])
        #expect(try await client.range("/leasehold-test/tls").kvs.first?.modRevision == revision)
        try await client.shutdown()

        var anonymous = TLSConfiguration.makeClientConfiguration()
        anonymous.trustRoots = .file(files.caCertificate)
        let refused = EtcdClient(EtcdConfiguration(endpoints: members.endpoints, tls: anonymous, requestTimeout: .seconds(3)))
        await #expect(throws: EtcdError.self, "etcd answers no client without a certificate its CA signed") {
            _ = try await refused.range("/leasehold-test/tls")
        }
        try await refused.shutdown()
    }
}
