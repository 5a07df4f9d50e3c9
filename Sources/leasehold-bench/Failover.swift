import Foundation
import LeaseholdClient
import Logging
import Synchronization

/// The failover benchmark (docs/benchmarks.md, "Failover under load"): against a cluster
/// `scripts/dev-cluster` started in `directory`, clients of the library run pin-unpin,
/// each in a session of its own given every node's endpoint; N times the leader is killed
/// with SIGKILL, and each round reports the time from the kill to the first mutation
/// acknowledged after it (by the new leader: the old one is dead), the longest gap
/// between two acknowledgements any client saw around it, and whether a session entered
/// jeopardy or ended. The killed node is restarted from its command line in
/// `cluster.json` (its new pid written there) and must catch up as a standby before the
/// next round. Nothing is restarted or resumed by the clients' code: the library does it.
struct FailoverBench {
    struct Round {
        var leader: String
        var recovery: Duration
        var longestStall: Duration
        /// etcd's raft term (the highest a member reported; `nil` when no member's status
        /// was read in time) before the signal and once every client was back: a higher
        /// one means etcd elected a leader in the round, which costs writes too, so such
        /// rounds are reported apart.
        var etcdTerms: (before: UInt64?, after: UInt64?)
        /// Whether etcd elected a leader in the round; `nil` when a term was not read.
        var etcdLeaderChanged: Bool? {
            guard let before = self.etcdTerms.before, let after = self.etcdTerms.after else { return nil }
            return after > before
        }

        /// Why the members' status was not read, or the cluster status's own problem.
        static func unread(_ status: ClusterStatus) -> String {
            let errors = status.etcdMembers.map { "\($0.name): \($0.error ?? "term 0")" }
            return (errors + [status.problem].compactMap { $0 }).joined(separator: "; ")
        }

        /// The highest raft term of the members whose status was read (0 is none read).
        static func raftTerm(_ status: ClusterStatus) -> UInt64? {
            status.etcdMembers.map(\.raftTerm).filter { $0 > 0 }.max()
        }
    }

    /// What the workers share: acknowledgement times around each kill, and what their
    /// sessions reported.
    final class Tally: Sendable {
        struct State {
            /// Each worker's last acknowledgement by the old leader.
            var lastBefore: [ContinuousClock.Instant]
            /// Each worker's first acknowledgement by a leader of a newer term.
            var firstAfter: [ContinuousClock.Instant?]
            var killedAt: ContinuousClock.Instant?
            var killedTerm: UInt64 = 0
            var operations = 0
            var jeopardies = 0
            var endings: [String] = []
            var errors: [String] = []
        }

        let state: Mutex<State>
        let running = Atomic<Bool>(true)

        init(workers: Int) {
            self.state = Mutex(State(lastBefore: Array(repeating: .now, count: workers), firstAfter: Array(repeating: nil, count: workers)))
        }

        /// Worker `worker` had a mutation acknowledged by a node of `term` (the term of its
        /// client's connection).
        func acknowledged(_ worker: Int, term: UInt64) {
            let now = ContinuousClock.now
            self.state.withLock { state in
                state.operations += 1
                if state.killedAt != nil, term > state.killedTerm {
                    if state.firstAfter[worker] == nil { state.firstAfter[worker] = now }
                } else {
                    state.lastBefore[worker] = now
                }
            }
        }

        /// The leader of `term` is killed now.
        func kill(term: UInt64) -> ContinuousClock.Instant {
            let now = ContinuousClock.now
            self.state.withLock { state in
                state.killedAt = now
                state.killedTerm = term
                state.firstAfter = Array(repeating: nil, count: state.firstAfter.count)
            }
            return now
        }

        /// Whether every worker was acknowledged by the new leader.
        var allBack: Bool { self.state.withLock { $0.firstAfter.allSatisfy { $0 != nil } } }

        /// The first acknowledgement by the new leader, and the longest gap a worker saw
        /// between its last acknowledgement by the old leader and its first by the new.
        var round: (first: ContinuousClock.Instant, longestStall: Duration) {
            self.state.withLock { state in
                let after = state.firstAfter.compactMap { $0 }
                let stall = zip(state.lastBefore, state.firstAfter).map { before, after in after.map { $0 - before } ?? .zero }.max() ?? .zero
                return (after.min()!, stall)
            }
        }

        /// The round is over: acknowledgements count as "before" again.
        func endRound() {
            self.state.withLock { state in
                state.killedAt = nil
                for index in state.firstAfter.indices { if let after = state.firstAfter[index] { state.lastBefore[index] = after } }
            }
        }
    }

    let directory: String
    let kills: Int
    let workers: Int
    let ttl: Duration
    /// Time on the new leader, with the old one back as a caught-up standby, before the next kill.
    let settle: Duration
    /// SIGKILL (a crash) or SIGTERM (a graceful handover).
    let signal: Int32
    let logger: Logger

