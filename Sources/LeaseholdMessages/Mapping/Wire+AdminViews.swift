import LeaseholdCore

// MARK: - Admin views

extension VolumeStatus {
    var wire: Leasehold_V1_VolumeStatus {
        var wire = Leasehold_V1_VolumeStatus()
        wire.epoch = self.epoch
        wire.blockSize = self.blockSize
        wire.blockCount = self.blockCount
        wire.freeBlocks = self.freeBlocks
        wire.mappedBlocks = self.mappedBlocks
        wire.busyBlocks = self.busyBlocks
        wire.quarantinedBlocks = self.quarantinedBlocks
        wire.largestFreeExtent = self.largestFreeExtent
        wire.freeExtents = UInt64(self.freeExtents)
        wire.inodes = UInt64(self.inodes)
        wire.quarantineInodes = UInt64(self.quarantineInodes)
        wire.sessions = UInt64(self.sessions)
        wire.pins = UInt64(self.pins)
        wire.layouts = UInt64(self.layouts)
        wire.outstandingRecalls = UInt64(self.outstandingRecalls)
        wire.pendingBreaks = UInt64(self.pendingBreaks)
        wire.targets = UInt64(self.targets)
        wire.unresolvedFences = UInt64(self.unresolvedFences)
        wire.fenceRevision = self.fenceRevision.rawValue
        wire.eventRevision = self.eventRevision.rawValue
        wire.pinSetting = self.pinSetting.wire
        return wire
    }

    init(wire: Leasehold_V1_VolumeStatus) throws(LeaseholdError) {
        self.init(
            epoch: wire.epoch,
            blockSize: wire.blockSize,
            blockCount: wire.blockCount,
            freeBlocks: wire.freeBlocks,
            mappedBlocks: wire.mappedBlocks,
            busyBlocks: wire.busyBlocks,
            quarantinedBlocks: wire.quarantinedBlocks,
            largestFreeExtent: wire.largestFreeExtent,
            freeExtents: Int(clamping: wire.freeExtents),
            inodes: Int(clamping: wire.inodes),
            quarantineInodes: Int(clamping: wire.quarantineInodes),
            sessions: Int(clamping: wire.sessions),
            pins: Int(clamping: wire.pins),
            layouts: Int(clamping: wire.layouts),
            outstandingRecalls: Int(clamping: wire.outstandingRecalls),
            pendingBreaks: Int(clamping: wire.pendingBreaks),
            targets: Int(clamping: wire.targets),
            unresolvedFences: Int(clamping: wire.unresolvedFences),
            fenceRevision: FenceRevision(rawValue: wire.fenceRevision),
            eventRevision: EventRevision(rawValue: wire.eventRevision),
            pinSetting: try PinSetting(wire: wire.pinSetting)
        )
    }
}

extension BusyExtentInfo {
    var wire: Leasehold_V1_BusyExtent {
        var wire = Leasehold_V1_BusyExtent()
        wire.range = self.range.wire
        wire.quarantine = self.quarantine.wire
        wire.pins = self.pins.map { holder in
            var pin = Leasehold_V1_BusyExtent.PinHolder()
            pin.pin = holder.pin.rawValue
            pin.session = holder.session.rawValue
            pin.identity = holder.identity
            pin.kind = holder.kind.wireKind
            if let ttl = holder.kind.wireTTL { pin.ttlNanos = ttl }
            return pin
        }
        wire.fences = self.fences.map { holder in
            var fence = Leasehold_V1_BusyExtent.FenceHolder()
            fence.revision = holder.revision.rawValue
            fence.session = holder.session.rawValue
            fence.identity = holder.identity
            fence.waitingForTargets = holder.waitingForTargets
            if let releaseIn = holder.releaseIn { fence.releaseInNanos = releaseIn.wireNanos }
            return fence
        }
        wire.ageNanos = self.age.wireNanos
        if let releaseIn = self.releaseIn { wire.releaseInNanos = releaseIn.wireNanos }
        return wire
    }

    init(wire: Leasehold_V1_BusyExtent) throws(LeaseholdError) {
        var pins: [PinHolder] = []
        for pin in wire.pins {
            pins.append(
                PinHolder(
                    pin: PinID(rawValue: pin.pin),
                    session: SessionID(rawValue: pin.session),
                    identity: pin.identity,
                    kind: try PinKind(wire: pin.kind, ttl: pin.hasTtlNanos ? pin.ttlNanos : nil, field: "busyExtent.pins.kind")
                )
            )
        }
        self.init(
            range: try BlockRange(wire: wire.range, field: "busyExtent.range"),
            quarantine: optionalID(wire.quarantine),
            pins: pins,
            fences: wire.fences.map { fence in
                FenceHolder(
                    revision: FenceRevision(rawValue: fence.revision),
                    session: SessionID(rawValue: fence.session),
                    identity: fence.identity,
                    waitingForTargets: fence.waitingForTargets,
                    releaseIn: fence.hasReleaseInNanos ? Duration(wireNanos: fence.releaseInNanos) : nil
                )
            },
            age: Duration(wireNanos: wire.ageNanos),
            releaseIn: wire.hasReleaseInNanos ? Duration(wireNanos: wire.releaseInNanos) : nil
        )
    }
}

