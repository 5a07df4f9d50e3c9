import ArgumentParser
import Foundation
import Histogram
import LeaseholdClient
import Logging
import Synchronization

@main
struct LeaseholdBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leasehold-bench",
        abstract: "Load generator: N connections × M sessions × K requests in flight over mutual TLS.",
        discussion: """
            Without --endpoint it starts the leaseholdd next to it on a fresh data directory in --scratch \
            (default: the system temporary directory) and stops it afterwards. Use a release build: \
            swift build -c release --product leasehold-bench --product leaseholdd. Baselines measured in the \
            same run: 4 KiB write+fsync on the data directory's disk, and a loopback TCP echo round trip.
            """
    )

    @Argument(help: "pin-unpin, allocate-truncate, layout-get-return, keepalive-flood, recall-storm, expiry-storm, mixed, session-hold or failover.")
    var workload: String
    @Option(help: "Client connections.") var connections: Int = 64
    @Option(help: "Sessions per connection.") var sessions: Int = 1
    @Option(help: "Requests in flight per session.") var inFlight: Int = 4
    @Option(help: "Measured duration after the warm-up.") var duration: String = "10s"
    @Option(help: "Stop after this many measured operations instead.") var operations: Int?
    @Option(help: "Warm-up, not measured.") var warmup: String = "2s"
    @Option(help: "A running server host:port; otherwise one is started.") var endpoint: String?
    @Option(help: "Data directory whose development certificates to use (with --endpoint).") var dataDir: String = "./leasehold-data"
    @Option(help: "Where a started server keeps its data directory (the disk of the fsync baseline).") var scratch: String?
    @Option(help: "expiry-storm: sessions left to expire at once.") var expiringSessions: Int = 10_000
    @Option(help: "Session TTL (session-hold: renewed every TTL/3 by the client library).") var ttl: String = "30s"
    @Option(help: "Write the result as JSON to this file ('-' for standard output).") var json: String?
    @Option(help: "Write latency over time (per second) as CSV to this file.") var csv: String?
    @Flag(help: "Skip the fsync and TCP echo baselines.") var noBaselines = false
    @Option(help: "failover: the directory of a cluster scripts/dev-cluster started (cluster.json).") var cluster: String?
    @Option(help: "failover: leader kills.") var kills: Int = 20
    @Option(help: "failover: time on each new leader before the next kill.") var settle: String = "3s"
    @Option(help: "failover: KILL (a crash) or TERM (a graceful handover).") var signal: String = "KILL"

    func run() async throws {
        if self.workload == "failover" {
            guard let cluster = self.cluster else { throw ValidationError("failover needs --cluster DIR (scripts/dev-cluster up DIR)") }
            guard let signal = ["KILL": SIGKILL, "TERM": SIGTERM][self.signal.uppercased()] else { throw ValidationError("--signal is KILL or TERM") }
            var logger = Logger(label: "bench")
            logger.logLevel = .critical
            let bench = FailoverBench(
                directory: cluster, kills: self.kills, workers: self.connections, ttl: try parseDuration(self.ttl), settle: try parseDuration(self.settle),
                signal: signal, logger: logger
            )
            try await bench.run()
            return
        }
        guard let workload = Workload(rawValue: self.workload) else {
            throw ValidationError("unknown workload '\(self.workload)': \(Workload.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let measured = try parseDuration(self.duration)
        let warmUp = try parseDuration(self.warmup)
        var server: ServerProcess?
        let dataDirectory: String
        let endpoint: HostPort
        if let text = self.endpoint {
            guard let address = HostPort(text: text) else { throw ValidationError("endpoint '\(text)' is not host:port") }
            endpoint = address
            dataDirectory = self.dataDir
        } else {
            let started = try await ServerProcess.start(scratch: self.scratch ?? FileManager.default.temporaryDirectory.path)
            server = started
            endpoint = HostPort(host: "127.0.0.1", port: started.port)
            dataDirectory = started.directory
        }
        defer { server?.stop() }

        var report = Report(workload: workload.rawValue, connections: self.connections, sessions: self.sessions, inFlight: self.inFlight)
        if !self.noBaselines {
            report.fsync = try Baselines.fsync(in: dataDirectory)
            report.echo = try await Baselines.echo()
        }
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        var configuration = ClientConfiguration.development(dataDirectory: dataDirectory, host: endpoint.host, port: endpoint.port)
        configuration.clientName = "leasehold-bench"
        var clients: [LeaseholdClient] = []
        for _ in 0..<self.connections { clients.append(try await LeaseholdClient.connect(configuration, logger: logger)) }
        defer { for client in clients { client.close() } }

        var driver = Driver(clients: clients, sessionsPerConnection: self.sessions, inFlight: self.inFlight, warmUp: warmUp, measured: measured, limit: self.operations)
        driver.ttl = try parseDuration(self.ttl)
        switch workload {
        case .sessionHold:
            try await driver.sessionHold(admin: clients[0], into: &report)
        case .recallStorm:
            try await driver.recallStorm(into: &report)
        case .expiryStorm:
            let expiring = try await LeaseholdClient.connect(configuration, logger: logger)
            try await driver.expiryStorm(sessions: self.expiringSessions, on: expiring, admin: clients[0], into: &report)
        default:
            try await driver.run(workload, into: &report)
        }
        report.print()
        if let path = self.json {
            let text = report.json + "\n"
            if path == "-" { Swift.print(text, terminator: "") } else { try text.write(toFile: path, atomically: true, encoding: .utf8) }
        }
        if let path = self.csv { try report.csv.write(toFile: path, atomically: true, encoding: .utf8) }
    }
}

/// A duration flag (`Duration(text:)`), or a usage error naming it.
func parseDuration(_ text: String) throws -> Duration {
    guard let duration = Duration(text: text) else { throw ValidationError("'\(text)' is not a duration (e.g. 250ms, 10s, 5m)") }
    return duration
}