    func run() async throws {
        let cluster = try DevCluster(directory: self.directory)
        var adminConfiguration = ClientConfiguration.development(dataDirectory: self.directory)
        adminConfiguration.acceptsStandby = true
        adminConfiguration.clientName = "leasehold-bench admin"
        let admin = try await LeaseholdClient.connect(adminConfiguration, logger: self.logger)
        defer { admin.close() }
        let nodeCount = cluster.nodes.count
        try await Self.waitUntil("every node reports and one leads", timeout: .seconds(60)) {
            let status = try await admin.clusterStatus()
            return status.nodes.count == nodeCount && status.leader != nil
        }

        var configuration = ClientConfiguration.development(dataDirectory: self.directory)
        configuration.clientName = "leasehold-bench"
        configuration.reconnectTimeout = .seconds(120)
        let backoffCap = configuration.reconnectBackoff.maximum
        let tally = Tally(workers: self.workers)
        var clients: [LeaseholdClient] = []
        var sessions: [LeaseholdSession] = []
        var tasks: [Task<Void, Never>] = []
        for worker in 0..<self.workers {
            let client = try await LeaseholdClient.connect(configuration, logger: self.logger)
            let session = try await client.openSession(name: "failover-\(worker)", ttl: self.ttl)
            clients.append(client)
            sessions.append(session)
            tasks.append(
                Task {
                    for await event in session.events {
                        switch event {
                        case .jeopardy: tally.state.withLock { $0.jeopardies += 1 }
                        // Ended with an error (expired, evicted); the bench's own close at the end has none.
                        case .ended(let error?): tally.state.withLock { $0.endings.append("session \(session.id): \(error)") }
                        default: break
                        }
                    }
                }
            )
            let operation = try await Workload.pinUnpin.worker(session)
            tasks.append(
                Task {
                    while tally.running.load(ordering: .relaxed) {
                        do {
                            try await operation()
                            tally.acknowledged(worker, term: client.server.term)
                        } catch {
                            tally.state.withLock { $0.errors.append("worker \(worker): \(error)") }
                            return
                        }
                    }
                }
            )
        }
        let granted = sessions.first?.ttl ?? self.ttl
        let signalName = self.signal == SIGKILL ? "SIGKILL" : "SIGTERM"
        print("failover: \(self.workers) clients × pin-unpin, session TTL \(granted), backoff cap \(backoffCap), \(self.kills) × \(signalName) to the leader")

        var rounds: [Round] = []
        for round in 1...self.kills {
            try await Task.sleep(for: self.settle)
            let status = try await admin.clusterStatus()
            guard let leader = status.leader, let index = cluster.nodes.firstIndex(where: { $0.endpoint == leader.endpoint }) else {
                throw BenchError("round \(round): no node leads: \(status)")
            }
            let pid = try cluster.pid(of: index)
            let etcdTermBefore = Round.raftTerm(status)
            let unreadBefore = Round.unread(status)
            let killedAt = tally.kill(term: leader.term)
            kill(pid, self.signal)
            try await Self.waitUntil("every client acknowledged by the new leader", timeout: .seconds(60)) { tally.allBack }
            let (first, stall) = tally.round
            tally.endRound()
            let after = try await admin.clusterStatus()
            let result = Round(
                leader: leader.name, recovery: first - killedAt, longestStall: stall,
                etcdTerms: (etcdTermBefore, Round.raftTerm(after))
            )
            rounds.append(result)
            let etcdNote =
                switch result.etcdLeaderChanged {
                case true?: "; etcd elected a leader (raft term \(result.etcdTerms.before!) → \(result.etcdTerms.after!))"
                case false?: ""
                case nil:
                    "; etcd's raft term not read "
                        + (result.etcdTerms.before == nil ? "before the signal (\(unreadBefore))" : "after the round (\(Round.unread(after)))")
                }
            print(
                "round \(round): \(signalName) \(leader.name) (term \(leader.term)); first acknowledgement by the new leader after \(Self.seconds(result.recovery)), longest client stall \(Self.seconds(result.longestStall))\(etcdNote)"
            )
            // The killed node comes back from its command line and catches up as a standby
            // (to where the log was when it came back).
            let head = after.head?.index ?? 0
            try cluster.restart(index)
            let name = leader.name
            try await Self.waitUntil("\(name) is back as a standby that caught up", timeout: .seconds(90)) {
                let status = try await admin.clusterStatus()
                return status.nodes.contains { $0.name == name && $0.role == .standby && $0.appliedIndex >= head } && status.leader != nil
            }
        }
        tally.running.store(false, ordering: .relaxed)
        for session in sessions { _ = try? await session.close() }
        for client in clients { client.close() }
        for task in tasks { task.cancel() }

        let recoveries = rounds.map(\.recovery).sorted()
        let stalls = rounds.map(\.longestStall).sorted()
        let state = tally.state.withLock { $0 }
        print("kills \(rounds.count); operations \(state.operations)")
        print("first acknowledgement after the kill: p50 \(Self.seconds(recoveries[recoveries.count / 2])), max \(Self.seconds(recoveries.last!))")
        print("longest client stall: p50 \(Self.seconds(stalls[stalls.count / 2])), max \(Self.seconds(stalls.last!))")
        let quiet = rounds.filter { $0.etcdLeaderChanged == false }.map(\.recovery).sorted()
        let elected = rounds.filter { $0.etcdLeaderChanged == true }.count
        print(
            "rounds with an etcd leader change: \(elected); not known (raft term not read): \(rounds.count - quiet.count - elected)"
                + (quiet.count < rounds.count && !quiet.isEmpty
                    ? "; rounds known without one: first acknowledgement p50 \(Self.seconds(quiet[quiet.count / 2])), max \(Self.seconds(quiet.last!))" : "")
        )
        print("sessions in jeopardy: \(state.jeopardies); sessions ended: \(state.endings.count); worker errors: \(state.errors.count)")
        for line in (state.endings + state.errors).prefix(10) { print("  \(line)") }
        let check = try await admin.checkInvariants()
        print("invariants after the run: \(check.isEmpty ? "hold" : "\(check.count) violations")")
        guard state.jeopardies == 0, state.endings.isEmpty, state.errors.isEmpty, check.isEmpty else {
            throw BenchError("a session entered jeopardy or ended, a worker failed, or an invariant broke (above)")
        }
    }

