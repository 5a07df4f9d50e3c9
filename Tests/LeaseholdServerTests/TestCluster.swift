import Foundation
import LeaseholdCertificates
@testable import LeaseholdClient
import LeaseholdCore
import LeaseholdJournal
import LeaseholdServer
import LeaseholdStore
import LeaseholdTestSupport
import Logging
import Synchronization
import Testing

/// An in-process server on 127.0.0.1 (port 0) with real mutual TLS over a fresh data
/// directory, and clients for any identity (certificates issued from its development
/// CA). Short timeouts, so recalls, expiry and release delays play out in
/// milliseconds; waits are on conditions with deadlines, never fixed sleeps.
final class TestCluster: Sendable {
    let directory: String
    let server: LeaseholdServer
    let running: Task<Void, any Error>
    let files: TLSFiles

    /// - Parameter standby: start without a sink, as a cluster node does (a standby until
    ///   it is told to lead).
    static func start(
        sink: (any JournalSink)? = nil, standby: Bool = false, _ configure: (inout ServerConfiguration) -> Void = { _ in }
    ) async throws -> TestCluster {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("leasehold-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var configuration = ServerConfiguration(sink: standby ? nil : try sink ?? Store(path: directory + "/leasehold.db"))
        configuration.dataDirectory = directory
        configuration.port = 0
        configuration.eventLoopThreads = 2
        configuration.targets = ["target-1", "target-2"]
        configuration.coordinator.geometry = try VolumeGeometry(blockSize: 4_096, blockCount: 1 << 16)
        configuration.coordinator.minimumTTL = .milliseconds(100)
        // Slack for a loaded 2-core machine: a recall answered by a client must get through
        // the test pool in time (400 ms was missed with etcd and daemons beside it).
        configuration.coordinator.recallTimeout = .seconds(2)
        configuration.coordinator.releaseDelay = .milliseconds(100)
        configure(&configuration)
        return try await TestCluster(configuration: configuration)
    }

    init(configuration: ServerConfiguration) async throws {
        self.directory = configuration.dataDirectory
        var logger = Logger(label: "test.server")
        logger.logLevel = ProcessInfo.processInfo.environment["LEASEHOLD_TEST_LOG"] == nil ? .critical : .debug
        self.server = try await LeaseholdServer.start(configuration: configuration, logger: logger)
        self.files = TLSFiles(dataDirectory: configuration.dataDirectory)
        let server = self.server
        self.running = Task { try await server.run() }
    }

    /// Stops the server gracefully and starts a new one on the same data directory, sink
    /// and port: a restart, as clients see it.
    func restarted() async throws -> TestCluster {
        self.server.shutdown()
        try await self.running.value
        var configuration = self.server.configuration
        configuration.port = self.port
        // The SQLite file was closed with the server: open it again, as leaseholdd would.
        if let store = configuration.sink as? Store { configuration.sink = try Store(path: store.path) }
        return try await TestCluster(configuration: configuration)
    }

    var port: Int { self.server.localPort }

    func configuration(_ identity: String) throws -> ClientConfiguration {
        if identity != "admin" && !FileManager.default.fileExists(atPath: self.files.clientCertificate(identity)) {
            _ = try self.files.issueClient(identity)
        }
        var configuration = ClientConfiguration.development(dataDirectory: self.directory, identity: identity, port: self.port)
        configuration.reconnectTimeout = .seconds(5)
        return configuration
    }

    func client(_ identity: String = "admin", _ adjust: (inout ClientConfiguration) -> Void = { _ in }) async throws -> LeaseholdClient {
        var configuration = try self.configuration(identity)
        adjust(&configuration)
        var logger = Logger(label: "test.client.\(identity)")
        logger.logLevel = .critical
        return try await LeaseholdClient.connect(configuration, logger: logger)
    }

    /// Stops the server gracefully and removes the data directory.
    func stop() async throws {
        self.server.shutdown()
        try await self.running.value
        try? FileManager.default.removeItem(atPath: self.directory)
    }
}

/// Records a session's events as they arrive, for tests to wait on.
final class EventLog: Sendable {
    final class Storage: Sendable {
        let events = Mutex<[SessionEvent]>([])
    }

    let storage = Storage()
    let task: Task<Void, Never>

    init(_ session: LeaseholdSession) {
        let storage = self.storage
        self.task = Task {
            for await event in session.events { storage.events.withLock { $0.append(event) } }
        }
    }

    var all: [SessionEvent] { self.storage.events.withLock { $0 } }

    /// The first recorded event `match` accepts, waiting for it up to `timeout`.
    func first<T>(
        _ what: String,
        timeout: Duration = .seconds(10),
        sourceLocation: SourceLocation = #_sourceLocation,
        _ match: (SessionEvent) -> T?
    ) async throws -> T {
        var found: T?
        try await eventually(what, timeout: timeout, sourceLocation: sourceLocation) {
            found = self.all.lazy.compactMap(match).first
            return found != nil
        }
        return found!
    }
}
