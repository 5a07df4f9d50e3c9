import Foundation
import LeaseholdCore

// MARK: - Replies: Core -> message (server side, and the slot cache)

extension Reply {
    /// The response message of this reply.
    public var wire: Leasehold_V1_Response {
        switch self {
        case .failure(let error):
            var response = Leasehold_V1_Response()
            response.error = error.wire
            return response
        case .success(let response):
            return response.wire
        }
    }

    /// Decodes a response message that carries a Core reply.
    /// - Throws: `protocolError` when the message holds no result this version knows or
    ///   one that is not a Core reply (a handshake or snapshot result).
    public init(wire: Leasehold_V1_Response) throws(LeaseholdError) {
        guard let result = wire.result else { throw .protocolError("the response carries no result this client knows") }
        if case .error(let error) = result {
            self = .failure(LeaseholdError(wire: error))
            return
        }
        self = .success(try Response(wire: result))
    }
}

extension Response {
    var wire: Leasehold_V1_Response {
        var response = Leasehold_V1_Response()
        switch self {
        case .sessionOpened(let grant):
            var opened = Leasehold_V1_SessionOpened()
            opened.session = grant.session.rawValue
            opened.secret = Data(grant.secret.wire)
            opened.ttlNanos = grant.ttl.wireNanos
            opened.slots = UInt32(clamping: grant.slots)
            response.sessionOpened = opened
        case .keptAlive(let ttl):
            response.keptAlive.ttlNanos = ttl.wireNanos
        case .sessionResumed(let resumed):
            var wire = Leasehold_V1_SessionResumed()
            wire.session = resumed.session.rawValue
            wire.ttlNanos = resumed.ttl.wireNanos
            wire.slots = UInt32(clamping: resumed.slots)
            wire.replay = resumed.replay.map { $0.wire(session: resumed.session) }
            response.sessionResumed = wire
        case .sessionClosed(let closed):
            response.sessionClosed.unpinned = closed.unpinned.map(\.rawValue)
            response.sessionClosed.returnedLayouts = closed.returnedLayouts.map(\.rawValue)
        case .pushesAcknowledged(let upTo):
            response.pushesAcknowledged.upTo = upTo
        case .waitsCancelled(let count):
            response.waitsCancelled.count = UInt32(clamping: count)
        case .inodeCreated(let inode):
            response.inodeCreated.inode = inode.rawValue
        case .mappingChanged(let change):
            response.mappingChange = change.wire
        case .allocated(let allocation):
            response.allocation = allocation.wire
        case .markedWritten(let generation, let blocks):
            response.markedWritten.generation = generation
            response.markedWritten.blocks = blocks
        case .pinned(let grant):
            var wire = Leasehold_V1_PinGrant()
            wire.pin = grant.pin.rawValue
            wire.token = grant.token.rawValue
            wire.extents = grant.extents.map(\.wire)
            if let expiresIn = grant.expiresIn { wire.expiresInNanos = expiresIn.wireNanos }
            if let allocation = grant.allocation { wire.allocation = allocation.wire }
            response.pinGrant = wire
        case .unpinned(let pin):
            response.unpinned.pin = pin.rawValue
        case .layout(let grant):
            var wire = Leasehold_V1_LayoutGrant()
            wire.stateID = grant.stateID.wire
            wire.iomode = grant.iomode.wire
            wire.token = grant.token.rawValue
            wire.ranges = grant.ranges.map(\.wire)
            wire.extents = grant.extents.map(\.wire)
            response.layoutGrant = wire
        case .layoutReturned(let returned):
            response.layoutReturned.stateID = returned.stateID.wire
            response.layoutReturned.remaining = returned.remaining.map(\.wire)
            response.layoutReturned.returnedBlocks = returned.returnedBlocks
        case .layoutCommitted(let generation, let size):
            response.layoutCommitted.generation = generation
            response.layoutCommitted.size = size
        case .recallProlonged(let recall, let remaining):
            response.recallProlonged.recall = recall.rawValue
            response.recallProlonged.remainingNanos = remaining.wireNanos
        case .targetRegistered(let target):
            response.targetRegistered.target = target.wire
        case .fenceAcknowledged(let target):
            response.fenceAcknowledged.target = target.wire
        case .fences(let fences):
            response.fenceList.fences = fences.map(\.wire)
        case .sessionEvicted(let fence):
            response.sessionEvicted.fence = fence.wire
        case .targetDeregistered(let name):
            response.targetDeregistered.name = name
        case .forceReleased(let blocks):
            response.forceReleased.blocks = blocks
        case .quarantineDeleted(let inode, let blocks):
            response.quarantineDeleted.inode = inode.rawValue
            response.quarantineDeleted.blocks = blocks
        case .pinSettingChanged(let setting):
            response.pinSettingChanged.setting = setting.wire
        case .status(let status):
            response.volumeStatus = status.wire
        case .busyExtents(let extents):
            response.busyExtentList.extents = extents.map(\.wire)
        case .freeExtents(let extents):
            response.freeExtentList.extents = extents.map(\.wire)
        case .pins(let pins):
            response.pinList.pins = pins.map(\.wire)
        case .layouts(let layouts):
            response.layoutList.layouts = layouts.map(\.wire)
        case .sessions(let sessions):
            response.sessionList.sessions = sessions.map(\.wire)
        case .inodes(let inodes):
            response.inodeList.inodes = inodes.map(\.wire)
        case .inode(let detail):
            response.inodeDetail.info = detail.info.wire
            response.inodeDetail.extents = detail.extents.map(\.wire)
            response.inodeDetail.layouts = detail.layouts.map(\.wire)
            response.inodeDetail.pins = detail.pins.map(\.wire)
        case .targets(let targets):
            response.targetList.targets = targets.map { target in
                var wire = Leasehold_V1_TargetInfo()
                wire.name = target.name
                wire.acknowledged = target.acknowledged.rawValue
                wire.lag = target.lag
                return wire
            }
        case .invariants(let violations):
            response.invariantReport.violations = violations.map { violation in
                var wire = Leasehold_V1_InvariantViolation()
                wire.invariant = UInt32(clamping: violation.invariant)
                wire.message = violation.message
                return wire
            }
        case .events(let events, let more):
            response.eventList.events = events.map(\.wire)
            response.eventList.more = more
        }
        return response
    }

