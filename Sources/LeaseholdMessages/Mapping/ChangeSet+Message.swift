import Foundation
import LeaseholdCore

// MARK: - Change sets as messages
//
// `Protos/leasehold/journal/v1/journal.proto`: a change set is a list of rows, each an
// upsert (value set) or a deletion (no value) of one key of one table. Decoding checks
// what the Core's types cannot hold (an unspecified enum, a missing target, a secret of
// the wrong length) and throws a `LeaseholdError` naming the row, so a damaged entry is
// refused instead of misread.

/// The format number this version writes and the highest it reads: 2 since the event
/// history is durable (event rows), 1 before.
public enum JournalFormat {
    public static let current: UInt32 = 2
}

extension ChangeSet {
    /// The change set as a message.
    public var message: Leasehold_Journal_V1_ChangeSet {
        var message = Leasehold_Journal_V1_ChangeSet()
        message.rows.reserveCapacity(self.rows.count)
        for row in self.rows { message.rows.append(row.message) }
        return message
    }

    /// The change set a message holds.
    /// - Throws: `invalidArgument` naming the first row that cannot be read.
    public init(message: Leasehold_Journal_V1_ChangeSet) throws(LeaseholdError) {
        var rows: [Row] = []
        rows.reserveCapacity(message.rows.count)
        for (index, row) in message.rows.enumerated() {
            rows.append(try Row(message: row, field: "rows[\(index)]"))
        }
        self.init(rows: rows)
    }
}

extension ChangeSet.Row {
    var message: Leasehold_Journal_V1_Row {
        var row = Leasehold_Journal_V1_Row()
        switch self {
        case .volume(let volume):
            var message = Leasehold_Journal_V1_Volume()
            message.blockSize = volume.geometry.blockSize
            message.blockCount = volume.geometry.blockCount
            message.pinSetting = volume.pinSetting.wire
            message.epoch = volume.epoch
            row.volume = message
        case .counters(let counters):
            var message = Leasehold_Journal_V1_Counters()
            message.lastInode = counters.lastInode
            message.lastSession = counters.lastSession
            message.lastPin = counters.lastPin
            message.lastLayout = counters.lastLayout
            message.lastRecall = counters.lastRecall
            message.lastToken = counters.lastToken
            message.lastFence = counters.lastFence
            message.lastEvent = counters.lastEvent
            row.counters = message
        case .inode(let id, let record):
            var message = Leasehold_Journal_V1_InodeRow()
            message.id = id.rawValue
            if let record {
                var value = Leasehold_Journal_V1_Inode()
                value.generation = record.generation
                value.size = record.size
                if case .quarantine(let source) = record.kind { value.quarantine = source.wire }
                message.value = value
            }
            row.inode = message
        case .extent(let key, let extent):
            var message = Leasehold_Journal_V1_ExtentRow()
            message.inode = key.inode.rawValue
            message.fileBlock = key.fileBlock
            if let extent { message.value = extent.wire }
            row.extent = message
        case .freeExtent(let start, let count):
            var message = Leasehold_Journal_V1_FreeExtentRow()
            message.start = start
            if let count { message.count = count }
            row.freeExtent = message
        case .busy(let start, let record):
            var message = Leasehold_Journal_V1_BusyRow()
            message.start = start
            if let record {
                var value = Leasehold_Journal_V1_Busy()
                value.count = record.count
                value.quarantine = record.quarantine.wire
                message.value = value
            }
            row.busy = message
        case .session(let id, let record):
            var message = Leasehold_Journal_V1_SessionRow()
            message.id = id.rawValue
            if let record {
                var value = Leasehold_Journal_V1_Session()
                value.identity = record.identity
                value.name = record.name
                value.secretDigest = Data(record.secretDigest.bytes)
                value.ttlNanos = record.ttl.wireNanos
                value.slotCount = UInt32(clamping: record.slotCount)
                value.lastPush = record.lastPush
                message.value = value
            }
            row.session = message
        case .slot(let key, let record):
            var message = Leasehold_Journal_V1_SlotRow()
            message.session = key.session.rawValue
            message.slot = key.slot
            if let record {
                var value = Leasehold_Journal_V1_Slot()
                value.sequence = record.sequence
                value.reply = record.reply.wire
                message.value = value
            }
            row.slot = message
        case .pin(let id, let record):
            var message = Leasehold_Journal_V1_PinRow()
            message.id = id.rawValue
            if let record {
                var value = Leasehold_Journal_V1_PinRecord()
                value.session = record.session.rawValue
                value.inode = record.inode.rawValue
                value.ranges = record.ranges.map(\.wire)
                value.kind = record.kind.wireKind
                if let ttl = record.kind.wireTTL { value.ttlNanos = ttl }
                value.token = record.token.rawValue
                value.extents = record.extents.map(\.wire)
                value.busyBlocks = record.busyBlocks
                message.value = value
            }
            row.pin = message
        case .layout(let id, let record):
            var message = Leasehold_Journal_V1_LayoutRow()
            message.id = id.rawValue
            if let record {
                var value = Leasehold_Journal_V1_Layout()
                value.session = record.session.rawValue
                value.inode = record.inode.rawValue
                value.iomode = record.iomode.wire
                value.seqid = record.seqid
                value.token = record.token.rawValue
                value.grants = record.grants.map { grant in
                    var message = Leasehold_Journal_V1_LayoutGrant()
                    message.range = grant.range.wire
                    message.seqid = grant.seqid
                    return message
                }
                message.value = value
            }
            row.layout = message
        case .recall(let id, let record):
            var message = Leasehold_Journal_V1_RecallRow()
            message.id = id.rawValue
            if let record {
                var value = Leasehold_Journal_V1_Recall()
                value.session = record.session.rawValue
                value.inode = record.inode.rawValue
                switch record.target {
                case .layout(let layout, let range):
                    var target = Leasehold_Journal_V1_LayoutRecallTarget()
                    target.layout = layout.rawValue
                    target.range = range.wire
                    value.layout = target
                case .pin(let pin):
                    value.pin = pin.rawValue
                }
                value.prolonged = record.prolonged
                message.value = value
            }
            row.recall = message
        case .fence(let revision, let fence):
            var message = Leasehold_Journal_V1_FenceRow()
            message.revision = revision.rawValue
            if let fence { message.value = fence.wire }
            row.fence = message
        case .target(let name, let target):
            var message = Leasehold_Journal_V1_TargetRow()
            message.name = name
            if let target { message.value = target.wire }
            row.target = message
        case .event(let event):
            row.event = event.wire
        case .eventsDropped(let before):
            var message = Leasehold_Journal_V1_EventsDroppedRow()
            message.before = before.rawValue
            row.eventsDropped = message
        }
        return row
    }

