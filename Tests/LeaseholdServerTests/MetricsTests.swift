import Foundation
import LeaseholdClient
import LeaseholdCore
import LeaseholdTestSupport
import NIOCore
import NIOPosix
import Synchronization
import LeaseholdJournal
import LeaseholdServer
import Testing

/// The Prometheus endpoint: off unless configured; when on, what it reports follows what
/// clients did (requests by operation and result, commits, a recall answered, an
/// expiry) and its gauges agree with `status`.
@Suite("Metrics endpoint", .timeLimit(.minutes(1)))
struct MetricsTests {
    @Test("no endpoint unless configured")
    func offByDefault() async throws {
        let cluster = try await TestCluster.start()
        #expect(cluster.server.metricsPort == nil)
        try await cluster.stop()
    }

    @Test("requests, commits, recalls, expirations and gauges are reported")
    func reportsWhatHappened() async throws {
        let cluster = try await TestCluster.start { $0.metrics = .init(host: "127.0.0.1", port: 0) }
        let port = try #require(cluster.server.metricsPort)
        let holder = try await cluster.client("nic-1")
        let breaker = try await cluster.client("truncater")
        let lapsing = try await cluster.client("lapsing")
        let held = try await holder.openSession(name: "holder", ttl: .seconds(5))
        let breaking = try await breaker.openSession(name: "breaker", ttl: .seconds(5))
        let events = EventLog(held)
        let inode = try await breaking.createInode()
        _ = try await breaking.allocate(inode, ByteRange(offset: 0, length: 8 * 4_096))
        _ = try await held.layoutGet(inode, ranges: [ByteRange(offset: 0, length: 8 * 4_096)], iomode: .readWrite)

        // A truncate that waits for a recall, answered after at least 50 ms.
        async let truncated = breaking.truncate(inode, size: 0)
        let recall = try await events.first("a layout recall") { event -> LayoutRecall? in
            if case .layoutRecall(let recall) = event { return recall }
            return nil
        }
        try await Task.sleep(for: .milliseconds(50))
        try await recall.returnLayout()
        _ = try await truncated
        // A refused request, and a session left to expire.
        await #expect(throws: LeaseholdError.self) { try await breaking.pin(InodeID(rawValue: 999), ranges: [], kind: .longTerm) }
        _ = try await lapsing.openSession(name: "lapses", ttl: .milliseconds(200))
        lapsing.close()

        var figures: [String: Double] = [:]
        try await eventually("the expiry is counted") {
            figures = try await Self.scrape(port: port)
            return figures["leasehold_expirations_total"] == 1
        }
        #expect(figures[#"leasehold_requests_total{op="truncate",result="ok"}"#] == 1, "counted once, when the waiting truncate completed")
        #expect(figures[#"leasehold_requests_total{op="layoutGet",result="ok"}"#] == 1)
        #expect(figures[#"leasehold_requests_total{op="openSession",result="ok"}"#] == 3)
        #expect(figures[#"leasehold_requests_total{op="pin",result="notFound"}"#] == 1)
        #expect(figures["leasehold_recalls_sent_total"] == 1)
        #expect(figures["leasehold_recalls_answered_total"] == 1)
        #expect(figures["leasehold_recalls_revoked_total"] == 0)
        #expect(figures["leasehold_recall_latency_seconds_count"] == 1)
        #expect((figures["leasehold_recall_latency_seconds_sum"] ?? 0) >= 0.05)
        #expect(figures["leasehold_expiry_lateness_seconds_count"] == 1)
        #expect((figures["leasehold_expiry_lateness_seconds_sum"] ?? -1) >= 0, "never early")
        #expect((figures["leasehold_commit_duration_seconds_count"] ?? 0) > 0)
        #expect((figures["leasehold_commit_steps_sum"] ?? 0) >= (figures["leasehold_commit_duration_seconds_count"] ?? .infinity))
        #expect(
            (figures["leasehold_commit_sync_duration_seconds_sum"] ?? .infinity) <= (figures["leasehold_commit_duration_seconds_sum"] ?? 0)
        )

        // Gauges are sampled at scrape time and agree with status.
        let status = try await cluster.client().status().volume
        figures = try await Self.scrape(port: port)
        #expect(figures["leasehold_sessions"] == Double(status.sessions))
        #expect(figures["leasehold_sessions"] == 2)
        #expect(figures["leasehold_free_blocks"] == Double(status.freeBlocks))
        #expect(figures["leasehold_busy_blocks"] == Double(status.busyBlocks))
        #expect(figures["leasehold_layouts"] == Double(status.layouts))
        #expect(figures["leasehold_epoch"] == Double(status.epoch))
        #expect((figures["leasehold_connections"] ?? 0) >= 2)

        let missing = try await Self.get(port: port, path: "/other")
        #expect(missing.status == 404)
        holder.close()
        breaker.close()
        try await cluster.stop()
    }

    @Test("cluster mode: the node's role, term, applied index, lag, batches in flight and takeovers are reported")
    func clusterFigures() async throws {
        let cluster = try await TestCluster.start(standby: true) { $0.metrics = .init(host: "127.0.0.1", port: 0) }
        let port = try #require(cluster.server.metricsPort)
        let applied = Mutex<(UInt64, UInt64)>((40, 3))
        cluster.server.serveClusterFigures { applied.withLock { ClusterFigures(appliedIndex: $0.0, lag: $0.1) } }
        cluster.server.setLeader("10.0.0.9:7420", term: 41)
        var figures = try await Self.scrape(port: port)
        #expect(figures[#"leasehold_node_role{role="standby"}"#] == 1 && figures[#"leasehold_node_role{role="leader"}"#] == 0, "\(figures)")
        #expect(figures["leasehold_cluster_term"] == 41)
        #expect(figures["leasehold_cluster_applied_index"] == 40 && figures["leasehold_cluster_lag_entries"] == 3)

        try await cluster.server.lead(sink: InMemorySink(), term: 42, gate: { true }, onFailure: { Issue.record("journal stopped: \($0)") })
        cluster.server.countRoleChange(tookOver: true)
        applied.withLock { $0 = (45, 0) }
        figures = try await Self.scrape(port: port)
        #expect(figures[#"leasehold_node_role{role="leader"}"#] == 1 && figures[#"leasehold_node_role{role="standby"}"#] == 0, "\(figures)")
        #expect(figures["leasehold_cluster_term"] == 42 && figures["leasehold_cluster_takeovers_total"] == 1)
        #expect(figures["leasehold_cluster_applied_index"] == 45 && figures["leasehold_cluster_lag_entries"] == 0)
        #expect(figures["leasehold_journal_batches_in_flight"] == 0)
        try await cluster.stop()
    }

    /// `GET /metrics`, parsed into sample name (with labels) → value.
    static func scrape(port: Int) async throws -> [String: Double] {
        let response = try await Self.get(port: port, path: "/metrics")
        #expect(response.status == 200)
        var figures: [String: Double] = [:]
        for line in response.body.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            figures[String(line[..<space])] = value
        }
        return figures
    }

    /// One HTTP/1.1 request over a plain TCP connection that the server closes.
    static func get(port: Int, path: String) async throws -> (status: Int, body: String) {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
        }
        let text = try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
            var text = ""
            for try await buffer in inbound { text += String(buffer: buffer) }
            return text
        }
        let parts = text.components(separatedBy: "\r\n\r\n")
        let statusLine = parts.first?.split(separator: "\r\n").first ?? ""
        let status = statusLine.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return (status, parts.dropFirst().joined(separator: "\r\n\r\n"))
    }
}