extension PinInfo {
    var wire: Leasehold_V1_PinInfo {
        var wire = Leasehold_V1_PinInfo()
        wire.pin = self.pin.rawValue
        wire.session = self.session.rawValue
        wire.identity = self.identity
        wire.inode = self.inode.rawValue
        wire.ranges = self.ranges.map(\.wire)
        wire.kind = self.kind.wireKind
        if let ttl = self.kind.wireTTL { wire.ttlNanos = ttl }
        wire.token = self.token.rawValue
        wire.blocks = self.blocks
        wire.busyBlocks = self.busyBlocks
        if let expiresIn = self.expiresIn { wire.expiresInNanos = expiresIn.wireNanos }
        wire.recall = self.recall?.rawValue ?? 0
        wire.extents = self.extents.map(\.wire)
        return wire
    }

    init(wire: Leasehold_V1_PinInfo) throws(LeaseholdError) {
        self.init(
            pin: PinID(rawValue: wire.pin),
            session: SessionID(rawValue: wire.session),
            identity: wire.identity,
            inode: InodeID(rawValue: wire.inode),
            ranges: wire.ranges.map(ByteRange.init(wire:)),
            kind: try PinKind(wire: wire.kind, ttl: wire.hasTtlNanos ? wire.ttlNanos : nil, field: "pinInfo.kind"),
            token: FencingToken(rawValue: wire.token),
            blocks: wire.blocks,
            busyBlocks: wire.busyBlocks,
            expiresIn: wire.hasExpiresInNanos ? Duration(wireNanos: wire.expiresInNanos) : nil,
            recall: optionalID(wire.recall),
            extents: wire.extents.map(PinnedExtent.init(wire:))
        )
    }
}

extension LayoutInfo {
    var wire: Leasehold_V1_LayoutInfo {
        var wire = Leasehold_V1_LayoutInfo()
        wire.stateID = self.stateID.wire
        wire.session = self.session.rawValue
        wire.identity = self.identity
        wire.inode = self.inode.rawValue
        wire.iomode = self.iomode.wire
        wire.ranges = self.ranges.map(\.wire)
        wire.token = self.token.rawValue
        if case .recalling(let deadlineIn, let prolonged) = self.state {
            wire.recalling = true
            wire.recallDeadlineInNanos = deadlineIn.wireNanos
            wire.prolonged = prolonged
        }
        return wire
    }

    init(wire: Leasehold_V1_LayoutInfo) throws(LeaseholdError) {
        var ranges: [BlockRange] = []
        for range in wire.ranges { ranges.append(try BlockRange(wire: range, field: "layoutInfo.ranges")) }
        self.init(
            stateID: LayoutStateID(wire: wire.stateID),
            session: SessionID(rawValue: wire.session),
            identity: wire.identity,
            inode: InodeID(rawValue: wire.inode),
            iomode: try IOMode(wire: wire.iomode),
            ranges: ranges,
            token: FencingToken(rawValue: wire.token),
            state: wire.recalling
                ? .recalling(deadlineIn: Duration(wireNanos: wire.recallDeadlineInNanos), prolonged: wire.prolonged) : .granted
        )
    }
}

extension SessionInfo {
    var wire: Leasehold_V1_SessionInfo {
        var wire = Leasehold_V1_SessionInfo()
        wire.session = self.session.rawValue
        wire.identity = self.identity
        wire.name = self.name
        wire.ttlNanos = self.ttl.wireNanos
        wire.expiresInNanos = self.expiresIn.wireNanos
        wire.pins = UInt64(self.pins)
        wire.layouts = UInt64(self.layouts)
        wire.unacknowledgedPushes = UInt64(self.unacknowledgedPushes)
        wire.lastPush = self.lastPush
        return wire
    }

    init(wire: Leasehold_V1_SessionInfo) {
        self.init(
            session: SessionID(rawValue: wire.session),
            identity: wire.identity,
            name: wire.name,
            ttl: Duration(wireNanos: wire.ttlNanos),
            expiresIn: Duration(wireNanos: wire.expiresInNanos),
            pins: Int(clamping: wire.pins),
            layouts: Int(clamping: wire.layouts),
            unacknowledgedPushes: Int(clamping: wire.unacknowledgedPushes),
            lastPush: wire.lastPush
        )
    }
}

extension InodeInfo {
    var wire: Leasehold_V1_InodeInfo {
        var wire = Leasehold_V1_InodeInfo()
        wire.inode = self.inode.rawValue
        wire.generation = self.generation
        wire.size = self.size
        if case .quarantine(let source) = self.kind {
            wire.quarantine.inode = source.inode.rawValue
            wire.quarantine.generation = source.generation
            wire.quarantine.fileOffset = source.fileOffset
            wire.quarantine.keep = source.keep
        }
        wire.mappedBlocks = self.mappedBlocks
        wire.extents = UInt64(self.extents)
        wire.pendingBreaks = UInt64(self.pendingBreaks)
        return wire
    }

    init(wire: Leasehold_V1_InodeInfo) {
        let kind: InodeKind
        if wire.hasQuarantine {
            let source = wire.quarantine
            kind = .quarantine(
                QuarantineSource(inode: InodeID(rawValue: source.inode), generation: source.generation, fileOffset: source.fileOffset, keep: source.keep)
            )
        } else {
            kind = .regular
        }
        self.init(
            inode: InodeID(rawValue: wire.inode),
            generation: wire.generation,
            size: wire.size,
            kind: kind,
            mappedBlocks: wire.mappedBlocks,
            extents: Int(clamping: wire.extents),
            pendingBreaks: Int(clamping: wire.pendingBreaks)
        )
    }
}
