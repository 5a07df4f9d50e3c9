import Foundation
import GRDB
import LeaseholdJournal
import LeaseholdCore
import LeaseholdMessages

/// Reads every table into a ``PersistentState`` (recovery). A row that cannot be decoded
/// is a `StoreError.malformedRow` naming it; nothing is repaired silently.
enum RowReader {
    /// The journal position the database reflects.
    static func position(_ db: Database) throws -> LogPosition {
        guard let row = try Row.fetchOne(db, sql: "SELECT term, logIndex FROM counters WHERE id = 1") else { return .zero }
        return LogPosition(term: UInt64(stored: row[0]), index: UInt64(stored: row[1]))
    }

    /// The big tables are sized up front: growing a dictionary of a million rows rehashes
    /// it twenty times.
    static func rows(_ db: Database, _ table: String) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? 0
    }

    /// Every table but `pin` (recovery reads the pins on another connection meanwhile).
    static func loadAllButPins(_ db: Database) throws -> PersistentState {
        var state = PersistentState()
        func rows(_ table: String) throws -> Int { try Self.rows(db, table) }
        state.slots.reserveCapacity(try rows("slot"))
        state.sessions.reserveCapacity(try rows("session"))
        state.extents.reserveCapacity(try rows("extent"))
        if let row = try Row.fetchOne(db, sql: "SELECT blockSize, blockCount, pinSetting, epoch FROM volume WHERE id = 1") {
            let geometry: VolumeGeometry
            do {
                geometry = try VolumeGeometry(blockSize: UInt64(stored: row[0]), blockCount: UInt64(stored: row[1]))
            } catch {
                throw StoreError.malformedRow(table: "volume", key: "1", problem: error.description)
            }
            guard let setting = PinSetting(rawValue: row[2]) else {
                throw StoreError.malformedRow(table: "volume", key: "1", problem: "unknown pin setting")
            }
            state.volume = VolumeRecord(geometry: geometry, pinSetting: setting, epoch: UInt64(stored: row[3]))
        }
        if let row = try Row.fetchOne(
            db,
            sql: "SELECT lastInode, lastSession, lastPin, lastLayout, lastRecall, lastToken, lastFence, lastEvent FROM counters WHERE id = 1"
        ) {
            var counters = Counters()
            counters.lastInode = UInt64(stored: row[0])
            counters.lastSession = UInt64(stored: row[1])
            counters.lastPin = UInt64(stored: row[2])
            counters.lastLayout = UInt64(stored: row[3])
            counters.lastRecall = UInt64(stored: row[4])
            counters.lastToken = UInt64(stored: row[5])
            counters.lastFence = UInt64(stored: row[6])
            counters.lastEvent = UInt64(stored: row[7])
            state.counters = counters
        }

        let inodes = try Row.fetchCursor(
            db,
            sql: "SELECT id, generation, size, kind, sourceInode, sourceGeneration, sourceOffset, keepBlocks FROM inode"
        )
        while let row = try inodes.next() {
            let id = InodeID(rawValue: UInt64(stored: row[0]))
            var kind = InodeKind.regular
            if (row[3] as String) == "quarantine" {
                guard let source: Int64 = row[4], let generation: Int64 = row[5], let offset: Int64 = row[6], let keep: Bool = row[7] else {
                    throw StoreError.malformedRow(table: "inode", key: "\(id)", problem: "quarantine source missing")
                }
                kind = .quarantine(
                    QuarantineSource(
                        inode: InodeID(rawValue: UInt64(stored: source)),
                        generation: UInt64(stored: generation),
                        fileOffset: UInt64(stored: offset),
                        keep: keep
                    )
                )
            }
            state.inodes[id] = InodeRecord(id: id, generation: UInt64(stored: row[1]), size: UInt64(stored: row[2]), kind: kind)
        }

        let extents = try Row.fetchCursor(db, sql: "SELECT inode, fileBlock, physicalBlock, blockCount, written FROM extent")
        while let row = try extents.next() {
            let key = ExtentKey(inode: InodeID(rawValue: UInt64(stored: row[0])), fileBlock: UInt64(stored: row[1]))
            state.extents[key] = MappedExtent(
                fileBlock: key.fileBlock,
                physicalBlock: UInt64(stored: row[2]),
                count: UInt64(stored: row[3]),
                written: row[4]
            )
        }

        let free = try Row.fetchCursor(db, sql: "SELECT start, blockCount FROM freeExtent")
        while let row = try free.next() { state.freeExtents[UInt64(stored: row[0])] = UInt64(stored: row[1]) }

        let busy = try Row.fetchCursor(db, sql: "SELECT start, blockCount, quarantineInode FROM busyRun")
        while let row = try busy.next() {
            let quarantine: Int64? = row[2]
            state.busy[UInt64(stored: row[0])] = BusyRecord(
                count: UInt64(stored: row[1]),
                quarantine: quarantine.map { InodeID(rawValue: UInt64(stored: $0)) }
            )
        }

        let sessions = try Row.fetchCursor(db, sql: "SELECT id, identity, name, secretDigest, ttlNanoseconds, slotCount, lastPush FROM session")
        while let row = try sessions.next() {
            let id = SessionID(rawValue: UInt64(stored: row[0]))
            guard let digest = SessionSecretDigest(hex: row[3]) else {
                throw StoreError.malformedRow(table: "session", key: "\(id)", problem: "secretDigest is not 64 hex digits")
            }
            state.sessions[id] = SessionRecord(
                id: id,
                identity: row[1],
                name: row[2],
                secretDigest: digest,
                ttl: .nanoseconds(row[4] as Int64),
                slotCount: row[5],
                lastPush: UInt64(stored: row[6])
            )
        }

        let slots = try Row.fetchCursor(db, sql: "SELECT session, slot, sequence, reply FROM slot")
        while let row = try slots.next() {
            let key = SlotKey(session: SessionID(rawValue: UInt64(stored: row[0])), slot: UInt32(row[1] as Int64))
            let reply: Reply
            do {
                let bytes: Data = row[3]
                reply = try Reply(wire: try WireResponse(serializedBytes: bytes))
            } catch {
                throw StoreError.malformedRow(table: "slot", key: "\(key.session)/\(key.slot)", problem: "reply does not decode: \(error)")
            }
            state.slots[key] = SlotRecord(sequence: UInt64(stored: row[2]), reply: reply)
        }

        let layouts = try Row.fetchCursor(db, sql: "SELECT id, session, inode, iomode, seqid, token, grants FROM layout")
        while let row = try layouts.next() {
            let id = LayoutID(rawValue: UInt64(stored: row[0]))
            guard let iomode = IOMode(rawValue: row[3]), let seqid = UInt32(exactly: row[4] as Int64) else {
                throw StoreError.malformedRow(table: "layout", key: "\(id)", problem: "iomode or seqid")
            }
            do {
                state.layouts[id] = LayoutRecord(
                    id: id,
                    session: SessionID(rawValue: UInt64(stored: row[1])),
                    inode: InodeID(rawValue: UInt64(stored: row[2])),
                    iomode: iomode,
                    seqid: seqid,
                    token: FencingToken(rawValue: UInt64(stored: row[5])),
                    grants: try ListText.grants(row[6])
                )
            } catch {
                throw StoreError.malformedRow(table: "layout", key: "\(id)", problem: "\(error)")
            }
        }

        let recalls = try Row.fetchCursor(db, sql: "SELECT id, session, inode, kind, layout, rangeStart, rangeEnd, pin, prolonged FROM recall")
        while let row = try recalls.next() {
            let id = RecallID(rawValue: UInt64(stored: row[0]))
            let target: RecallTarget
            switch (row[3] as String, row[4] as Int64?, row[5] as Int64?, row[6] as Int64?, row[7] as Int64?) {
            case ("layout", let layout?, let start?, let end?, _) where UInt64(stored: start) <= UInt64(stored: end):
                target = .layout(LayoutID(rawValue: UInt64(stored: layout)), range: BlockRange(start: UInt64(stored: start), end: UInt64(stored: end)))
            case ("pin", _, _, _, let pin?):
                target = .pin(PinID(rawValue: UInt64(stored: pin)))
            default:
                throw StoreError.malformedRow(table: "recall", key: "\(id)", problem: "target columns disagree with kind")
            }
            state.recalls[id] = RecallRecord(
                id: id,
                session: SessionID(rawValue: UInt64(stored: row[1])),
                inode: InodeID(rawValue: UInt64(stored: row[2])),
                target: target,
                prolonged: row[8]
            )
        }

        let fences = try Row.fetchCursor(db, sql: "SELECT revision, session, identity, maxToken, reason, blocks FROM fence")
        while let row = try fences.next() {
            let revision = FenceRevision(rawValue: UInt64(stored: row[0]))
            guard let reason = EvictionReason(rawValue: row[4]) else {
                throw StoreError.malformedRow(table: "fence", key: "\(revision)", problem: "unknown reason")
            }
            do {
                state.fences[revision] = Fence(
                    revision: revision,
                    session: SessionID(rawValue: UInt64(stored: row[1])),
                    identity: row[2],
                    maxToken: FencingToken(rawValue: UInt64(stored: row[3])),
                    reason: reason,
                    blocks: try ListText.blocks(row[5])
                )
            } catch {
                throw StoreError.malformedRow(table: "fence", key: "\(revision)", problem: "\(error)")
            }
        }

        let targets = try Row.fetchCursor(db, sql: "SELECT name, acknowledged FROM target")
        while let row = try targets.next() {
            let name: String = row[0]
            state.targets[name] = StorageTarget(name: name, acknowledged: FenceRevision(rawValue: UInt64(stored: row[1])))
        }

        let events = try Row.fetchCursor(db, sql: "SELECT revision, body FROM event ORDER BY revision")
        while let row = try events.next() {
            let revision = UInt64(stored: row[0])
            let bytes: Data = row[1]
            do {
                let event = try Event(wire: try Leasehold_V1_Event(serializedBytes: bytes))
                guard event.revision.rawValue == revision else {
                    throw StoreError.malformedRow(table: "event", key: "\(revision)", problem: "the body is event \(event.revision)")
                }
                state.events.append(event)
            } catch let error as StoreError {
                throw error
            } catch {
                throw StoreError.malformedRow(table: "event", key: "\(revision)", problem: "body does not decode: \(error)")
            }
        }
        return state
    }

    /// The `pin` table.
    static func loadPins(_ db: Database) throws -> [PinID: PinRecord] {
        var pins: [PinID: PinRecord] = [:]
        pins.reserveCapacity(try Self.rows(db, "pin"))
        let cursor = try Row.fetchCursor(db, sql: "SELECT id, session, inode, ranges, kind, ttlNanoseconds, token, extents, busyBlocks FROM pin")
        while let row = try cursor.next() {
            let id = PinID(rawValue: UInt64(stored: row[0]))
            let kind: PinKind
            switch (row[4] as String, row[5] as Int64?) {
            case ("shortTerm", let ttl?): kind = .shortTerm(ttl: .nanoseconds(ttl))
            case ("longTerm", _): kind = .longTerm
            default: throw StoreError.malformedRow(table: "pin", key: "\(id)", problem: "kind and ttl disagree")
            }
            do {
                pins[id] = PinRecord(
                    id: id,
                    session: SessionID(rawValue: UInt64(stored: row[1])),
                    inode: InodeID(rawValue: UInt64(stored: row[2])),
                    ranges: TinyArray(try ListText.ranges(row[3])),
                    kind: kind,
                    token: FencingToken(rawValue: UInt64(stored: row[6])),
                    extents: TinyArray(try ListText.extents(row[7])),
                    busyBlocks: UInt64(stored: row[8])
                )
            } catch {
                throw StoreError.malformedRow(table: "pin", key: "\(id)", problem: "\(error)")
            }
        }

        return pins
    }
}
