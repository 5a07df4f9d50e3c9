import Foundation
import LeaseholdEtcd
import LeaseholdMessages
import NIOCore
import Synchronization

/// One node's place in the election of its cluster (docs/cluster.md, "Safety argument",
/// steps 1, 2 and 5), after etcd's concurrency recipe: one lease per node, a key
/// `leader/<lease>` under it, and the live key with the lowest create revision leads; that
/// revision is the leader's term.
///
/// Lifecycle: ``start()`` grants the lease and keeps it alive every TTL/3 on its own event
/// loop and HTTP connection (a busy cooperative pool does not delay it). ``campaign()``
/// puts the key and returns once every key with a lower create revision is gone: this
/// node leads from then on, with ``term``. It leads only while ``isWithinDeadline`` holds:
/// the send time of the last acknowledged keepalive + the TTL etcd granted − a margin, on
/// CLOCK_BOOTTIME. When the deadline passes without a renewal, or etcd says the lease is
/// gone, the election is **lost** for good: `onLost` runs once, the lease is revoked (best
/// effort), and the node needs a new election (a new lease, a new key, a higher term) to
/// lead again. ``resign()`` deletes the key so that the next candidate wins at once;
/// ``close()`` also revokes the lease.
public final class LeaderElection: Sendable {
    public struct Configuration: Sendable {
        public var keys: ClusterKeys
        public var node: Leasehold_Cluster_V1_NodeInfo
        /// The TTL asked for; etcd may grant more (it rounds up to its minimum).
        public var ttl: Duration

        public init(keys: ClusterKeys, name: String, endpoint: String, ttl: Duration = .seconds(5)) {
            self.keys = keys
            var node = Leasehold_Cluster_V1_NodeInfo()
            node.name = name
            node.endpoint = endpoint
            self.node = node
            self.ttl = ttl
        }
    }

    struct State {
        var lease: EtcdLease?
        /// The CLOCK_BOOTTIME instant (ns) after which this node releases nothing.
        var deadline: Int64 = 0
        var term: UInt64?
        var lost: String?
        var closed = false
        var keepalive: RepeatedTask?
    }

    public let configuration: Configuration
    let client: EtcdClient
    let keepaliveClient: EtcdClient
    let eventLoop: any EventLoop
    private let state = Mutex(State())
    private let onLost: @Sendable (String) -> Void

    /// - Parameters:
    ///   - client: for the campaign and the reads.
    ///   - keepaliveClient: a client of its own for the keepalives; its event loop group
    ///     runs them.
    ///   - onLost: called once when the lease ends or the deadline passes unrenewed.
    public init(configuration: Configuration, client: EtcdClient, keepaliveClient: EtcdClient, onLost: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration
        self.client = client
        self.keepaliveClient = keepaliveClient
        self.eventLoop = keepaliveClient.eventLoopGroup.next()
        self.onLost = onLost
    }

    /// The lease etcd granted, once ``start()`` returned.
    public var lease: EtcdLease? { self.state.withLock { $0.lease } }

    /// The term this node leads in, once ``campaign()`` returned and until the election is
    /// lost or resigned.
    public var term: UInt64? { self.state.withLock { $0.lost == nil ? $0.term : nil } }

    /// This node's leader key.
    public var key: String? { self.lease.map { self.configuration.keys.leader(lease: $0.id) } }

    /// Why the election was lost, once it was.
    public var lostReason: String? { self.state.withLock { $0.lost } }

    /// Whether, right now, this node may release anything as leader: it leads, and its
    /// deadline has not passed.
    public var isWithinDeadline: Bool {
        let now = Self.bootTime()
        return self.state.withLock { $0.lost == nil && $0.term != nil && now < $0.deadline }
    }

    /// How long from now the deadline is (negative once passed).
    public var untilDeadline: Duration {
        let deadline = self.state.withLock { $0.deadline }
        return .nanoseconds(deadline - Self.bootTime())
    }

    /// The margin kept below the granted TTL: a tenth of it, at least 250 ms, for the
    /// clock-rate difference between this node and etcd's leader and the time from
    /// etcd's acknowledgement to its arrival here.
    static func margin(ttl: Int64) -> Int64 {
        max(250_000_000, ttl * 100_000_000)
    }

    // MARK: - Lease

    /// Grants the lease and starts keeping it alive.
    public func start() async throws {
        let sent = Self.bootTime()
        let seconds = max(1, Int64((self.configuration.ttl + .milliseconds(999)).components.seconds))
        let lease = try await self.client.grantLease(ttl: seconds)
        let interval = TimeAmount.nanoseconds(lease.ttl * 1_000_000_000 / 3)
        self.state.withLock { state in
            state.lease = lease
            state.deadline = sent + lease.ttl * 1_000_000_000 - Self.margin(ttl: lease.ttl)
        }
        let task = self.eventLoop.scheduleRepeatedAsyncTask(initialDelay: interval, delay: interval) { _ in
            self.renew(lease: lease)
        }
        self.state.withLock { $0.keepalive = task }
    }

