import LeaseholdCore

// MARK: - Session pushes

extension Push {
    /// The push as sent to `session`.
    public func wire(session: SessionID) -> Leasehold_V1_SessionPush {
        var wire = Leasehold_V1_SessionPush()
        wire.session = session.rawValue
        wire.number = self.number
        switch self.body {
        case .layoutRecall(let notice):
            var recall = Leasehold_V1_LayoutRecall()
            recall.recall = notice.recall.rawValue
            recall.stateID = notice.stateID.wire
            recall.inode = notice.inode.rawValue
            recall.range = notice.range.wire
            recall.deadlineInNanos = notice.deadlineIn.wireNanos
            wire.layoutRecall = recall
        case .pinRecall(let notice):
            var recall = Leasehold_V1_PinRecall()
            recall.recall = notice.recall.rawValue
            recall.pin = notice.pin.rawValue
            recall.inode = notice.inode.rawValue
            recall.deadlineInNanos = notice.deadlineIn.wireNanos
            wire.pinRecall = recall
        case .fenced(let notice):
            var fenced = Leasehold_V1_Fenced()
            fenced.revision = notice.revision.rawValue
            fenced.maxToken = notice.maxToken.rawValue
            fenced.reason = notice.reason.wire
            wire.fenced = fenced
        case .sessionExpiring(let remaining):
            wire.sessionExpiring.remainingNanos = remaining.wireNanos
        }
        return wire
    }

    /// Decodes a session push (the session it is for is `wire.session`).
    public init(wire: Leasehold_V1_SessionPush) throws(LeaseholdError) {
        let body: PushBody
        switch wire.body {
        case .layoutRecall(let recall):
            body = .layoutRecall(
                LayoutRecallNotice(
                    recall: RecallID(rawValue: recall.recall),
                    stateID: LayoutStateID(wire: recall.stateID),
                    inode: InodeID(rawValue: recall.inode),
                    range: try BlockRange(wire: recall.range, field: "layoutRecall.range"),
                    deadlineIn: Duration(wireNanos: recall.deadlineInNanos)
                )
            )
        case .pinRecall(let recall):
            body = .pinRecall(
                PinRecallNotice(
                    recall: RecallID(rawValue: recall.recall),
                    pin: PinID(rawValue: recall.pin),
                    inode: InodeID(rawValue: recall.inode),
                    deadlineIn: Duration(wireNanos: recall.deadlineInNanos)
                )
            )
        case .fenced(let fenced):
            body = .fenced(
                FenceNotice(
                    revision: FenceRevision(rawValue: fenced.revision),
                    maxToken: FencingToken(rawValue: fenced.maxToken),
                    reason: try EvictionReason(wire: fenced.reason)
                )
            )
        case .sessionExpiring(let expiring):
            body = .sessionExpiring(remaining: Duration(wireNanos: expiring.remainingNanos))
        case nil:
            throw .protocolError("push \(wire.number) carries no body this client knows")
        }
        self.init(number: wire.number, body: body)
    }
}

// MARK: - Events

extension PinReleaseReason {
    var wire: Leasehold_V1_PinReleasedEvent.Reason {
        switch self {
        case .unpinned: .unpinned
        case .expired: .expired
        case .sessionClosed: .sessionClosed
        case .evicted: .evicted
        }
    }

    init(wire: Leasehold_V1_PinReleasedEvent.Reason) throws(LeaseholdError) {
        switch wire {
        case .unpinned: self = .unpinned
        case .expired: self = .expired
        case .sessionClosed: self = .sessionClosed
        case .evicted: self = .evicted
        case .unspecified, .UNRECOGNIZED: throw .badField("pinReleased.reason", "unknown reason")
        }
    }
}

extension Event {
    public var wire: Leasehold_V1_Event {
        var wire = Leasehold_V1_Event()
        wire.revision = self.revision.rawValue
        switch self.kind {
        case .sessionOpened(let session, let identity):
            wire.sessionOpened.session = session.rawValue
            wire.sessionOpened.identity = identity
        case .sessionClosed(let session):
            wire.sessionClosed.session = session.rawValue
        case .sessionEvicted(let session, let reason, let fence):
            wire.sessionEvicted.session = session.rawValue
            wire.sessionEvicted.reason = reason.wire
            wire.sessionEvicted.fence = fence.rawValue
        case .inodeCreated(let inode):
            wire.inodeCreated.inode = inode.rawValue
        case .inodeDeleted(let inode):
            wire.inodeDeleted.inode = inode.rawValue
        case .allocated(let inode, let generation, let blocks):
            wire.allocated.inode = inode.rawValue
            wire.allocated.generation = generation
            wire.allocated.blocks = blocks
        case .mappingChanged(let inode, let generation, let freed, let busy, let quarantined):
            wire.mappingChanged.inode = inode.rawValue
            wire.mappingChanged.generation = generation
            wire.mappingChanged.freed = freed
            wire.mappingChanged.busy = busy
            wire.mappingChanged.quarantined = quarantined
        case .pinGranted(let pin, let session, let inode, let blocks):
            wire.pinGranted.pin = pin.rawValue
            wire.pinGranted.session = session.rawValue
            wire.pinGranted.inode = inode.rawValue
            wire.pinGranted.blocks = blocks
        case .pinReleased(let pin, let reason):
            wire.pinReleased.pin = pin.rawValue
            wire.pinReleased.reason = reason.wire
        case .layoutGranted(let stateID, let session, let inode):
            wire.layoutGranted.stateID = stateID.wire
            wire.layoutGranted.session = session.rawValue
            wire.layoutGranted.inode = inode.rawValue
        case .layoutReturned(let stateID, let remaining):
            wire.layoutReturned.stateID = stateID.wire
            wire.layoutReturned.remainingBlocks = remaining
        case .layoutRevoked(let layout, let session):
            wire.layoutRevoked.layout = layout.rawValue
            wire.layoutRevoked.session = session.rawValue
        case .recallSent(let recall, let session, let target):
            wire.recallSent.recall = recall.rawValue
            wire.recallSent.session = session.rawValue
            switch target {
            case .layout(let layout, let range):
                wire.recallSent.layout = layout.rawValue
                wire.recallSent.range = range.wire
            case .pin(let pin):
                wire.recallSent.pin = pin.rawValue
            }
        case .recallProlonged(let recall):
            wire.recallProlonged.recall = recall.rawValue
        case .recallAnswered(let recall):
            wire.recallAnswered.recall = recall.rawValue
        case .fenceAppended(let revision, let session):
            wire.fenceAppended.revision = revision.rawValue
            wire.fenceAppended.session = session.rawValue
        case .fenceResolved(let revision):
            wire.fenceResolved.revision = revision.rawValue
        case .fenceAcknowledged(let revision, let target):
            wire.fenceAcknowledged.revision = revision.rawValue
            wire.fenceAcknowledged.target = target
        case .targetRegistered(let name):
            wire.targetRegistered.name = name
        case .targetDeregistered(let name):
            wire.targetDeregistered.name = name
        case .busyReleased(let range):
            wire.busyReleased.range = range.wire
        case .forceReleased(let range, let by):
            wire.forceReleased.range = range.wire
            wire.forceReleased.by = by
        case .quarantineCreated(let inode, let source):
            wire.quarantineCreated.inode = inode.rawValue
            wire.quarantineCreated.source = source.rawValue
        case .quarantineDeleted(let inode):
            wire.quarantineDeleted.inode = inode.rawValue
        case .pinSettingChanged(let setting):
            wire.pinSettingChanged.setting = setting.wire
        }
        return wire
    }