    init(wire result: Leasehold_V1_Response.OneOf_Result) throws(LeaseholdError) {
        switch result {
        case .error:
            preconditionFailure("errors are decoded by Reply(wire:)")
        case .helloOk, .fenceSubscription, .snapshotCreated, .snapshotChunk, .clusterStatus:
            throw .protocolError("the response is not the reply of a core command")
        case .sessionOpened(let opened):
            self = .sessionOpened(
                SessionGrant(
                    session: SessionID(rawValue: opened.session),
                    secret: try SessionSecret(wire: opened.secret),
                    ttl: Duration(wireNanos: opened.ttlNanos),
                    slots: Int(opened.slots)
                )
            )
        case .keptAlive(let kept):
            self = .keptAlive(ttl: Duration(wireNanos: kept.ttlNanos))
        case .sessionResumed(let resumed):
            var replay: [Push] = []
            for push in resumed.replay { replay.append(try Push(wire: push)) }
            self = .sessionResumed(
                SessionResumed(
                    session: SessionID(rawValue: resumed.session),
                    ttl: Duration(wireNanos: resumed.ttlNanos),
                    slots: Int(resumed.slots),
                    replay: replay
                )
            )
        case .sessionClosed(let closed):
            self = .sessionClosed(
                SessionClosed(unpinned: closed.unpinned.map(PinID.init(rawValue:)), returnedLayouts: closed.returnedLayouts.map(LayoutID.init(rawValue:)))
            )
        case .pushesAcknowledged(let ack):
            self = .pushesAcknowledged(upTo: ack.upTo)
        case .waitsCancelled(let cancelled):
            self = .waitsCancelled(count: Int(cancelled.count))
        case .inodeCreated(let created):
            self = .inodeCreated(InodeID(rawValue: created.inode))
        case .mappingChange(let change):
            self = .mappingChanged(MappingChange(wire: change))
        case .allocation(let allocation):
            self = .allocated(Allocation(wire: allocation))
        case .markedWritten(let marked):
            self = .markedWritten(generation: marked.generation, blocks: marked.blocks)
        case .pinGrant(let grant):
            self = .pinned(
                PinGrant(
                    pin: PinID(rawValue: grant.pin),
                    token: FencingToken(rawValue: grant.token),
                    extents: TinyArray(grant.extents.map(PinnedExtent.init(wire:))),
                    expiresIn: grant.hasExpiresInNanos ? Duration(wireNanos: grant.expiresInNanos) : nil,
                    allocation: grant.hasAllocation ? Allocation(wire: grant.allocation) : nil
                )
            )
        case .unpinned(let unpinned):
            self = .unpinned(PinID(rawValue: unpinned.pin))
        case .layoutGrant(let grant):
            var ranges: [BlockRange] = []
            for range in grant.ranges { ranges.append(try BlockRange(wire: range, field: "layoutGrant.ranges")) }
            var extents: [LayoutExtent] = []
            for extent in grant.extents { extents.append(try LayoutExtent(wire: extent)) }
            self = .layout(
                LayoutGrantReply(
                    stateID: LayoutStateID(wire: grant.stateID),
                    iomode: try IOMode(wire: grant.iomode),
                    token: FencingToken(rawValue: grant.token),
                    ranges: ranges,
                    extents: extents
                )
            )
        case .layoutReturned(let returned):
            var remaining: [BlockRange] = []
            for range in returned.remaining { remaining.append(try BlockRange(wire: range, field: "layoutReturned.remaining")) }
            self = .layoutReturned(
                LayoutReturned(stateID: LayoutStateID(wire: returned.stateID), remaining: remaining, returnedBlocks: returned.returnedBlocks)
            )
        case .layoutCommitted(let committed):
            self = .layoutCommitted(generation: committed.generation, size: committed.size)
        case .recallProlonged(let prolonged):
            self = .recallProlonged(RecallID(rawValue: prolonged.recall), remaining: Duration(wireNanos: prolonged.remainingNanos))
        case .fenceAcknowledged(let ack):
            self = .fenceAcknowledged(StorageTarget(wire: ack.target))
        case .targetRegistered(let registered):
            self = .targetRegistered(StorageTarget(wire: registered.target))
        case .fenceList(let list):
            var fences: [Fence] = []
            for fence in list.fences { fences.append(try Fence(wire: fence)) }
            self = .fences(fences)
        case .sessionEvicted(let evicted):
            self = .sessionEvicted(try Fence(wire: evicted.fence))
        case .targetDeregistered(let deregistered):
            self = .targetDeregistered(name: deregistered.name)
        case .forceReleased(let released):
            self = .forceReleased(blocks: released.blocks)
        case .quarantineDeleted(let deleted):
            self = .quarantineDeleted(InodeID(rawValue: deleted.inode), blocks: deleted.blocks)
        case .pinSettingChanged(let changed):
            self = .pinSettingChanged(try PinSetting(wire: changed.setting))
        case .volumeStatus(let status):
            self = .status(try VolumeStatus(wire: status))
        case .busyExtentList(let list):
            var extents: [BusyExtentInfo] = []
            for extent in list.extents { extents.append(try BusyExtentInfo(wire: extent)) }
            self = .busyExtents(extents)
        case .freeExtentList(let list):
            var extents: [BlockRange] = []
            for (index, extent) in list.extents.enumerated() { extents.append(try BlockRange(wire: extent, field: "freeExtentList.extents[\(index)]")) }
            self = .freeExtents(extents)
        case .pinList(let list):
            var pins: [PinInfo] = []
            for pin in list.pins { pins.append(try PinInfo(wire: pin)) }
            self = .pins(pins)
        case .layoutList(let list):
            var layouts: [LayoutInfo] = []
            for layout in list.layouts { layouts.append(try LayoutInfo(wire: layout)) }
            self = .layouts(layouts)
        case .sessionList(let list):
            self = .sessions(list.sessions.map(SessionInfo.init(wire:)))
        case .inodeList(let list):
            self = .inodes(list.inodes.map(InodeInfo.init(wire:)))
        case .inodeDetail(let detail):
            var layouts: [LayoutInfo] = []
            for layout in detail.layouts { layouts.append(try LayoutInfo(wire: layout)) }
            var pins: [PinInfo] = []
            for pin in detail.pins { pins.append(try PinInfo(wire: pin)) }
            self = .inode(
                InodeDetail(info: InodeInfo(wire: detail.info), extents: detail.extents.map(MappedExtent.init(wire:)), layouts: layouts, pins: pins)
            )
        case .targetList(let list):
            self = .targets(
                list.targets.map { TargetInfo(name: $0.name, acknowledged: FenceRevision(rawValue: $0.acknowledged), lag: $0.lag) }
            )
        case .invariantReport(let report):
            self = .invariants(report.violations.map { InvariantViolation(invariant: Int($0.invariant), message: $0.message) })
        case .eventList(let list):
            var events: [Event] = []
            for event in list.events { events.append(try Event(wire: event)) }
            self = .events(events, more: list.more)
        }
    }
}

