import Foundation
import Synchronization
import LeaseholdEtcd
import NIOSSL

/// Real etcd members on loopback for tests: Debian's `etcd` on PATH, each member on free
/// 127.0.0.1 ports with its own data directory, killed and removed when the test process
/// ends even if it crashes (each runs under a shell that kills it when its stdin, a pipe
/// from this process, closes).
///
/// Lifecycle: ``start(members:)`` starts them and waits until the cluster answers;
/// ``kill(_:)`` and ``stop(_:)`` end one member (SIGKILL or SIGTERM); ``restart(_:)``
/// starts it again on the same ports and data; ``shutdown()`` ends them all.
public final class EtcdMembers: Sendable {
    /// One member: its name, its client URL, its ports, and the process while it runs.
    public struct Member: Sendable {
        public var name: String
        public var clientPort: Int
        public var peerPort: Int
        public var dataDirectory: String
        var secure = false
        public var clientURL: String { "\(self.secure ? "https" : "http")://127.0.0.1:\(self.clientPort)" }
    }

    /// Mutual TLS on the client URLs: the members' certificate and key (valid for
    /// 127.0.0.1) and the CA every client certificate must be signed by.
    public struct TLS: Sendable {
        public var certificate: String
        public var key: String
        public var clientCA: String

        public init(certificate: String, key: String, clientCA: String) {
            self.certificate = certificate
            self.key = key
            self.clientCA = clientCA
        }
    }

    final class Running: @unchecked Sendable {
        let process: Process
        let stdin: Pipe
        let pid: Int32

        init(process: Process, stdin: Pipe, pid: Int32) {
            self.process = process
            self.stdin = stdin
            self.pid = pid
        }
    }

    public let members: [Member]
    public let directory: String
    private let running = Mutex<[String: Running]>([:])
    /// The raft timings: slack for a loaded 2-core machine (etcd's defaults are 100 ms and
    /// 1 s).
    public let heartbeat: Duration
    public let election: Duration