    /// One keepalive, retried every 250 ms until it is acknowledged or the deadline passes.
    private func renew(lease: EtcdLease) -> EventLoopFuture<Void> {
        let promise = self.eventLoop.makePromise(of: Void.self)
        @Sendable func attempt() {
            guard self.state.withLock({ !$0.closed && $0.lost == nil }) else { return promise.succeed() }
            let sent = Self.bootTime()
            let timeout = Duration.nanoseconds(max(250_000_000, lease.ttl * 1_000_000_000 / 3))
            self.keepaliveClient.keepAlive(lease: lease.id, on: self.eventLoop, timeout: timeout).whenComplete { result in
                switch result {
                case .success(let ttl) where ttl > 0:
                    // An acknowledgement that comes after the deadline passed does not
                    // reopen the gate: the node was fenced, and leaving a fence is a new
                    // election (SEMANTICS.md: memory is rebuilt from the log).
                    let late = self.state.withLock { state -> Bool in
                        guard Self.bootTime() < state.deadline else { return true }
                        state.deadline = max(state.deadline, sent + ttl * 1_000_000_000 - Self.margin(ttl: ttl))
                        return false
                    }
                    if late { self.lose("the deadline passed before a keepalive of lease \(String(lease.id, radix: 16)) was acknowledged") }
                    promise.succeed()
                case .success:
                    self.lose("etcd says lease \(String(lease.id, radix: 16)) no longer exists (it expired)")
                    promise.succeed()
                case .failure:
                    if Self.bootTime() >= self.state.withLock({ $0.deadline }) {
                        self.lose("no keepalive of lease \(String(lease.id, radix: 16)) was acknowledged before the deadline")
                        promise.succeed()
                    } else {
                        self.eventLoop.scheduleTask(in: .milliseconds(250)) { attempt() }
                    }
                }
            }
        }
        attempt()
        return promise.futureResult
    }

    /// The election is lost: once, for good.
    private func lose(_ reason: String) {
        let first = self.state.withLock { state -> Bool in
            guard state.lost == nil, !state.closed else { return false }
            state.lost = reason
            state.keepalive?.cancel()
            return true
        }
        guard first else { return }
        self.onLost(reason)
        if let lease = self.lease {
            let client = self.client
            Task { try? await client.revoke(lease: lease.id) }
        }
    }

    // MARK: - Campaign

    /// Puts this node's key and waits until it is the lowest: this node leads from then
    /// on. - Returns: the term.
    /// - Throws: ``LeaderElectionError`` when the election is lost meanwhile, an
    ///   ``EtcdError``, or `CancellationError`.
    public func campaign() async throws -> UInt64 {
        guard let lease = self.lease, let key = self.key else { throw LeaderElectionError("campaign before start") }
        let put = try await self.client.txn(
            [.createRevision(key, equals: 0)],
            success: [.put(key, try self.configuration.node.serializedBytes(), lease: lease.id)],
            failure: [.range(key)]
        )
        let created = put.succeeded ? put.revision : (put.ranges.first?.kvs.first?.createRevision ?? 0)
        guard created > 0 else { throw LeaderElectionError("the leader key \(key) could not be created") }
        while true {
            try Task.checkCancellation()
            if let lost = self.lostReason { throw LeaderElectionError(lost) }
            let range = try await self.client.range(self.configuration.keys.leaderPrefix, end: etcdPrefixEnd(self.configuration.keys.leaderPrefix))
            guard range.kvs.contains(where: { $0.key == key && $0.createRevision == created }) else {
                throw LeaderElectionError("the leader key \(key) is gone (lease \(String(lease.id, radix: 16)) ended)")
            }
            // The key just below this one: wait for it to go, then look again.
            let lower = range.kvs.filter { $0.createRevision < created }.max { $0.createRevision < $1.createRevision }
            guard let lower else {
                self.state.withLock { $0.term = UInt64(created) }
                return UInt64(created)
            }
            // Wait for a change of that key, then look again; a deletion between the read
            // and the watch's creation may come late, so look again once the watch exists,
            // and at least once a TTL whatever the watch says.
            let client = self.client
            try await client.waitForChange(lower.key, after: range.revision, timeout: self.configuration.ttl) {
                try await client.range(lower.key).kvs.first?.createRevision != lower.createRevision
            }
        }
    }

    /// Deletes this node's key (if it still has its term's create revision), so the next
    /// candidate wins at once; this node no longer leads.
    public func resign() async throws {
        guard let key = self.key, let term = self.state.withLock({ $0.term }) else { return }
        self.state.withLock { $0.term = nil }
        _ = try await self.client.txn([.createRevision(key, equals: Int64(term))], success: [.delete(key)], failure: [])
    }

    /// Stops the keepalives and revokes the lease (its keys go with it).
    public func close() async {
        let lease = self.state.withLock { state -> EtcdLease? in
            state.closed = true
            state.keepalive?.cancel()
            state.term = nil
            return state.lease
        }
        if let lease { try? await self.client.revoke(lease: lease.id) }
    }

    /// The node that leads now: the live leader key with the lowest create revision.
    public static func leader(of keys: ClusterKeys, client: EtcdClient) async throws -> (node: Leasehold_Cluster_V1_NodeInfo, term: UInt64)? {
        let range = try await client.range(keys.leaderPrefix, end: etcdPrefixEnd(keys.leaderPrefix))
        guard let lowest = range.kvs.min(by: { $0.createRevision < $1.createRevision }) else { return nil }
        return (try Leasehold_Cluster_V1_NodeInfo(serializedBytes: lowest.value), UInt64(lowest.createRevision))
    }

    /// CLOCK_BOOTTIME in nanoseconds: it keeps counting while the machine is suspended.
    static func bootTime() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_BOOTTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}

/// Why this node does not (or no longer) lead.
public struct LeaderElectionError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
