import LeaseholdCluster
import LeaseholdCore
import LeaseholdEtcd
import LeaseholdJournal
import LeaseholdMessages
import LeaseholdServer
import Logging
import NIOPosix
import ServiceLifecycle
import Synchronization

/// One leaseholdd node of a cluster (docs/cluster.md): a server that is a standby or the
/// leader, an election, and a copy of the log in memory.
///
/// Lifecycle, round after round until shutdown:
/// 1. **Standby.** Catch up on the log (from what this node holds, or from the start),
///    grant a lease, and, while campaigning, follow the log into memory and tell the
///    server who leads. A standby runs no commands and no timers: it has no Coordinator.
/// 2. **Takeover.** The campaign is won: the term is the create revision of this node's
///    key. The server boots a Coordinator from the image caught up to the head (a new
///    epoch, every deadline restarted in full) and serves, every output checked against
///    the election's deadline.
/// 3. **Losing.** The lease ends or its deadline passes, or the journal is deposed or
///    fails: the server stands down at once (journal and Coordinator abandoned), the lease
///    is revoked, the image is dropped (memory may be ahead of the log), and the next round
///    rebuilds it from the log.
/// A graceful shutdown (SIGTERM) lets the server settle what it serves, then revokes the
/// lease so that a standby wins at once.
public final class ClusterNode: Service, Sendable {
    public struct Configuration: Sendable {
        public var etcd: EtcdConfiguration
        public var cluster: String
        public var node: String
        /// What clients are told to connect to when this node leads.
        public var advertise: String
        public var leaderTTL: Duration
        /// When the leader writes a checkpoint and deletes the entries before it: by
        /// entries, bytes and age (docs/cluster.md, "Compaction").
        public var compaction = CompactionPolicy()
        /// The certificate this node presents to copy a peer's snapshot when its image is
        /// behind the checkpoint (``PeerSnapshots``); `nil`: it reads etcd's checkpoint.
        public var peerIdentity: PeerSnapshots.Identity?

        public init(etcd: EtcdConfiguration, cluster: String, node: String, advertise: String, leaderTTL: Duration = .seconds(5)) {
            self.etcd = etcd
            self.cluster = cluster
            self.node = node
            self.advertise = advertise
            self.leaderTTL = leaderTTL
        }
    }

    struct State {
        /// The log as this node applied it; `nil`: rebuild from the log.
        var image: LoadedState?
        var election: LeaderElection?
        var stopping = false
        /// Resumed when the current leadership ends (lost, deposed, shutdown).
        var ended: CheckedContinuation<String, Never>?
        var endedEarly: String?
        /// The current round's fence: reports of other rounds are ignored.
        var fence: Fence?
        var lifecycle: Task<Void, Never>?
        /// The sink while this node leads.
        var sink: EtcdSink?
        /// What this node applied as a standby, for the admin queries it answers.
        var current: Image?
    }

    public let configuration: Configuration
    public let server: LeaseholdServer
    let keys: ClusterKeys
    let client: EtcdClient
    let keepaliveGroup: MultiThreadedEventLoopGroup
    let keepaliveClient: EtcdClient
    let logger: Logger
    private let state = Mutex(State())

    /// The highest log index this node applied or, leading, made durable.
    private let appliedIndex = Atomic<UInt64>(0)
    /// A standby's lag behind the leader's report (metrics).
    private let lag = Atomic<UInt64>(0)
    private let copiedFromPeers = Atomic<Int>(0)
    /// What the data directory says; rewritten as `appliedIndex` grows.
    private let mark: Mutex<ClusterMark>
    /// The node's SQLite copy of the committed log (`DATA/replica.db`); `nil` when it
    /// could not be opened.
    let localCopy: LocalCopy?

