import LeaseholdCore

// MARK: - Decoding failures
//
// Every conversion from a message to a Core value validates what the Core's types
// cannot hold (a block range ending before it starts, an unspecified enum, a missing
// field) and throws a `LeaseholdError` instead of trapping: bad input never crashes the
// server. Values the Core validates itself (zero-length ranges, overflow) pass through.

extension LeaseholdError {
    static func badField(_ field: String, _ problem: String) -> LeaseholdError {
        .invalidArgument("\(field): \(problem)")
    }

    /// The peer sent something this version of the protocol cannot read.
    public static func protocolError(_ message: String) -> LeaseholdError {
        LeaseholdError(code: .protocolError, message: message)
    }
}

// MARK: - Durations

extension Duration {
    /// Nanoseconds, clamped to `0...UInt64.max`.
    var wireNanos: UInt64 { self.nanosecondsClamped }

    init(wireNanos: UInt64) {
        self = .nanoseconds(Int64(clamping: wireNanos))
    }
}

// MARK: - Ranges and ids

extension ByteRange {
    var wire: Leasehold_V1_ByteRange {
        var range = Leasehold_V1_ByteRange()
        range.offset = self.offset
        range.length = self.length
        return range
    }

    init(wire: Leasehold_V1_ByteRange) {
        self.init(offset: wire.offset, length: wire.length)
    }
}

extension BlockRange {
    var wire: Leasehold_V1_BlockRange {
        var range = Leasehold_V1_BlockRange()
        range.start = self.start
        range.end = self.end
        return range
    }

    init(wire: Leasehold_V1_BlockRange, field: String) throws(LeaseholdError) {
        guard wire.start <= wire.end else {
            throw .badField(field, "block range end \(wire.end) is below its start \(wire.start)")
        }
        self.init(start: wire.start, end: wire.end)
    }
}

extension LayoutStateID {
    var wire: Leasehold_V1_LayoutStateId {
        var id = Leasehold_V1_LayoutStateId()
        id.id = self.id.rawValue
        id.seqid = self.seqid
        return id
    }

    init(wire: Leasehold_V1_LayoutStateId) {
        self.init(id: LayoutID(rawValue: wire.id), seqid: wire.seqid)
    }
}

extension SessionSecret {
    /// 16 bytes, big-endian `high` then `low`.
    var wire: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: self.high >> UInt64(shift))) }
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: self.low >> UInt64(shift))) }
        return bytes
    }

    init<Bytes: Collection<UInt8>>(wire bytes: Bytes) throws(LeaseholdError) {
        guard bytes.count == 16 else { throw .badField("secret", "must be 16 bytes, not \(bytes.count)") }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (index, byte) in bytes.enumerated() {
            if index < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
        }
        self.init(high: high, low: low)
    }
}

extension Optional where Wrapped == InodeID {
    /// 0 on the wire means "none".
    var wire: UInt64 { self?.rawValue ?? 0 }
}

func optionalID<ID: LeaseholdIdentifier>(_ raw: UInt64) -> ID? {
    raw == 0 ? nil : ID(rawValue: raw)
}

// MARK: - Enums

extension PinKind {
    var wireKind: Leasehold_V1_PinKind {
        switch self {
        case .shortTerm: .shortTerm
        case .longTerm: .longTerm
        }
    }

    var wireTTL: UInt64? {
        if case .shortTerm(let ttl) = self { return ttl.wireNanos }
        return nil
    }

    init(wire kind: Leasehold_V1_PinKind, ttl: UInt64?, field: String) throws(LeaseholdError) {
        switch kind {
        case .shortTerm:
            guard let ttl else { throw .badField(field, "a short-term pin needs ttl_nanos") }
            self = .shortTerm(ttl: Duration(wireNanos: ttl))
        case .longTerm:
            self = .longTerm
        case .unspecified, .UNRECOGNIZED:
            throw .badField(field, "pin kind must be short-term or long-term")
        }
    }
}

extension IOMode {
    var wire: Leasehold_V1_IOMode {
        switch self {
        case .read: .read
        case .readWrite: .readWrite
        }
    }

    init(wire: Leasehold_V1_IOMode) throws(LeaseholdError) {
        switch wire {
        case .read: self = .read
        case .readWrite: self = .readWrite
        case .unspecified, .UNRECOGNIZED: throw .badField("iomode", "must be read or readWrite")
        }
    }
}

extension PinSetting {
    var wire: Leasehold_V1_PinSetting {
        switch self {
        case .allow: .allow
        case .shortTermOnly: .shortTermOnly
        case .deny: .deny
        }
    }

    init(wire: Leasehold_V1_PinSetting) throws(LeaseholdError) {
        switch wire {
        case .allow: self = .allow
        case .shortTermOnly: self = .shortTermOnly
        case .deny: self = .deny
        case .unspecified, .UNRECOGNIZED: throw .badField("setting", "must be allow, shortTermOnly or deny")
        }
    }
}

extension EvictionReason {
    var wire: Leasehold_V1_EvictionReason {
        switch self {
        case .expired: .expired
        case .admin: .admin
        case .missedRecall: .missedRecall
        }
    }

    init(wire: Leasehold_V1_EvictionReason) throws(LeaseholdError) {
        switch wire {
        case .expired: self = .expired
        case .admin: self = .admin
        case .missedRecall: self = .missedRecall
        case .unspecified, .UNRECOGNIZED: throw .badField("reason", "unknown eviction reason")
        }
    }
}