    init(message row: Leasehold_Journal_V1_Row, field: String) throws(LeaseholdError) {
        switch row.table {
        case .volume(let message):
            let geometry: VolumeGeometry
            do {
                geometry = try VolumeGeometry(blockSize: message.blockSize, blockCount: message.blockCount)
            } catch {
                throw .badField("\(field).volume", error.description)
            }
            self = .volume(VolumeRecord(geometry: geometry, pinSetting: try PinSetting(wire: message.pinSetting), epoch: message.epoch))
        case .counters(let message):
            var counters = Counters()
            counters.lastInode = message.lastInode
            counters.lastSession = message.lastSession
            counters.lastPin = message.lastPin
            counters.lastLayout = message.lastLayout
            counters.lastRecall = message.lastRecall
            counters.lastToken = message.lastToken
            counters.lastFence = message.lastFence
            counters.lastEvent = message.lastEvent
            self = .counters(counters)
        case .inode(let message):
            let id = InodeID(rawValue: message.id)
            guard message.hasValue else {
                self = .inode(id, nil)
                return
            }
            let value = message.value
            let kind: InodeKind = value.hasQuarantine ? .quarantine(QuarantineSource(wire: value.quarantine)) : .regular
            self = .inode(id, InodeRecord(id: id, generation: value.generation, size: value.size, kind: kind))
        case .extent(let message):
            let key = ExtentKey(inode: InodeID(rawValue: message.inode), fileBlock: message.fileBlock)
            self = .extent(key, message.hasValue ? MappedExtent(wire: message.value) : nil)
        case .freeExtent(let message):
            self = .freeExtent(message.start, count: message.hasCount ? message.count : nil)
        case .busy(let message):
            let record = message.hasValue ? BusyRecord(count: message.value.count, quarantine: optionalID(message.value.quarantine)) : nil
            self = .busy(message.start, record)
        case .session(let message):
            let id = SessionID(rawValue: message.id)
            guard message.hasValue else {
                self = .session(id, nil)
                return
            }
            let value = message.value
            let record = SessionRecord(
                id: id,
                identity: value.identity,
                name: value.name,
                secretDigest: try SessionSecretDigest(journal: value),
                ttl: Duration(wireNanos: value.ttlNanos),
                slotCount: Int(value.slotCount),
                lastPush: value.lastPush
            )
            self = .session(id, record)
        case .slot(let message):
            let key = SlotKey(session: SessionID(rawValue: message.session), slot: message.slot)
            guard message.hasValue else {
                self = .slot(key, nil)
                return
            }
            self = .slot(key, SlotRecord(sequence: message.value.sequence, reply: try Reply(wire: message.value.reply)))
        case .pin(let message):
            let id = PinID(rawValue: message.id)
            guard message.hasValue else {
                self = .pin(id, nil)
                return
            }
            let value = message.value
            let kind = try PinKind(wire: value.kind, ttl: value.kind == .shortTerm ? value.ttlNanos : nil, field: "\(field).pin.kind")
            let record = PinRecord(
                id: id,
                session: SessionID(rawValue: value.session),
                inode: InodeID(rawValue: value.inode),
                ranges: TinyArray(value.ranges.map(ByteRange.init(wire:))),
                kind: kind,
                token: FencingToken(rawValue: value.token),
                extents: TinyArray(value.extents.map(PinnedExtent.init(wire:))),
                busyBlocks: value.busyBlocks
            )
            self = .pin(id, record)
        case .layout(let message):
            let id = LayoutID(rawValue: message.id)
            guard message.hasValue else {
                self = .layout(id, nil)
                return
            }
            let value = message.value
            var grants: [LayoutGrant] = []
            grants.reserveCapacity(value.grants.count)
            for grant in value.grants {
                grants.append(LayoutGrant(range: try BlockRange(wire: grant.range, field: "\(field).layout.grants"), seqid: grant.seqid))
            }
            let record = LayoutRecord(
                id: id,
                session: SessionID(rawValue: value.session),
                inode: InodeID(rawValue: value.inode),
                iomode: try IOMode(wire: value.iomode),
                seqid: value.seqid,
                token: FencingToken(rawValue: value.token),
                grants: grants
            )
            self = .layout(id, record)
        case .recall(let message):
            let id = RecallID(rawValue: message.id)
            guard message.hasValue else {
                self = .recall(id, nil)
                return
            }
            let value = message.value
            let target: RecallTarget
            switch value.target {
            case .layout(let layout):
                target = .layout(LayoutID(rawValue: layout.layout), range: try BlockRange(wire: layout.range, field: "\(field).recall.layout"))
            case .pin(let pin):
                target = .pin(PinID(rawValue: pin))
            case nil:
                throw .badField("\(field).recall", "a recall names a layout range or a pin")
            }
            let record = RecallRecord(
                id: id,
                session: SessionID(rawValue: value.session),
                inode: InodeID(rawValue: value.inode),
                target: target,
                prolonged: value.prolonged
            )
            self = .recall(id, record)
        case .fence(let message):
            let revision = FenceRevision(rawValue: message.revision)
            self = .fence(revision, message.hasValue ? try Fence(wire: message.value) : nil)
        case .target(let message):
            self = .target(message.name, message.hasValue ? StorageTarget(wire: message.value) : nil)
        case .event(let message):
            guard message.revision > 0 else { throw .badField("\(field).event", "an event has a revision above 0") }
            self = .event(try Event(wire: message))
        case .eventsDropped(let message):
            self = .eventsDropped(before: EventRevision(rawValue: message.before))
        case nil:
            throw .badField(field, "a row names no table (written by a newer format?)")
        }
    }
}

extension SessionSecretDigest {
    /// The digest a session row holds: `secret_digest`, or for a row written before
    /// secrets were kept as digests, the digest of its `legacy_secret`.
    init(journal value: Leasehold_Journal_V1_Session) throws(LeaseholdError) {
        if !value.secretDigest.isEmpty {
            guard let digest = SessionSecretDigest(bytes: value.secretDigest) else {
                throw .badField("secret_digest", "must be 32 bytes, not \(value.secretDigest.count)")
            }
            self = digest
        } else {
            self.init(of: try SessionSecret(wire: value.legacySecret))
        }
    }
}

extension QuarantineSource {
    var wire: Leasehold_V1_QuarantineSource {
        var wire = Leasehold_V1_QuarantineSource()
        wire.inode = self.inode.rawValue
        wire.generation = self.generation
        wire.fileOffset = self.fileOffset
        wire.keep = self.keep
        return wire
    }

    init(wire: Leasehold_V1_QuarantineSource) {
        self.init(inode: InodeID(rawValue: wire.inode), generation: wire.generation, fileOffset: wire.fileOffset, keep: wire.keep)
    }
}
