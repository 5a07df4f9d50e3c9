import Foundation
import LeaseholdCertificates
import LeaseholdClient
import LeaseholdTestSupport
import Logging
import Synchronization
import Testing

/// The built executables sit next to the test bundle.
let productsDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()

/// Bytes collected from a pipe by its readability handler. A process's exit does not
/// mean its output was read (the handler may run later), nor that the pipe ends: a child
/// spawned meanwhile by another test may hold its write end open.
final class Collected: Sendable {
    private let state = Mutex((data: Data(), reading: false, ended: false))
    let handle: FileHandle

    init(_ pipe: Pipe) {
        self.handle = pipe.fileHandleForReading
        self.handle.readabilityHandler = { [weak self] handle in self?.receive(handle) }
    }

    /// The readability handler's step: an empty read is the end of the pipe.
    private func receive(_ handle: FileHandle) {
        self.state.withLock { $0.reading = true }
        let more = handle.availableData
        let ended = self.state.withLock { state in
            state.reading = false
            if more.isEmpty { state.ended = true } else { state.data.append(more) }
            return state.ended
        }
        if ended { handle.readabilityHandler = nil }
    }

    /// Whether every byte written to the pipe so far is in ``text``: the pipe holds
    /// nothing unread (POLLIN; a pipe whose writers all closed reports POLLHUP alone, and
    /// the handler is not always called for that end) while no read is under way. Once
    /// the writer exited, true stays true. (The pipe is polled before the flag is read: a
    /// read that emptied it before the poll still holds the flag after it.)
    var isDrained: Bool {
        let unread = self.polled().revents & Int16(POLLIN) != 0
        return self.state.withLock { $0.ended || (!unread && !$0.reading) }
    }

    var text: String { String(decoding: self.state.withLock { $0.data }, as: UTF8.self) }

    /// What ``isDrained`` looks at, for a failure's message.
    var diagnosis: String {
        let polled = self.polled()
        return self.state.withLock { "poll \(polled.ready) revents \(polled.revents), ended \($0.ended), reading \($0.reading), \($0.data.count) bytes" }
    }

    /// The pipe's read end polled without waiting: `poll`'s result and the events it set.
    private func polled() -> (ready: Int32, revents: Int16) {
        var descriptor = pollfd(fd: self.handle.fileDescriptor, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, 0)
        return (ready, ready > 0 ? descriptor.revents : 0)
    }
}

/// A child process with its output collected as it arrives.
final class Child: Sendable {
    let process: Process
    let output: Collected
    let errors: Collected
    let name: String