extension TruncatePolicy {
    var wire: Leasehold_V1_TruncatePolicy {
        var policy = Leasehold_V1_TruncatePolicy()
        switch self {
        case .busy: policy.busy = Leasehold_V1_Empty()
        case .wait(let timeout): policy.wait.timeoutNanos = timeout.wireNanos
        case .fail: policy.fail = Leasehold_V1_Empty()
        case .quarantine(let keep): policy.quarantine.keep = keep
        }
        return policy
    }

    /// An unset policy is the default, `busy`.
    init(wire: Leasehold_V1_TruncatePolicy) {
        switch wire.policy {
        case .busy, nil: self = .busy
        case .wait(let wait): self = .wait(timeout: Duration(wireNanos: wait.timeoutNanos))
        case .fail: self = .fail
        case .quarantine(let quarantine): self = .quarantine(keep: quarantine.keep)
        }
    }
}

// MARK: - Extents, fences, targets

extension MappedExtent {
    var wire: Leasehold_V1_MappedExtent {
        var extent = Leasehold_V1_MappedExtent()
        extent.fileBlock = self.fileBlock
        extent.physicalBlock = self.physicalBlock
        extent.count = self.count
        extent.written = self.written
        return extent
    }

    init(wire: Leasehold_V1_MappedExtent) {
        self.init(fileBlock: wire.fileBlock, physicalBlock: wire.physicalBlock, count: wire.count, written: wire.written)
    }
}

extension PinnedExtent {
    var wire: Leasehold_V1_PinnedExtent {
        var extent = Leasehold_V1_PinnedExtent()
        extent.fileBlock = self.fileBlock
        extent.physicalBlock = self.physicalBlock
        extent.count = self.count
        return extent
    }

    init(wire: Leasehold_V1_PinnedExtent) {
        self.init(fileBlock: wire.fileBlock, physicalBlock: wire.physicalBlock, count: wire.count)
    }
}

extension Fence {
    public var wire: Leasehold_V1_Fence {
        var fence = Leasehold_V1_Fence()
        fence.revision = self.revision.rawValue
        fence.session = self.session.rawValue
        fence.identity = self.identity
        fence.maxToken = self.maxToken.rawValue
        fence.reason = self.reason.wire
        fence.blocks = self.blocks.map(\.wire)
        return fence
    }

    public init(wire: Leasehold_V1_Fence) throws(LeaseholdError) {
        var blocks: [BlockRange] = []
        for range in wire.blocks { blocks.append(try BlockRange(wire: range, field: "fence.blocks")) }
        self.init(
            revision: FenceRevision(rawValue: wire.revision),
            session: SessionID(rawValue: wire.session),
            identity: wire.identity,
            maxToken: FencingToken(rawValue: wire.maxToken),
            reason: try EvictionReason(wire: wire.reason),
            blocks: blocks
        )
    }
}

extension StorageTarget {
    public var wire: Leasehold_V1_StorageTarget {
        var target = Leasehold_V1_StorageTarget()
        target.name = self.name
        target.acknowledged = self.acknowledged.rawValue
        return target
    }

    init(wire: Leasehold_V1_StorageTarget) {
        self.init(name: wire.name, acknowledged: FenceRevision(rawValue: wire.acknowledged))
    }
}

// MARK: - Errors

extension LeaseholdError {
    public var wire: Leasehold_V1_Error {
        var error = Leasehold_V1_Error()
        error.code = Leasehold_V1_ErrorCode(rawValue: Int(self.code.rawValue)) ?? .UNRECOGNIZED(Int(self.code.rawValue))
        error.message = self.message
        var details = Leasehold_V1_ErrorDetails()
        if let value = self.details.busyBlocks { details.busyBlocks = value }
        if let value = self.details.freeBlocks { details.freeBlocks = value }
        details.pins = self.details.pins.map(\.rawValue)
        if let value = self.details.firstHoleOffset { details.firstHoleOffset = value }
        if let value = self.details.currentGeneration { details.currentGeneration = value }
        details.revokedLayouts = self.details.revokedLayouts.map(\.rawValue)
        details.evictedSessions = self.details.evictedSessions.map(\.rawValue)
        if let value = self.details.limit { details.limit = value }
        if let value = self.details.fenceRevision { details.fenceRevision = value.rawValue }
        if let value = self.details.leaderEndpoint { details.leaderEndpoint = value }
        if let value = self.details.oldestRevision { details.oldestRevision = value.rawValue }
        if details != Leasehold_V1_ErrorDetails() { error.details = details }
        return error
    }

    /// An error from the wire; an unknown code is kept as its number.
    public init(wire: Leasehold_V1_Error) {
        let details = wire.details
        self.init(
            code: Code(rawValue: UInt32(clamping: wire.code.rawValue)),
            message: wire.message,
            details: Details(
                busyBlocks: details.hasBusyBlocks ? details.busyBlocks : nil,
                freeBlocks: details.hasFreeBlocks ? details.freeBlocks : nil,
                pins: details.pins.map(PinID.init(rawValue:)),
                firstHoleOffset: details.hasFirstHoleOffset ? details.firstHoleOffset : nil,
                currentGeneration: details.hasCurrentGeneration ? details.currentGeneration : nil,
                revokedLayouts: details.revokedLayouts.map(LayoutID.init(rawValue:)),
                evictedSessions: details.evictedSessions.map(SessionID.init(rawValue:)),
                limit: details.hasLimit ? details.limit : nil,
                fenceRevision: details.hasFenceRevision ? FenceRevision(rawValue: details.fenceRevision) : nil,
                leaderEndpoint: details.hasLeaderEndpoint ? details.leaderEndpoint : nil,
                oldestRevision: details.hasOldestRevision ? EventRevision(rawValue: details.oldestRevision) : nil
            )
        )
    }
}
