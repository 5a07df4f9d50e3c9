import LeaseholdCore

/// The server's limits and defaults, as `HelloOk` reports them.
public struct ServerLimits: Hashable, Sendable {
    public var maxFrameBytes: Int
    public var maxInFlightRequests: Int
    public var blockSize: UInt64
    public var blockCount: UInt64
    public var minimumTTL: Duration
    public var defaultTTL: Duration
    public var maximumTTL: Duration
    public var defaultSlots: Int
    public var maximumSlots: Int
    public var maxShortTermPin: Duration
    public var recallTimeout: Duration
    public var releaseDelay: Duration
    public var maxWait: Duration
    public var maxRangesPerRequest: Int
    public var maxPageSize: Int

    /// The limits of a server running `configuration` on `geometry`.
    public init(configuration: CoordinatorConfiguration, geometry: VolumeGeometry, maxFrameBytes: Int, maxInFlightRequests: Int) {
        self.maxFrameBytes = maxFrameBytes
        self.maxInFlightRequests = maxInFlightRequests
        self.blockSize = geometry.blockSize
        self.blockCount = geometry.blockCount
        self.minimumTTL = configuration.minimumTTL
        self.defaultTTL = configuration.defaultTTL
        self.maximumTTL = configuration.maximumTTL
        self.defaultSlots = configuration.defaultSlots
        self.maximumSlots = configuration.maximumSlots
        self.maxShortTermPin = configuration.maxShortTermPin
        self.recallTimeout = configuration.recallTimeout
        self.releaseDelay = configuration.releaseDelay
        self.maxWait = configuration.maxWait
        self.maxRangesPerRequest = configuration.maxRangesPerRequest
        self.maxPageSize = configuration.maxPageSize
    }

    public var wire: Leasehold_V1_Limits {
        var wire = Leasehold_V1_Limits()
        wire.maxFrameBytes = UInt32(clamping: self.maxFrameBytes)
        wire.maxInFlightRequests = UInt32(clamping: self.maxInFlightRequests)
        wire.blockSize = self.blockSize
        wire.blockCount = self.blockCount
        wire.minTtlNanos = self.minimumTTL.wireNanos
        wire.defaultTtlNanos = self.defaultTTL.wireNanos
        wire.maxTtlNanos = self.maximumTTL.wireNanos
        wire.defaultSlots = UInt32(clamping: self.defaultSlots)
        wire.maxSlots = UInt32(clamping: self.maximumSlots)
        wire.maxShortTermPinNanos = self.maxShortTermPin.wireNanos
        wire.recallTimeoutNanos = self.recallTimeout.wireNanos
        wire.releaseDelayNanos = self.releaseDelay.wireNanos
        wire.maxWaitNanos = self.maxWait.wireNanos
        wire.maxRangesPerRequest = UInt32(clamping: self.maxRangesPerRequest)
        wire.maxPageSize = UInt32(clamping: self.maxPageSize)
        return wire
    }

    public init(wire: Leasehold_V1_Limits) {
        self.maxFrameBytes = Int(wire.maxFrameBytes)
        self.maxInFlightRequests = Int(wire.maxInFlightRequests)
        self.blockSize = wire.blockSize
        self.blockCount = wire.blockCount
        self.minimumTTL = Duration(wireNanos: wire.minTtlNanos)
        self.defaultTTL = Duration(wireNanos: wire.defaultTtlNanos)
        self.maximumTTL = Duration(wireNanos: wire.maxTtlNanos)
        self.defaultSlots = Int(wire.defaultSlots)
        self.maximumSlots = Int(wire.maxSlots)
        self.maxShortTermPin = Duration(wireNanos: wire.maxShortTermPinNanos)
        self.recallTimeout = Duration(wireNanos: wire.recallTimeoutNanos)
        self.releaseDelay = Duration(wireNanos: wire.releaseDelayNanos)
        self.maxWait = Duration(wireNanos: wire.maxWaitNanos)
        self.maxRangesPerRequest = Int(wire.maxRangesPerRequest)
        self.maxPageSize = Int(wire.maxPageSize)
    }
}

/// What the server says in `HelloOk`.
/// What a node is in its cluster (`HelloOk.role`).
public enum NodeRole: String, Hashable, Sendable, Codable {
    /// Serving alone, without a cluster.
    case single
    /// The leader of its cluster: it serves everything.
    case leader
    /// A standby: it answers `Hello` and admin reads; everything else is `notLeader`.
    case standby

    public var wire: Leasehold_V1_NodeRole {
        switch self {
        case .single: .single
        case .leader: .leader
        case .standby: .standby
        }
    }

    /// A server too old to say is alone.
    public init(wire: Leasehold_V1_NodeRole) {
        switch wire {
        case .leader: self = .leader
        case .standby: self = .standby
        default: self = .single
        }
    }
}

public struct ServerHello: Hashable, Sendable {
    public var protocolMajor: UInt32
    public var protocolMinor: UInt32
    public var serverVersion: String
    /// Incremented at every server start.
    public var epoch: UInt64
    public var limits: ServerLimits
    /// The caller's identity (certificate common name) and roles.
    public var identity: String
    public var isAdmin: Bool
    public var isTarget: Bool
    /// What the node is in its cluster.
    public var role: NodeRole
    /// A standby: the leader's endpoint, when one leads.
    public var leaderEndpoint: String?
    /// Cluster mode: the term of the leader this node knows; 0 for a single node.
    public var term: UInt64

    public init(
        epoch: UInt64, limits: ServerLimits, identity: String, isAdmin: Bool, isTarget: Bool, role: NodeRole = .single,
        leaderEndpoint: String? = nil, term: UInt64 = 0
    ) {
        self.role = role
        self.leaderEndpoint = leaderEndpoint
        self.term = term
        self.protocolMajor = WireProtocol.major
        self.protocolMinor = WireProtocol.minor
        self.serverVersion = WireProtocol.serverVersion
        self.epoch = epoch
        self.limits = limits
        self.identity = identity
        self.isAdmin = isAdmin
        self.isTarget = isTarget
    }

    public var wire: Leasehold_V1_HelloOk {
        var wire = Leasehold_V1_HelloOk()
        wire.protocolMajor = self.protocolMajor
        wire.protocolMinor = self.protocolMinor
        wire.serverVersion = self.serverVersion
        wire.epoch = self.epoch
        wire.limits = self.limits.wire
        wire.identity = self.identity
        wire.admin = self.isAdmin
        wire.target = self.isTarget
        wire.role = self.role.wire
        wire.leaderEndpoint = self.leaderEndpoint ?? ""
        wire.term = self.term
        return wire
    }

    public init(wire: Leasehold_V1_HelloOk) {
        self.protocolMajor = wire.protocolMajor
        self.protocolMinor = wire.protocolMinor
        self.serverVersion = wire.serverVersion
        self.epoch = wire.epoch
        self.limits = ServerLimits(wire: wire.limits)
        self.identity = wire.identity
        self.isAdmin = wire.admin
        self.isTarget = wire.target
        self.role = NodeRole(wire: wire.role)
        self.leaderEndpoint = wire.leaderEndpoint.isEmpty ? nil : wire.leaderEndpoint
        self.term = wire.term
    }
}