    private init(configuration: Configuration, server: LeaseholdServer, client: EtcdClient, mark: ClusterMark, localCopy: LocalCopy?, logger: Logger) {
        self.localCopy = localCopy
        self.configuration = configuration
        self.server = server
        self.keys = ClusterKeys(cluster: configuration.cluster)
        self.client = client
        self.mark = Mutex(mark)
        self.appliedIndex.store(mark.applied, ordering: .relaxed)
        // The keepalives' own thread and connection: nothing else queues in front of them.
        self.keepaliveGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.keepaliveClient = EtcdClient(configuration.etcd, eventLoopGroup: self.keepaliveGroup)
        self.logger = logger
        server.serveStandbyReads { [weak self] in self?.state.withLock { $0.current }?.loaded }
        server.serveClusterStatus { [weak self] in await self?.clusterStatus() ?? Leasehold_V1_ClusterStatus() }
        server.serveClusterFigures { [weak self] in
            ClusterFigures(appliedIndex: self?.appliedIndex.load(ordering: .relaxed) ?? 0, lag: self?.lag.load(ordering: .relaxed) ?? 0)
        }
    }

    /// Binds the server as a standby; ``run()`` then takes part in the cluster. The server
    /// serves the cluster's volume with the cluster's settings from etcd
    /// (``ClusterVolume``), not its own geometry, TTL bounds, timers and roles, and as a
    /// standby answers admin queries from the log it applied.
    /// - Precondition: `server.sink` is `nil` (the log is the sink).
    /// - Throws: ``ClusterNodeError`` when the cluster is not initialized, the data
    ///   directory belongs to another cluster or volume, or etcd's log ends below what this
    ///   node applied (docs/cluster.md, "A cluster knows itself"); an ``EtcdError``.
    public static func start(configuration: Configuration, server: ServerConfiguration, logger: Logger = Logger(label: "leasehold.node")) async throws -> ClusterNode {
        precondition(server.sink == nil, "a cluster node's sink is the etcd log")
        let client = EtcdClient(configuration.etcd)
        do {
            let (prepared, mark, copy) = try await Self.prepare(configuration, server, client: client, logger: logger)
            let started = try await LeaseholdServer.start(configuration: prepared, logger: logger)
            return ClusterNode(configuration: configuration, server: started, client: client, mark: mark, localCopy: copy, logger: logger)
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// Checks the data directory against the cluster's volume and log, and gives the
    /// server configuration the volume's geometry and settings.
    static func prepare(
        _ configuration: Configuration, _ server: ServerConfiguration, client: EtcdClient, logger: Logger
    ) async throws -> (ServerConfiguration, ClusterMark, LocalCopy?) {
        let name = configuration.cluster
        let keys = ClusterKeys(cluster: name)
        guard let volume = try await ClusterVolume.read(client: client, keys: keys) else {
            throw ClusterNodeError(
                "cluster '\(name)' is not initialized in etcd (no \(keys.volume)): run 'leaseholdd cluster init --etcd-endpoints ... --cluster \(name)' once, with the volume's geometry and settings (docs/cluster.md)"
            )
        }
        var mark = try ClusterMark.read(in: server.dataDirectory) ?? ClusterMark(cluster: name, volume: nil)
        guard mark.cluster == name else {
            throw ClusterNodeError("\(server.dataDirectory) belongs to cluster '\(mark.cluster)', not '\(name)': use another data directory")
        }
        if let known = mark.volume, known != volume.uuid {
            throw ClusterNodeError(
                "\(server.dataDirectory) belongs to volume \(known.uuidString.lowercased()), but cluster '\(name)' in etcd holds volume \(volume.uuid.uuidString.lowercased()): etcd was initialized again, or the endpoints name another etcd. Refusing to serve; use a new data directory to join this volume"
            )
        }
        let head = try await LogFollower(client: client, keys: keys).head()
        let index = head.position?.index ?? 0
        var copy: LocalCopy?
        do {
            copy = try LocalCopy(directory: server.dataDirectory, logger: logger)
        } catch {
            logger.warning("no local copy of the log: it does not open", metadata: ["error": "\(error)"])
        }
        if let copy, let held = try? await copy.load() {
            mark.applied = Swift.max(mark.applied, held.position.index)
            guard held.state.volume?.geometry == volume.geometry else {
                copy.close()
                throw ClusterNodeError("\(copy.path) holds a volume of another geometry than cluster '\(name)': use a new data directory")
            }
        }
        guard index >= mark.applied else {
            copy?.close()
            throw ClusterNodeError(
                "this node applied the log of volume \(volume.uuid.uuidString.lowercased()) to index \(mark.applied), but etcd's log ends at \(index): etcd lost acknowledged entries (wiped, or restored from an older backup). Refusing to serve"
            )
        }
        mark.volume = volume.uuid
        do {
            try mark.write(in: server.dataDirectory)
        } catch {
            copy?.close()
            throw error
        }
        var server = server
        server.coordinator = volume.settings.applied(to: server.coordinator, geometry: volume.geometry)
        server.admins = volume.settings.admins
        server.targets = volume.settings.targets
        server.nodeIdentities = volume.settings.nodes
        server.volumeUUID = volume.uuid
        logger.notice(
            "serving the cluster's volume",
            metadata: [
                "cluster": "\(name)", "volume.uuid": "\(volume.uuid.uuidString.lowercased())", "volume.blockSize": "\(volume.geometry.blockSize)",
                "volume.blockCount": "\(volume.geometry.blockCount)", "log.head": "\(index)",
            ]
        )
        return (server, mark, copy)
    }

    /// Records a log index this node applied (or made durable), for the data directory.
    func noteApplied(_ index: UInt64) {
        var current = self.appliedIndex.load(ordering: .relaxed)
        while index > current {
            let (exchanged, original) = self.appliedIndex.compareExchange(expected: current, desired: index, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }

    /// Rewrites the data directory's mark when the applied index grew. Writes are
    /// serialized (under the mark's lock), so the file never goes backwards.
    func recordApplied() {
        let index = self.appliedIndex.load(ordering: .relaxed)
        let directory = self.server.configuration.dataDirectory
        let failure = self.mark.withLock { mark -> (any Error)? in
            guard index > mark.applied else { return nil }
            var next = mark
            next.applied = index
            do {
                try next.write(in: directory)
                mark = next
                return nil
            } catch {
                return error
            }
        }
        if let failure { self.logger.warning("could not record the applied log index", metadata: ["error": "\(failure)"]) }
    }

    /// This node's report as it stands now.
    var ownEntry: NodeDirectory.Entry {
        let (role, _, term) = self.server.announcedRole
        // A standby's epoch is the one of the volume it applied from the log.
        let applied = role == .standby ? self.state.withLock { $0.current }?.loaded?.state.volume?.epoch : nil
        return NodeDirectory.Entry(
            name: self.configuration.node, endpoint: self.configuration.advertise, role: role, term: term,
            appliedIndex: self.appliedIndex.load(ordering: .relaxed), epoch: Swift.max(applied ?? 0, self.server.epoch),
            connectedClients: self.server.connectedClients
        )
    }

    /// Puts this node's report (``NodeDirectory``) under the current election's lease when
    /// it differs from the last one put; best effort (a report, not a decision).
    /// - Returns: what is published now.
    func publish(after last: (lease: Int64, entry: NodeDirectory.Entry)?) async -> (lease: Int64, entry: NodeDirectory.Entry)? {
        guard let lease = self.state.withLock({ $0.election?.lease?.id }) else { return last }
        let entry = self.ownEntry
        if let last, last.lease == lease, last.entry == entry { return last }
        do {
            try await NodeDirectory.publish(entry, lease: lease, client: self.client, keys: self.keys)
            return (lease, entry)
        } catch {
            self.logger.debug("could not publish this node's applied position", metadata: ["error": "\(error)"])
            return last
        }
    }

    /// The server's role now.
    public var role: NodeRole { self.server.role }

    /// A standby's lag for the metrics: the leader's reported index minus its own, read
    /// once a second from the reports (``NodeDirectory``); 0 on the leader.
    func measureLag() async {
        guard self.server.role == .standby else {
            self.lag.store(0, ordering: .relaxed)
            return
        }
        guard let reports = try? await NodeDirectory.read(client: self.client, keys: self.keys),
            let leader = reports.first(where: { $0.role == .leader })
        else { return }
        let applied = self.appliedIndex.load(ordering: .relaxed)
        self.lag.store(leader.appliedIndex > applied ? leader.appliedIndex - applied : 0, ordering: .relaxed)
    }

    /// Serves until a graceful shutdown: then the server settles, the lease is revoked, and
    /// the etcd connections close.
    public func run() async throws {
        let lifecycle = Task { await self.rounds() }
        self.state.withLock { $0.lifecycle = lifecycle }
        let recording = Task {
            var published: (lease: Int64, entry: NodeDirectory.Entry)?
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if let sink = self.state.withLock({ $0.sink }) { self.noteApplied(sink.durableIndex) }
                self.recordApplied()
                published = await self.publish(after: published)
                await self.measureLag()
            }
        }
        do {
            try await self.server.run()
        } catch {
            self.logger.error("the server stopped", metadata: ["error": "\(error)"])
        }
        self.stop("shutting down")
        lifecycle.cancel()
        await lifecycle.value
        recording.cancel()
        await recording.value
        if let sink = self.state.withLock({ $0.sink }) { self.noteApplied(sink.durableIndex) }
        self.recordApplied()
        self.localCopy?.close()
        try? await self.client.shutdown()
        try? await self.keepaliveClient.shutdown()
        try? await self.keepaliveGroup.shutdownGracefully()
    }

    /// Starts a graceful shutdown, as SIGTERM does.
    public func shutdown() {
        self.server.shutdown()
    }

    private func stop(_ reason: String) {
        let ended = self.state.withLock { state -> CheckedContinuation<String, Never>? in
            state.stopping = true
            defer { state.ended = nil }
            return state.ended
        }
        ended?.resume(returning: reason)
    }

    // MARK: - Rounds

    /// At every round: etcd still holds this node's volume, and a log that reaches what
    /// this node applied. Otherwise a ``ClusterNodeError``: the node stops serving.
    private func checkIdentity(_ follower: LogFollower) async throws {
        let known = self.mark.withLock { $0.volume }
        let volume = try await ClusterVolume.read(client: self.client, keys: self.keys)
        guard let volume, volume.uuid == known else {
            throw ClusterNodeError(
                "cluster '\(self.configuration.cluster)' in etcd no longer holds volume \(known?.uuidString.lowercased() ?? "?") (it holds \(volume.map { $0.uuid.uuidString.lowercased() } ?? "none")): etcd was wiped or initialized again"
            )
        }
        let head = try await follower.head().position?.index ?? 0
        let applied = self.appliedIndex.load(ordering: .relaxed)
        guard head >= applied else {
            throw ClusterNodeError("etcd's log ends at \(head), below index \(applied) this node applied: etcd lost acknowledged entries (restored from an older backup?)")
        }
    }

    private func rounds() async {
        while !self.state.withLock({ $0.stopping }) && !Task.isCancelled {
            do {
                try await self.round()
            } catch is CancellationError {
                break
            } catch let error as ClusterNodeError {
                // etcd no longer holds what this node served: serving on would forget
                // acknowledged state or mix two volumes.
                self.logger.critical("this node stops serving", metadata: ["error": "\(error)"])
                self.server.shutdown()
                break
            } catch {
                self.logger.warning("cluster round ended; starting over from the log", metadata: ["error": "\(error)"])
                self.state.withLock { $0.image = nil }
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
        if let election = self.state.withLock({ $0.election }) { await election.close() }
    }

    /// One standby phase and, when the campaign is won, one term as leader.
    private func round() async throws {
        let follower = LogFollower(client: self.client, keys: self.keys)
        try await self.checkIdentity(follower)
        var base = self.state.withLock { $0.image }
        if base == nil, let copy = self.localCopy {
            base = try? await copy.load()
        }
        if let copied = await self.copyFromPeer(behind: base, follower: follower) { base = copied }
        let caught = try await follower.catchUp(from: base)
        let image = Image(caught.state ?? LoadedState(state: PersistentState(), position: .zero))
        self.noteApplied(image.position.index)
        self.state.withLock { $0.current = image }
        if let copy = self.localCopy, let loaded = image.loaded { await copy.catchUp(to: loaded) }
        // One election per round: a fresh lease, a fresh key, a higher term. It ends with
        // the round, however the round ends.
        let ended = Fence()
        let election = LeaderElection(
            configuration: LeaderElection.Configuration(keys: self.keys, name: self.configuration.node, endpoint: self.configuration.advertise, ttl: self.configuration.leaderTTL),
            client: self.client, keepaliveClient: self.keepaliveClient,
            onLost: { [self] reason in self.leadershipEnded("the election was lost: \(reason)", fence: ended) }
        )
        try await election.start()
        self.state.withLock {
            $0.election = election
            $0.endedEarly = nil
            $0.fence = ended
        }
        do {
            try await self.campaignAndLead(election, ended: ended, follower: follower, image: image, from: caught.revision)
        } catch {
            ended.close()
            if self.server.role == .leader { self.server.standDown(leader: nil, term: 0, reason: "\(error)") }
            await election.close()
            self.state.withLock { $0.election = nil }
            throw error
        }
        await election.close()
        self.state.withLock { $0.election = nil }
    }

    /// Snapshots this node copied from a peer (``PeerSnapshots``) instead of reading etcd's
    /// checkpoint.
    public var snapshotsCopiedFromPeers: Int { self.copiedFromPeers.load(ordering: .relaxed) }

    /// A peer's snapshot when `base` is behind the checkpoint; `nil` when none is needed,
    /// none is configured, or no peer gave one (the catch-up then reads etcd's checkpoint).
    private func copyFromPeer(behind base: LoadedState?, follower: LogFollower) async -> LoadedState? {
        guard let identity = self.configuration.peerIdentity, let volume = self.server.configuration.volumeUUID,
            let checkpoint = try? await follower.checkpointIndex(), checkpoint > (base?.position.index ?? 0),
            let peers = try? await NodeDirectory.read(client: self.client, keys: self.keys)
        else { return nil }
        let copier = PeerSnapshots(identity: identity, node: self.configuration.node, logger: self.logger)
        let geometry = self.server.configuration.coordinator.geometry
        guard let (image, peer) = await copier.copy(from: peers, atLeast: checkpoint, volume: volume, geometry: geometry, into: self.server.configuration.dataDirectory) else {
            self.logger.notice("no peer gave a snapshot at or past the checkpoint; reading etcd's", metadata: ["log.checkpoint": "\(checkpoint)"])
            return nil
        }
        self.copiedFromPeers.add(1, ordering: .relaxed)
        self.logger.notice("caught up from a peer's snapshot", metadata: ["peer": "\(peer)", "snapshot.position": "\(image.position)", "log.checkpoint": "\(checkpoint)"])
        return image
    }

    /// Campaigns while following the log; once won, leads until the leadership ends.
    private func campaignAndLead(_ election: LeaderElection, ended: Fence, follower: LogFollower, image: Image, from revision: Int64) async throws {
        // Campaign; meanwhile follow the log and tell the server who leads.
        let term = try await withThrowingTaskGroup(of: UInt64?.self) { group in
            group.addTask {
                try await follower.follow(after: image.position, from: revision) { batch in
                    image.apply(batch)
                    self.noteApplied(batch.position.index)
                    await self.localCopy?.apply(batch) { image.loaded }
                }
                return nil
            }
            group.addTask {
                try await self.trackLeader()
                return nil
            }
            group.addTask { try await election.campaign() }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let term = result { return term }
            }
            throw LeaderElectionError("the campaign ended without a result")
        }
        // Not a volume this node was started for, or a log that lost what it applied:
        // never take over.
        try await self.checkIdentity(follower)
        // Takeover: apply the log to the head (the sink's load), then serve. The gate
        // closes for good the moment the leadership ends, before anything else happens.
        let key = election.key!
        let sink = EtcdSink(client: self.client, keys: self.keys, leadership: EtcdSink.Leadership(key: key, term: term), startingFrom: image.loaded)
        self.logger.notice("won the election; taking over", metadata: ["node.term": "\(term)", "log.applied": "\(image.position)"])
        self.state.withLock {
            $0.sink = sink
            $0.current = nil
        }
        defer {
            self.noteApplied(sink.durableIndex)
            self.state.withLock { $0.sink = nil }
        }
        try await self.server.lead(
            sink: sink, term: term, gate: { ended.isOpen && election.isWithinDeadline },
            onFailure: { [self] failure in self.leadershipEnded("the journal stopped: \(failure)", fence: ended) }
        )
        self.server.countRoleChange(tookOver: true)
        // Graceful handover: once the server settled, revoke the lease at once so that a
        // standby wins now, not after the connections drained.
        self.server.whenSettled { await election.close() }
        let compaction = Task { await self.compact(LogCompactor(client: self.client, keys: self.keys, leadership: sink.leadership!)) }
        let reason = await self.waitForEnd()
        compaction.cancel()
        if self.state.withLock({ $0.stopping }) {
            // A graceful shutdown: the server settled; revoking the lease (when the round
            // ends) lets a standby win at once.
            return
        }
        ended.close()
        self.server.standDown(leader: nil, term: term, reason: reason)
        self.server.countRoleChange(tookOver: false)
        self.state.withLock { $0.image = nil }
    }

    /// While leading: a checkpoint whenever ``Configuration/compaction`` says one is due.
    private func compact(_ compactor: LogCompactor) async {
        let policy = self.configuration.compaction
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: policy.check)
                var reason: CompactionPolicy.Reason?
                let position = try await compactor.compact { tail in
                    reason = policy.due(tail)
                    return reason != nil
                }
                if let position {
                    self.logger.notice("log compacted", metadata: ["log.checkpoint": "\(position)", "log.compaction.reason": "\(reason.map { "\($0)" } ?? "")"])
                }
            } catch is CancellationError {
                return
            } catch {
                self.logger.warning("log compaction failed; trying again later", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Resumes the round's wait: the leadership is over. Callable from any thread (the
    /// journal's, the keepalive's). The round's fence closes first, so nothing more is
    /// released; a report about an earlier round's election changes nothing else.
    private func leadershipEnded(_ reason: String, fence: Fence) {
        fence.close()
        let ended = self.state.withLock { state -> CheckedContinuation<String, Never>? in
            guard state.fence === fence else { return nil }
            guard let ended = state.ended else {
                if state.endedEarly == nil { state.endedEarly = reason }
                return nil
            }
            state.ended = nil
            return ended
        }
        ended?.resume(returning: reason)
    }

    private func waitForEnd() async -> String {
        await withCheckedContinuation { continuation in
            let now = self.state.withLock { state -> String? in
                if state.stopping { return "shutting down" }
                if let early = state.endedEarly { return early }
                state.ended = continuation
                return nil
            }
            if let now { continuation.resume(returning: now) }
        }
    }

    /// Tells the server who leads, at every change of the leader keys, until cancelled.
    private func trackLeader() async throws {
        let prefix = self.keys.leaderPrefix
        while true {
            let range = try await self.client.range(prefix, end: etcdPrefixEnd(prefix))
            if let lowest = range.kvs.min(by: { $0.createRevision < $1.createRevision }),
                let node = try? Leasehold_Cluster_V1_NodeInfo(serializedBytes: lowest.value), node.name != self.configuration.node
            {
                self.server.setLeader(node.endpoint, term: UInt64(lowest.createRevision))
            } else {
                self.server.setLeader(nil, term: 0)
            }
            let seen = range.kvs.map { "\($0.key)@\($0.createRevision)" }
            let client = self.client
            try await client.waitForChange(prefix, end: etcdPrefixEnd(prefix), after: range.revision, timeout: self.configuration.leaderTTL) {
                try await client.range(prefix, end: etcdPrefixEnd(prefix)).kvs.map { "\($0.key)@\($0.createRevision)" } != seen
            }
        }
    }
}

/// Closed once a round's leadership ended: the leader's gate then stays shut whatever the
/// clock says.
final class Fence: Sendable {
    private let closed = Atomic<Bool>(false)
    func close() { self.closed.store(true, ordering: .sequentiallyConsistent) }
    var isOpen: Bool { !self.closed.load(ordering: .sequentiallyConsistent) }
}

/// The image a standby applies the log into.
final class Image: Sendable {
    private let value: Mutex<LoadedState>

    init(_ loaded: LoadedState) { self.value = Mutex(loaded) }

    func apply(_ batch: JournalBatch) {
        self.value.withLock { value in
            for changes in batch.changeSets { value.state.apply(changes) }
            value.position = batch.position
        }
    }

    var position: LogPosition { self.value.withLock { $0.position } }
    var loaded: LoadedState? { self.value.withLock { $0.position == .zero ? nil : $0 } }
}