// MARK: - Result bodies

extension MappingChange {
    var wire: Leasehold_V1_MappingChange {
        var wire = Leasehold_V1_MappingChange()
        wire.inode = self.inode.rawValue
        wire.size = self.size
        wire.generation = self.generation
        wire.freedBlocks = self.freedBlocks
        wire.busyBlocks = self.busyBlocks
        wire.quarantinedBlocks = self.quarantinedBlocks
        wire.quarantineInode = self.quarantineInode.wire
        wire.returnedLayouts = self.returnedLayouts.map(\.rawValue)
        wire.revokedLayouts = self.revokedLayouts.map(\.rawValue)
        wire.evictedSessions = self.evictedSessions.map(\.rawValue)
        wire.recalledPins = self.recalledPins.map(\.rawValue)
        wire.deleted = self.deleted
        return wire
    }

    init(wire: Leasehold_V1_MappingChange) {
        self.init(
            inode: InodeID(rawValue: wire.inode),
            size: wire.size,
            generation: wire.generation,
            freedBlocks: wire.freedBlocks,
            busyBlocks: wire.busyBlocks,
            quarantinedBlocks: wire.quarantinedBlocks,
            quarantineInode: optionalID(wire.quarantineInode),
            returnedLayouts: wire.returnedLayouts.map(LayoutID.init(rawValue:)),
            revokedLayouts: wire.revokedLayouts.map(LayoutID.init(rawValue:)),
            evictedSessions: wire.evictedSessions.map(SessionID.init(rawValue:)),
            recalledPins: wire.recalledPins.map(PinID.init(rawValue:)),
            deleted: wire.deleted
        )
    }
}

