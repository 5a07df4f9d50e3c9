import Foundation
import LeaseholdCore
import LeaseholdMessages
import LeaseholdWire
import Logging
import Synchronization

/// A connection to a Leasehold server over mutual TLS.
///
/// Open sessions with ``openSession(name:ttl:slots:)`` to pin, allocate, truncate and hold
/// layouts; use the admin methods with an `admin` identity, and ``fenceFeed(after:)`` with
/// a `target` identity. The connection reconnects by itself and resumes its sessions.
///
/// ```swift
/// let client = try await LeaseholdClient.connect(.development())
/// let session = try await client.openSession(name: "gpu-worker")
/// let inode = try await session.createInode()
/// _ = try await session.allocate(inode, ByteRange(offset: 0, length: 1 << 20))
/// let pin = try await session.pin(inode, ranges: [ByteRange(offset: 0, length: 65_536)], kind: .longTerm)
/// ```
public final class LeaseholdClient: Sendable {
    let connection: ClientConnection
    let logger: Logger

    init(connection: ClientConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    /// Connects and performs the handshake.
    /// - Throws: `LeaseholdError` `unavailable` when the server cannot be reached or the
    ///   TLS handshake fails, `invalidArgument` for unreadable certificate files, or the
    ///   server's refusal of the protocol version.
    public static func connect(_ configuration: ClientConfiguration, logger: Logger = Logger(label: "leasehold.client")) async throws -> LeaseholdClient {
        LeaseholdClient(connection: try await ClientConnection.open(configuration, logger: logger), logger: logger)
    }

    /// What the server said in its handshake (of the latest connection).
    public var server: ServerHello { self.connection.hello }

    /// Closes the connection. Its sessions stop here (their events end with
    /// `unavailable`) but stay on the server until they expire: close them first to
    /// release their pins and layouts at once.
    public func close() {
        self.connection.close()
    }

    // MARK: - Sessions

    /// Opens a session owned by this client's identity.
    /// - Parameters:
    ///   - ttl: requested TTL (the server clamps it); `nil` for the server default.
    ///   - slots: the session's slots (`nil` for the server default, 64): with two or
    ///     more, one is kept for the answers to recalls, the rest carry concurrent
    ///     mutations.
    ///   - recalls: answers every recall of the session by itself from the start
    ///     (``LeaseholdSession/answerRecalls(layouts:pins:)``); `nil` leaves them to
    ///     ``LeaseholdSession/events``.
    public func openSession(name: String = "", ttl: Duration? = nil, slots: Int? = nil, recalls: RecallResponder? = nil) async throws -> LeaseholdSession {
        let sent = ContinuousClock.now
        let response = try await self.call(.openSession(name: name, ttl: ttl, slots: slots), retry: false)
        guard case .sessionOpened(let grant) = response else { throw LeaseholdSession.unexpected("openSession") }
        let session = LeaseholdSession(grant: grant, connection: self.connection, sentAt: sent)
        if let recalls { session.state.withLock { $0.responder = recalls } }
        session.start()
        return session
    }

    /// Takes over an existing session (after a process restart, with its saved secret).
    /// Sequences restart from the wall clock, above any the previous owner used. With
    /// `recalls`, the recalls replayed at the takeover are answered by it too.
    public func resumeSession(_ id: SessionID, secret: SessionSecret, recalls: RecallResponder? = nil) async throws -> LeaseholdSession {
        let sent = ContinuousClock.now
        let response = try await self.call(.core(.resumeSession(id, secret: secret)), retry: true)
        guard case .sessionResumed(let resumed) = response else { throw LeaseholdSession.unexpected("resumeSession") }
        let base = UInt64(Date().timeIntervalSince1970 * 1_000_000)
        let session = LeaseholdSession(
            grant: SessionGrant(session: id, secret: secret, ttl: resumed.ttl, slots: resumed.slots),
            connection: self.connection,
            sentAt: sent,
            sequenceBase: base
        )
        if let recalls { session.state.withLock { $0.responder = recalls } }
        session.start()
        for push in resumed.replay { session.deliver(push) }
        return session
    }

    // MARK: - Plumbing

    /// Sends a request outside any session.
    /// - Parameter retry: resend after a lost connection (only for requests that may
    ///   run twice: queries); otherwise a lost connection is `unavailable`.
    func call(_ command: WireCommand, retry: Bool) async throws -> Response {
        let response = try await self.raw(command, retry: retry)
        switch try Reply(wire: response) {
        case .success(let result): return result
        case .failure(let error): throw error
        }
    }

    func raw(_ command: WireCommand, retry: Bool) async throws -> WireResponse {
        let request = try WireRequestBody(command: command).wire()
        while true {
            do {
                let response = try await self.connection.send(request)
                if case .error(let error)? = response.result { throw LeaseholdError(wire: error) }
                return response
            } catch let lost as ConnectionLost {
                // `notLeader`: it did not run; send it to the leader.
                if retry || lost.notRun { continue }
                throw LeaseholdError(
                    code: .unavailable,
                    message: "the connection was lost before the reply to \(command.name); it may or may not have been applied"
                )
            }
        }
    }
}

/// `status`: the volume's figures and the server's uptime.
public struct ServerStatus: Sendable, Hashable {
    /// A position in a cluster's log.
    public struct LogPosition: Sendable, Hashable, Codable, CustomStringConvertible {
        public var term: UInt64
        public var index: UInt64
        public var description: String { "\(self.term):\(self.index)" }
    }

    /// Free, mapped, busy and quarantined blocks, counts of everything, revisions.
    public var volume: VolumeStatus
    /// Time since the server started.
    public var uptime: Duration
    /// Cluster mode, on a standby: the log position of the state it answered from (a
    /// standby applies the log and never decides; the leader may be further). `nil` on a
    /// leader and on a single node.
    public var reflects: LogPosition?
}

/// A session as `sessions` lists it, with whether a connection has it attached now.
public struct SessionListing: Sendable, Hashable {
    public var info: SessionInfo
    /// Whether a connection has the session attached (a disconnected session still
    /// holds its pins until it expires).
    public var connected: Bool
}
