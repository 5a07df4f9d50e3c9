import ArgumentParser
import Foundation
import LeaseholdClient
import Logging

/// Where the server is and who to be. Each setting comes from its flag, else its
/// environment variable, else the default data directory's development certificates.
struct ConnectionOptions: ParsableArguments {
    @Option(
        help: "Server address host:port, or the nodes of a cluster as a comma-separated list: the leader is found (LEASEHOLD_ENDPOINT; default the nodes of the data directory's cluster.json, else 127.0.0.1:7420)."
    )
    var endpoint: String?
    @Option(help: "Client certificate, PEM (LEASEHOLD_CERT).") var cert: String?
    @Option(help: "Client private key, PEM (LEASEHOLD_KEY).") var key: String?
    @Option(help: "CA of the server certificate, PEM (LEASEHOLD_CA).") var ca: String?
    @Option(help: "Data directory whose development certificates are the defaults (LEASEHOLD_DATA_DIR; default ./leasehold-data).")
    var dataDir: String?
    @Option(help: "Identity of the development certificate to use (default admin).") var identity: String = "admin"
    @Flag(help: "JSON output for scripts.") var json = false
    @Flag(help: "Ask the first node that answers, a standby too (it answers admin reads from the log it applied; anything else is notLeader).")
    var anyNode = false

    var output: Output { Output(json: self.json) }

    func configuration() throws -> ClientConfiguration {
        let environment = ProcessInfo.processInfo.environment
        let dataDirectory = self.dataDir ?? environment["LEASEHOLD_DATA_DIR"] ?? "./leasehold-data"
        var configuration: ClientConfiguration
        if let list = self.endpoint ?? environment["LEASEHOLD_ENDPOINT"] {
            configuration = .development(dataDirectory: dataDirectory, identity: self.identity, endpoints: try Self.endpoints(list))
        } else {
            configuration = .development(dataDirectory: dataDirectory, identity: self.identity)
        }
        if let cert = self.cert ?? environment["LEASEHOLD_CERT"] { configuration.certificatePath = cert }
        if let key = self.key ?? environment["LEASEHOLD_KEY"] { configuration.keyPath = key }
        if let ca = self.ca ?? environment["LEASEHOLD_CA"] { configuration.caPath = ca }
        configuration.clientName = "leaseholdctl"
        configuration.reconnectTimeout = .seconds(10)
        configuration.acceptsStandby = self.anyNode
        return configuration
    }

    /// `host:port[,host:port...]`.
    static func endpoints(_ list: String) throws -> [HostPort] {
        let items = list.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        return try items.map { item in
            guard let address = HostPort(text: item) else { throw ValidationError("endpoint '\(item)' is not host:port") }
            return address
        }
    }

    /// Connects, runs `body`, closes; a Leasehold error goes to stderr with its code
    /// and becomes the exit code 10 + code.
    func run<T>(anyNode: Bool = false, _ body: (LeaseholdClient) async throws -> T) async throws -> T {
        var logger = Logger(label: "leaseholdctl")
        logger.logLevel = .error
        do {
            var configuration = try self.configuration()
            if anyNode { configuration.acceptsStandby = true }
            let client = try await LeaseholdClient.connect(configuration, logger: logger)
            defer { client.close() }
            return try await body(client)
        } catch let error as LeaseholdError {
            FileHandle.standardError.write(Data("error: \(error.code.name)(\(error.code.rawValue)): \(error.message)\n".utf8))
            throw ExitCode(Exit.code(for: error))
        }
    }
}

/// Options of commands that act in a session: a new one by default, or an existing one
/// (printed by `pin` and `layout get`) to act on its pins and layouts.
struct SessionOptions: ParsableArguments {
    @Option(help: "Act in this existing session (needs --secret) instead of a new one.") var session: UInt64?
    @Option(help: "The secret of --session, 32 hex digits.") var secret: String?
    @Option(help: "TTL of a new session (default: the server's).") var ttl: String?

    /// Runs `body` in the session to act in; a session opened for it is closed after.
    func perform<T>(_ client: LeaseholdClient, name: String, _ body: (LeaseholdSession) async throws -> T) async throws -> T {
        let session = try await self.open(client, name: name)
        let result = try await body(session)
        if self.session == nil { try await session.close() }
        return result
    }

    /// The session to act in: a new one, or the one of --session/--secret.
    func open(_ client: LeaseholdClient, name: String) async throws -> LeaseholdSession {
        if let id = self.session {
            guard let text = self.secret, let secret = SecretText.parse(text) else {
                throw ValidationError("--session needs --secret with the 32 hex digits printed when it was opened")
            }
            return try await client.resumeSession(SessionID(rawValue: id), secret: secret)
        }
        return try await client.openSession(name: name, ttl: try self.ttl.map(parseDuration))
    }
}

/// Session secrets as 32 hex digits.
enum SecretText {
    static func format(_ secret: SessionSecret) -> String {
        let high = String(secret.high, radix: 16)
        let low = String(secret.low, radix: 16)
        return String(repeating: "0", count: 16 - high.count) + high + String(repeating: "0", count: 16 - low.count) + low
    }

    static func parse(_ text: String) -> SessionSecret? {
        guard text.count == 32, let high = UInt64(text.prefix(16), radix: 16), let low = UInt64(text.suffix(16), radix: 16) else { return nil }
        return SessionSecret(high: high, low: low)
    }
}

/// A duration flag (`Duration(text:)`), or a usage error naming it.
func parseDuration(_ text: String) throws -> Duration {
    guard let duration = Duration(text: text) else { throw ValidationError("'\(text)' is not a duration (e.g. 250ms, 10s, 5m)") }
    return duration
}

/// Asks before a destructive action unless `--yes`.
func confirm(_ question: String, yes: Bool) throws {
    guard !yes else { return }
    FileHandle.standardError.write(Data("\(question) [y/N] ".utf8))
    guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else {
        FileHandle.standardError.write(Data("aborted\n".utf8))
        throw ExitCode(Exit.failure)
    }
}