extension Allocation {
    var wire: Leasehold_V1_Allocation {
        var wire = Leasehold_V1_Allocation()
        wire.inode = self.inode.rawValue
        wire.size = self.size
        wire.generation = self.generation
        wire.extents = self.extents.map(\.wire)
        wire.returnedLayouts = self.returnedLayouts.map(\.rawValue)
        wire.revokedLayouts = self.revokedLayouts.map(\.rawValue)
        wire.evictedSessions = self.evictedSessions.map(\.rawValue)
        return wire
    }

    init(wire: Leasehold_V1_Allocation) {
        self.init(
            inode: InodeID(rawValue: wire.inode),
            size: wire.size,
            generation: wire.generation,
            extents: wire.extents.map(MappedExtent.init(wire:)),
            returnedLayouts: wire.returnedLayouts.map(LayoutID.init(rawValue:)),
            revokedLayouts: wire.revokedLayouts.map(LayoutID.init(rawValue:)),
            evictedSessions: wire.evictedSessions.map(SessionID.init(rawValue:))
        )
    }
}

extension LayoutExtent {
    var wire: Leasehold_V1_LayoutExtent {
        var wire = Leasehold_V1_LayoutExtent()
        wire.fileRange = self.fileRange.wire
        if let physical = self.physicalBlock { wire.physicalBlock = physical }
        switch self.state {
        case .written: wire.state = .written
        case .unwritten: wire.state = .unwritten
        case .hole: wire.state = .hole
        }
        return wire
    }

    init(wire: Leasehold_V1_LayoutExtent) throws(LeaseholdError) {
        let state: State
        switch wire.state {
        case .written: state = .written
        case .unwritten: state = .unwritten
        case .hole: state = .hole
        case .unspecified, .UNRECOGNIZED: throw .badField("layoutExtent.state", "unknown state")
        }
        self.init(
            fileRange: try BlockRange(wire: wire.fileRange, field: "layoutExtent.fileRange"),
            physicalBlock: wire.hasPhysicalBlock ? wire.physicalBlock : nil,
            state: state
        )
    }
}