    init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        self.name = ([executable] + arguments).joined(separator: " ")
        self.process = Process()
        self.process.executableURL = productsDirectory.appendingPathComponent(executable)
        self.process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        self.process.environment = env
        let out = Pipe()
        let err = Pipe()
        self.process.standardOutput = out
        self.process.standardError = err
        self.process.standardInput = FileHandle.nullDevice
        self.output = Collected(out)
        self.errors = Collected(err)
        try self.process.run()
        Children.shared.add(self)
    }

    var stdout: String { self.output.text }
    var stderr: String { self.errors.text }
    var pid: Int32 { self.process.processIdentifier }
    var isRunning: Bool { self.process.isRunning }

    func signal(_ number: Int32) {
        if self.process.isRunning { kill(self.pid, number) }
    }

    /// Waits for the process to exit (killing it after `timeout`); returns its status.
    @discardableResult
    func wait(timeout: Duration = .seconds(30)) async -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while self.process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        if self.process.isRunning {
            kill(self.pid, SIGKILL)
            self.process.waitUntilExit()
        }
        Children.shared.remove(self)
        return self.process.terminationStatus
    }

    /// Waits for the process to exit and for all it wrote to be collected.
    @discardableResult
    func waitForEnd(timeout: Duration = .seconds(30)) async throws -> Int32 {
        let status = await self.wait(timeout: timeout)
        let deadline = ContinuousClock.now + .seconds(10)
        while !(self.output.isDrained && self.errors.isDrained) {
            guard ContinuousClock.now < deadline else {
                throw DaemonFailed(message: "\(self.name) exited (\(status)) but its output was not read within 10 s: stdout \(self.output.diagnosis); stderr \(self.errors.diagnosis)")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        return status
    }

    /// Waits until standard output contains `text`.
    func waitForOutput(_ text: String, timeout: Duration = .seconds(20), sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await eventually("'\(text)' from \(self.name)", timeout: timeout, sourceLocation: sourceLocation) {
            self.stdout.contains(text)
        }
    }
}

/// Every child still running, killed when the test process exits.
final class Children: Sendable {
    static let shared = Children()
    let running = Mutex<[Int32: Child]>([:])

    init() {
        atexit {
            for child in Children.shared.running.withLock({ Array($0.values) }) { kill(child.pid, SIGKILL) }
        }
    }

    func add(_ child: Child) { self.running.withLock { $0[child.pid] = child } }
    func remove(_ child: Child) { _ = self.running.withLock { $0.removeValue(forKey: child.pid) } }
}

/// A `leaseholdd` child process on 127.0.0.1 with a fresh data directory and short
/// timeouts, and the ways to reach it: library clients and `leaseholdctl` runs.
final class Daemon: Sendable {
    let directory: String
    let extraArguments: [String]
    let child: Mutex<Child?> = Mutex(nil)
    let portValue = Atomic<Int>(0)

    init(_ arguments: [String] = [], directory: String? = nil) async throws {
        self.directory = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("leasehold-it-\(UUID().uuidString)").path
        self.extraArguments = arguments
        try await self.start(port: 0)
    }

    var port: Int { self.portValue.load(ordering: .relaxed) }
    var endpoint: String { "127.0.0.1:\(self.port)" }

    /// Starts the daemon on `port` (0: any) and waits until it listens.
    func start(port: Int) async throws {
        let child = try Child(
            "leaseholdd",
            [
                "--data-dir", self.directory, "--listen", "127.0.0.1:\(port)", "--block-count", "65536", "--release-delay", "300ms",
                "--recall-timeout", "1s", "--min-ttl", "200ms", "--target", "target-1", "--log-level", "notice",
            ] + self.extraArguments
        )
        self.child.withLock { $0 = child }
        var listening: Int?
        try await eventually("leaseholdd listens", timeout: .seconds(60)) {
            guard child.isRunning else { throw DaemonFailed(message: "leaseholdd exited: \(child.stderr)") }
            guard let line = child.stderr.split(separator: "\n").first(where: { $0.contains("server.port=") && $0.contains("listening") }),
                let range = line.range(of: "server.port="),
                let value = Int(line[range.upperBound...].prefix { $0.isNumber })
            else { return false }
            listening = value
            return true
        }
        self.portValue.store(listening!, ordering: .relaxed)
    }

    /// SIGKILL, as a crash.
    func kill() async {
        guard let child = self.child.withLock({ $0 }) else { return }
        child.signal(SIGKILL)
        await child.wait()
    }

    /// SIGTERM and wait; removes the data directory.
    func stop() async {
        if let child = self.child.withLock({ $0 }) {
            child.signal(SIGTERM)
            await child.wait(timeout: .seconds(20))
        }
        try? FileManager.default.removeItem(atPath: self.directory)
    }

    var files: TLSFiles { TLSFiles(dataDirectory: self.directory) }

    func issue(_ identity: String) throws {
        if identity != "admin" && !FileManager.default.fileExists(atPath: self.files.clientCertificate(identity)) {
            _ = try self.files.issueClient(identity)
        }
    }

    /// A library client.
    func client(_ identity: String = "admin") async throws -> LeaseholdClient {
        try self.issue(identity)
        var configuration = ClientConfiguration.development(dataDirectory: self.directory, identity: identity, port: self.port)
        configuration.reconnectTimeout = .seconds(20)
        var logger = Logger(label: "it.\(identity)")
        logger.logLevel = .critical
        return try await LeaseholdClient.connect(configuration, logger: logger)
    }

    var ctlEnvironment: [String: String] { ["LEASEHOLD_DATA_DIR": self.directory, "LEASEHOLD_ENDPOINT": self.endpoint] }

    /// Starts `leaseholdctl` with `arguments` as `identity`.
    func ctlProcess(_ arguments: [String], as identity: String = "admin") throws -> Child {
        try self.issue(identity)
        return try Child("leaseholdctl", arguments + ["--identity", identity], environment: self.ctlEnvironment)
    }

    /// Runs `leaseholdctl` to the end: exit status and standard output.
    func ctl(_ arguments: [String], as identity: String = "admin") async throws -> (status: Int32, output: String, errors: String) {
        let child = try self.ctlProcess(arguments, as: identity)
        let status = try await child.waitForEnd()
        return (status, child.stdout, child.stderr)
    }

    /// Runs `leaseholdctl ... --json` and parses the output.
    func ctlJSON(_ arguments: [String], as identity: String = "admin", sourceLocation: SourceLocation = #_sourceLocation) async throws -> Any {
        let result = try await self.ctl(arguments + ["--json"], as: identity)
        #expect(result.status == 0, "leaseholdctl \(arguments) failed: \(result.errors)", sourceLocation: sourceLocation)
        return try JSONSerialization.jsonObject(with: Data(result.output.utf8))
    }

    /// `leaseholdctl status --json`.
    func status() async throws -> [String: Any] {
        try await self.ctlJSON(["status"]) as! [String: Any]
    }
}

struct DaemonFailed: Error, CustomStringConvertible {
    var message: String
    var description: String { self.message }
}

/// `eventually` with the defaults of multi-process tests: child processes start and
/// react more slowly than an in-process server.
func eventually(
    _ what: String,
    timeout: Duration = .seconds(20),
    sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async throws {
    try await LeaseholdTestSupport.eventually(what, timeout: timeout, every: .milliseconds(20), sourceLocation: sourceLocation, condition)
}

extension [String: Any] {
    func int(_ key: String) -> Int { (self[key] as? NSNumber)?.intValue ?? -1 }
}
