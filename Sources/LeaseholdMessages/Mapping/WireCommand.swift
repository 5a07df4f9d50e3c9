import LeaseholdCore

/// A request as the wire carries it: a Core command, or one of the commands the server
/// answers itself (the handshake, subscriptions, snapshots) or completes (openSession
/// gets its secret from the server).
public enum WireCommand: Equatable, Sendable {
    /// A Core command, passed to the Coordinator as it is.
    case core(Command)
    case hello(major: UInt32, minor: UInt32, clientName: String)
    /// The server generates the session secret.
    case openSession(name: String, ttl: Duration?, slots: Int?)
    /// registerTarget, readFences, then fence pushes on this connection.
    case subscribeFences(after: FenceRevision)
    /// readEvents, then event pushes on this connection.
    case watchEvents(after: EventRevision)
    case createSnapshot
    case readSnapshot(name: String, offset: UInt64, length: UInt32)
    /// The cluster's nodes and etcd members; every node answers it.
    case clusterStatus

    /// A short name for logs and metrics.
    public var name: String {
        switch self {
        case .core(let command): command.name
        case .hello: "hello"
        case .openSession: "openSession"
        case .subscribeFences: "subscribeFences"
        case .watchEvents: "watchEvents"
        case .createSnapshot: "createSnapshot"
        case .readSnapshot: "readSnapshot"
        case .clusterStatus: "clusterStatus"
        }
    }
}

/// A decoded request: the session it acts in, its exactly-once tag, its command.
public struct WireRequestBody: Equatable, Sendable {
    public var session: SessionID?
    public var tag: SlotTag?
    public var command: WireCommand

    public init(session: SessionID? = nil, tag: SlotTag? = nil, command: WireCommand) {
        self.session = session
        self.tag = tag
        self.command = command
    }
}