    /// Whether `etcd` can be run here.
    public static var isInstalled: Bool {
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").contains { directory in
            FileManager.default.isExecutableFile(atPath: "\(directory)/etcd")
        }
    }

    public let tls: TLS?

    private init(members: [Member], directory: String, heartbeat: Duration, election: Duration, tls: TLS?) {
        self.tls = tls
        self.members = members
        self.directory = directory
        self.heartbeat = heartbeat
        self.election = election
    }

    /// Starts `count` members as one cluster and waits until it answers.
    /// - Parameter tls: mutual TLS on the client URLs (the health check then needs
    ///   `healthClient`, a client TLS configuration the members accept).
    public static func start(
        members count: Int = 1, heartbeat: Duration = .milliseconds(100), election: Duration = .milliseconds(1_000), tls: TLS? = nil,
        healthClient: TLSConfiguration? = nil
    ) async throws -> EtcdMembers {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("leasehold-etcd-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let ports = try freePorts(2 * count)
        let members = (0..<count).map { i in
            Member(name: "m\(i)", clientPort: ports[2 * i], peerPort: ports[2 * i + 1], dataDirectory: "\(directory)/m\(i)", secure: tls != nil)
        }
        let cluster = EtcdMembers(members: members, directory: directory, heartbeat: heartbeat, election: election, tls: tls)
        for member in members { try cluster.launch(member) }
        try await cluster.waitUntilHealthy(client: healthClient)
        return cluster
    }

    public var endpoints: [String] { self.members.map(\.clientURL) }

    private static let sharedMember = Mutex<Task<EtcdMembers, any Error>?>(nil)
    private static let compactingMember = Mutex<Task<EtcdMembers, any Error>?>(nil)

    /// One member shared by every test of the process that only needs an etcd to write
    /// to (each uses its own cluster name); started by the first that asks, ended with
    /// the process.
    public static func shared() async throws -> EtcdMembers {
        try await Self.once(Self.sharedMember)
    }

    /// One member shared by the tests that compact etcd's history (compaction tests, nodes
    /// with a short compaction policy). etcd's `Compact` is keyspace-wide: on the
    /// ``shared()`` member it would end other tests' watches and reads from older revisions.
    public static func sharedForCompaction() async throws -> EtcdMembers {
        try await Self.once(Self.compactingMember)
    }

    /// The member `slot` holds, started by the first caller.
    private static func once(_ slot: borrowing Mutex<Task<EtcdMembers, any Error>?>) async throws -> EtcdMembers {
        let task = slot.withLock { task in
            if let task { return task }
            let started = Task { try await EtcdMembers.start(members: 1) }
            task = started
            return started
        }
        return try await task.value
    }

    /// The command line that runs `member`.
    public func arguments(_ member: Member) -> [String] {
        let initial = self.members.map { "\($0.name)=http://127.0.0.1:\($0.peerPort)" }.joined(separator: ",")
        return [
            "etcd", "--name", member.name, "--data-dir", member.dataDirectory,
            "--listen-client-urls", member.clientURL, "--advertise-client-urls", member.clientURL,
            "--listen-peer-urls", "http://127.0.0.1:\(member.peerPort)",
            "--initial-advertise-peer-urls", "http://127.0.0.1:\(member.peerPort)",
            "--initial-cluster", initial, "--initial-cluster-state", "new", "--initial-cluster-token", "leasehold-test",
            "--heartbeat-interval", String(self.heartbeat.milliseconds), "--election-timeout", String(self.election.milliseconds),
            "--log-level", "error",
        ] + (self.tls.map { ["--cert-file", $0.certificate, "--key-file", $0.key, "--client-cert-auth", "--trusted-ca-file", $0.clientCA] } ?? [])
    }

    private func launch(_ member: Member) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        // The shell starts etcd, prints its pid, and kills it once stdin closes: when the
        // test ends it, or when the test process dies.
        let command = self.arguments(member).map { "'\($0)'" }.joined(separator: " ")
        // A member the test process did not end itself (the process died) also takes its
        // data directory with it.
        let log = "\(self.directory)/\(member.name).log"
        process.arguments = [
            "-c",
            "\(command) >>'\(log)' 2>&1 & pid=$!; echo $pid; read why; kill -9 $pid 2>/dev/null; "
                + "[ \"$why\" = ended ] || rm -rf '\(self.directory)'",
        ]
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        let line = String(decoding: stdout.fileHandleForReading.readLine(), as: UTF8.self)
        guard let pid = Int32(line.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw EtcdMembersError("etcd member \(member.name) did not start: \(line)")
        }
        self.running.withLock { $0[member.name] = Running(process: process, stdin: stdin, pid: pid) }
    }

    /// The pid of the etcd process of `member`, while it runs.
    public func pid(_ member: Int) -> Int32? {
        self.running.withLock { $0[self.members[member].name]?.pid }
    }

    /// Sends `signal` to member `index`'s etcd and waits for its shell to end.
    private func end(_ index: Int, signal: Int32) {
        let running = self.running.withLock { $0.removeValue(forKey: self.members[index].name) }
        guard let running else { return }
        Foundation.kill(running.pid, signal)
        // "ended": the test ended it and its data stays (a restart reuses it).
        try? running.stdin.fileHandleForWriting.write(contentsOf: Array("ended\n".utf8))
        try? running.stdin.fileHandleForWriting.close()
        running.process.waitUntilExit()
    }

    /// SIGKILL: the member ends at once, as in a crash.
    public func kill(_ index: Int) { self.end(index, signal: SIGKILL) }

    /// SIGSTOP / SIGCONT: the member stops answering without its sockets closing.
    public func pause(_ index: Int) { if let pid = self.pid(index) { Foundation.kill(pid, SIGSTOP) } }
    public func resume(_ index: Int) { if let pid = self.pid(index) { Foundation.kill(pid, SIGCONT) } }

    /// Starts member `index` again with its data directory.
    public func restart(_ index: Int) throws {
        self.kill(index)
        try self.launch(self.members[index])
    }

    /// Ends every member and removes their data.
    public func shutdown() {
        for index in self.members.indices { self.end(index, signal: SIGKILL) }
        try? FileManager.default.removeItem(atPath: self.directory)
    }

    /// Waits until every running member answers a status request. The deadline is long:
    /// the first half minute of a full `swift test` on two cores can leave the test's
    /// threads almost no CPU (docs/cluster.md, "Noticed").
    public func waitUntilHealthy(timeout: Duration = .seconds(120), client tls: TLSConfiguration? = nil) async throws {
        let deadline = ContinuousClock.now + timeout
        let running = self.members.indices.filter { self.pid($0) != nil }
        for index in running {
            while !(await Self.healthy(self.members[index], tls: tls)) {
                guard ContinuousClock.now < deadline else {
                    let log = (try? String(contentsOfFile: "\(self.directory)/\(self.members[index].name).log", encoding: .utf8)) ?? ""
                    throw EtcdMembersError("etcd member \(self.members[index].name) not healthy after \(timeout): \(log.suffix(2_000))")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// Whether `member` answers a status request. (Not through URLSession: on Linux its
    /// libcurl timers on the dispatch manager thread crashed a test process.)
    static func healthy(_ member: Member, tls: TLSConfiguration?) async -> Bool {
        let client = EtcdClient(EtcdConfiguration(endpoints: [member.clientURL], tls: tls, requestTimeout: .seconds(2)))
        let answered = (try? await client.status()) != nil
        try? await client.shutdown()
        return answered
    }
}

public struct EtcdMembersError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension Duration {
    var milliseconds: Int64 { self.components.seconds * 1_000 + self.components.attoseconds / 1_000_000_000_000_000 }
}

extension FileHandle {
    /// Bytes up to the first newline (not included), or to the end.
    func readLine() -> [UInt8] {
        var line: [UInt8] = []
        while let byte = try? self.read(upToCount: 1), let first = byte.first {
            if first == UInt8(ascii: "\n") { break }
            line.append(first)
        }
        return line
    }
}

/// Ports this process handed out: never handed out twice, so that tests starting etcd
/// members and daemons at the same time cannot pick the same port between its release
/// here and its bind there.
private let handedOut = Mutex<Set<Int>>([])

/// `count` distinct free TCP ports on 127.0.0.1 (bound and released: free when returned),
/// none handed out before by this process.
public func freePorts(_ count: Int) throws -> [Int] {
    var ports: [Int] = []
    for _ in 0..<100 where ports.count < count {
        for port in try boundPorts(count - ports.count) {
            let fresh = handedOut.withLock { $0.insert(port).inserted }
            if fresh { ports.append(port) }
        }
    }
    guard ports.count == count else { throw EtcdMembersError("no \(count) fresh free ports") }
    return ports
}

private func boundPorts(_ count: Int) throws -> [Int] {
    var sockets: [Int32] = []
    defer { for socket in sockets { close(socket) } }
    var ports: [Int] = []
    for _ in 0..<count {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw EtcdMembersError("socket: errno \(errno)") }
        sockets.append(fd)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0 else { throw EtcdMembersError("bind: errno \(errno)") }
        let named = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        guard named == 0 else { throw EtcdMembersError("getsockname: errno \(errno)") }
        ports.append(Int(UInt16(bigEndian: address.sin_port)))
    }
    return ports
}

/// Whether the tests that need etcd must run: where `LEASEHOLD_REQUIRE_ETCD` is set
/// (`.ci/run` sets it) a missing etcd is a failure, not a skip. Elsewhere they are skipped
/// when `etcd` is not on PATH.
public func requireEtcd() -> Bool {
    ProcessInfo.processInfo.environment["LEASEHOLD_REQUIRE_ETCD"] != nil
}