    public init(wire: Leasehold_V1_Event) throws(LeaseholdError) {
        let kind: EventKind
        switch wire.kind {
        case .sessionOpened(let event): kind = .sessionOpened(SessionID(rawValue: event.session), identity: event.identity)
        case .sessionClosed(let event): kind = .sessionClosed(SessionID(rawValue: event.session))
        case .sessionEvicted(let event):
            kind = .sessionEvicted(SessionID(rawValue: event.session), reason: try EvictionReason(wire: event.reason), fence: FenceRevision(rawValue: event.fence))
        case .inodeCreated(let event): kind = .inodeCreated(InodeID(rawValue: event.inode))
        case .inodeDeleted(let event): kind = .inodeDeleted(InodeID(rawValue: event.inode))
        case .allocated(let event): kind = .allocated(InodeID(rawValue: event.inode), generation: event.generation, blocks: event.blocks)
        case .mappingChanged(let event):
            kind = .mappingChanged(
                InodeID(rawValue: event.inode), generation: event.generation, freed: event.freed, busy: event.busy, quarantined: event.quarantined
            )
        case .pinGranted(let event):
            kind = .pinGranted(PinID(rawValue: event.pin), session: SessionID(rawValue: event.session), inode: InodeID(rawValue: event.inode), blocks: event.blocks)
        case .pinReleased(let event): kind = .pinReleased(PinID(rawValue: event.pin), reason: try PinReleaseReason(wire: event.reason))
        case .layoutGranted(let event):
            kind = .layoutGranted(LayoutStateID(wire: event.stateID), session: SessionID(rawValue: event.session), inode: InodeID(rawValue: event.inode))
        case .layoutReturned(let event): kind = .layoutReturned(LayoutStateID(wire: event.stateID), remainingBlocks: event.remainingBlocks)
        case .layoutRevoked(let event): kind = .layoutRevoked(LayoutID(rawValue: event.layout), session: SessionID(rawValue: event.session))
        case .recallSent(let event):
            let target: RecallTarget =
                event.pin != 0
                ? .pin(PinID(rawValue: event.pin))
                : .layout(LayoutID(rawValue: event.layout), range: try BlockRange(wire: event.range, field: "recallSent.range"))
            kind = .recallSent(RecallID(rawValue: event.recall), session: SessionID(rawValue: event.session), target: target)
        case .recallProlonged(let event): kind = .recallProlonged(RecallID(rawValue: event.recall))
        case .recallAnswered(let event): kind = .recallAnswered(RecallID(rawValue: event.recall))
        case .fenceAppended(let event): kind = .fenceAppended(FenceRevision(rawValue: event.revision), session: SessionID(rawValue: event.session))
        case .fenceResolved(let event): kind = .fenceResolved(FenceRevision(rawValue: event.revision))
        case .fenceAcknowledged(let event): kind = .fenceAcknowledged(FenceRevision(rawValue: event.revision), target: event.target)
        case .targetRegistered(let event): kind = .targetRegistered(event.name)
        case .targetDeregistered(let event): kind = .targetDeregistered(event.name)
        case .busyReleased(let event): kind = .busyReleased(try BlockRange(wire: event.range, field: "busyReleased.range"))
        case .forceReleased(let event): kind = .forceReleased(try BlockRange(wire: event.range, field: "forceReleased.range"), by: event.by)
        case .quarantineCreated(let event): kind = .quarantineCreated(InodeID(rawValue: event.inode), source: InodeID(rawValue: event.source))
        case .quarantineDeleted(let event): kind = .quarantineDeleted(InodeID(rawValue: event.inode))
        case .pinSettingChanged(let event): kind = .pinSettingChanged(try PinSetting(wire: event.setting))
        case nil: throw .protocolError("event \(wire.revision) is of a kind this client does not know")
        }
        self.init(revision: EventRevision(rawValue: wire.revision), kind: kind)
    }
}