    static func seconds(_ duration: Duration) -> String {
        let ms = Double(duration.components.seconds) * 1_000 + Double(duration.components.attoseconds) / 1e15
        return String(format: "%.3f s", ms / 1_000)
    }

    static func waitUntil(_ what: String, timeout: Duration, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw BenchError("timed out after \(timeout) waiting until \(what)")
    }
}

/// The nodes of a `scripts/dev-cluster` directory's `cluster.json`: their endpoints,
/// pids and command lines; a restarted node's pid is written back, as `dev-cluster down`
/// expects.
final class DevCluster: Sendable {
    struct Node: Decodable, Sendable {
        var name: String
        var endpoint: String
        var pid: Int32
        var argv: [String]
    }

    struct File: Decodable { var nodes: [Node] }

    let directory: String
    let nodes: [Node]
    /// The nodes this process restarted, by pid (reaped through them).
    let started = Mutex<[Int32: Process]>([:])

    init(directory: String) throws {
        self.directory = directory
        guard let data = FileManager.default.contents(atPath: Self.path(directory)) else {
            throw BenchError("\(Self.path(directory)) does not exist: start a cluster with scripts/dev-cluster up \(directory)")
        }
        self.nodes = try JSONDecoder().decode(File.self, from: data).nodes
    }

    static func path(_ directory: String) -> String { (directory as NSString).appendingPathComponent("cluster.json") }

    /// The pid `cluster.json` holds now for node `index`.
    func pid(of index: Int) throws -> Int32 {
        guard let data = FileManager.default.contents(atPath: Self.path(self.directory)) else { throw BenchError("cluster.json is gone") }
        return try JSONDecoder().decode(File.self, from: data).nodes[index].pid
    }

    /// Starts node `index` again from its argv (its log appended to `logs/NAME.log`) and
    /// writes its new pid into `cluster.json`.
    func restart(_ index: Int) throws {
        let node = self.nodes[index]
        let old = try self.pid(of: index)
        // It must be gone first: the port and the data directory's lock must be free.
        if let child = self.started.withLock({ $0.removeValue(forKey: old) }) {
            child.waitUntilExit()
        } else {
            let deadline = ContinuousClock.now + .seconds(30)
            while kill(old, 0) == 0 {
                guard ContinuousClock.now < deadline else { throw BenchError("\(node.name) (pid \(old)) did not exit") }
                usleep(20_000)
            }
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: node.argv[0])
        process.arguments = Array(node.argv.dropFirst())
        let logs = (self.directory as NSString).appendingPathComponent("logs")
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        let logPath = (logs as NSString).appendingPathComponent("\(node.name).log")
        if !FileManager.default.fileExists(atPath: logPath) { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.started.withLock { $0[process.processIdentifier] = process }
        let path = Self.path(self.directory)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let updated = text.replacingOccurrences(of: "\"pid\":\(old),\"dataDir\"", with: "\"pid\":\(process.processIdentifier),\"dataDir\"")
        guard updated != text else { throw BenchError("could not write the new pid of \(node.name) into \(path)") }
        try updated.write(toFile: path, atomically: true, encoding: .utf8)
    }
}
