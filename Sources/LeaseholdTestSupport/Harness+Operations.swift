import LeaseholdCore

/// Typed shortcuts for the operations tests use most. Each throws the reply's error, so
/// tests read `try h.pin(...)` and `#expect(throws:)`.
extension Harness {
    /// Byte range of `count` blocks from block `block`.
    public func blocks(_ block: UInt64, _ count: UInt64) -> ByteRange {
        ByteRange(offset: block * self.blockSize, length: count * self.blockSize)
    }

    public static let admin = Caller(identity: "admin", isAdmin: true)

    public mutating func openSession(
        _ identity: String = "client",
        ttl: Duration? = nil,
        slots: Int? = nil,
        admin: Bool = false,
        target: Bool = false
    ) -> SessionID {
        let caller = Caller(identity: identity, isAdmin: admin, isTarget: target)
        let secret = SessionSecret(high: UInt64(self.steps), low: 0x5EC2E7)
        let response = try! self.call(.openSession(name: identity, ttl: ttl, slots: slots, secret: secret), as: caller)
        guard case .sessionOpened(let grant) = response else { preconditionFailure("unexpected \(response)") }
        return grant.session
    }

    public mutating func createInode(in session: SessionID) -> InodeID {
        guard case .inodeCreated(let id) = try! self.call(.createInode, in: session) else { preconditionFailure() }
        return id
    }

    @discardableResult
    public mutating func allocate(in session: SessionID, _ inode: InodeID, _ range: ByteRange) throws(LeaseholdError) -> Allocation {
        let response = try self.call(.allocate(inode, range, waitForBusy: nil, expectedGeneration: nil), in: session)
        guard case .allocated(let allocation) = response else { preconditionFailure("unexpected \(response)") }
        return allocation
    }

    /// Creates an inode and allocates `blocks` blocks to it.
    public mutating func file(in session: SessionID, blocks: UInt64) -> InodeID {
        let inode = self.createInode(in: session)
        try! self.allocate(in: session, inode, self.blocks(0, blocks))
        return inode
    }

    @discardableResult
    public mutating func pin(
        in session: SessionID,
        _ inode: InodeID,
        _ ranges: [ByteRange],
        kind: PinKind = .shortTerm(ttl: .seconds(20)),
        allocate: Bool = false
    ) throws(LeaseholdError) -> PinGrant {
        let response = try self.call(.pin(PinRequest(inode: inode, ranges: ranges, kind: kind, allocate: allocate)), in: session)
        guard case .pinned(let grant) = response else { preconditionFailure("unexpected \(response)") }
        return grant
    }

    public mutating func unpin(in session: SessionID, _ pin: PinID) throws(LeaseholdError) {
        _ = try self.call(.unpin(pin), in: session)
    }

    @discardableResult
    public mutating func truncate(
        in session: SessionID,
        _ inode: InodeID,
        size: UInt64,
        policy: TruncatePolicy = .busy
    ) throws(LeaseholdError) -> MappingChange {
        let response = try self.call(.truncate(inode, size: size, policy: policy, expectedGeneration: nil), in: session)
        guard case .mappingChanged(let change) = response else { preconditionFailure("unexpected \(response)") }
        return change
    }

    @discardableResult
    public mutating func punch(
        in session: SessionID,
        _ inode: InodeID,
        _ range: ByteRange,
        policy: TruncatePolicy = .busy
    ) throws(LeaseholdError) -> MappingChange {
        let response = try self.call(.punchHole(inode, range, policy: policy, expectedGeneration: nil), in: session)
        guard case .mappingChanged(let change) = response else { preconditionFailure("unexpected \(response)") }
        return change
    }

    @discardableResult
    public mutating func layoutGet(
        in session: SessionID,
        _ inode: InodeID,
        _ ranges: [ByteRange],
        iomode: IOMode = .readWrite
    ) throws(LeaseholdError) -> LayoutGrantReply {
        let response = try self.call(.layoutGet(inode, ranges: ranges, iomode: iomode), in: session)
        guard case .layout(let grant) = response else { preconditionFailure("unexpected \(response)") }
        return grant
    }

    @discardableResult
    public mutating func layoutReturn(in session: SessionID, _ stateID: LayoutStateID, _ ranges: [ByteRange]? = nil) throws(LeaseholdError) -> LayoutReturned {
        let response = try self.call(.layoutReturn(stateID, ranges: ranges), in: session)
        guard case .layoutReturned(let returned) = response else { preconditionFailure("unexpected \(response)") }
        return returned
    }

    /// Sends an admin command as the `admin` identity.
    @discardableResult
    public mutating func admin(_ command: Command) throws(LeaseholdError) -> Response {
        try self.call(command, as: Self.admin)
    }

    public mutating func status() -> VolumeStatus {
        guard case .status(let status) = try! self.admin(.status) else { preconditionFailure() }
        return status
    }

    public mutating func busyExtents() -> [BusyExtentInfo] {
        guard case .busyExtents(let extents) = try! self.admin(.listBusyExtents(Page())) else { preconditionFailure() }
        return extents
    }

    /// Physical blocks of the free space.
    public var freeBlocks: UInt64 { self.coordinator.persistentState().freeExtents.values.reduce(0, +) }

    /// Whether any physical block of `ranges` is free.
    public func anyFree(_ ranges: [BlockRange]) -> Bool {
        let free = self.coordinator.persistentState().freeExtents
        return ranges.contains { range in
            free.contains { BlockRange(start: $0.key, count: $0.value).overlaps(range) }
        }
    }

    /// Recall pushes a session received.
    public func recalls(of session: SessionID) -> [PushBody] {
        self.pushes(of: session).map(\.body).filter {
            switch $0 {
            case .layoutRecall, .pinRecall: true
            default: false
            }
        }
    }
}
