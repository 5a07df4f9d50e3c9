import Foundation
import GRDB
import LeaseholdJournal
import LeaseholdCore
import LeaseholdMessages

/// Writes change-set rows with cached statements: one `INSERT OR REPLACE` per upsert,
/// one `DELETE` per removed key.
struct RowWriter {
    let db: Database
    init(db: Database) {
        self.db = db
    }

    /// The rows of consecutive change sets, in order, except that the event history is
    /// cut once: every step that filled the history drops its oldest events, so a batch
    /// of steps would run a `DELETE` each and insert events a later step of the same batch
    /// drops again. Only the last cut counts; events below it are not written, and one
    /// `DELETE` at the end removes the older ones. The result is the same rows.
    mutating func write(batch changeSets: [ChangeSet]) throws {
        var cut: EventRevision?
        for changes in changeSets {
            for case .eventsDropped(let before) in changes.rows { cut = Swift.max(cut ?? before, before) }
        }
        for changes in changeSets {
            for row in changes.rows {
                switch row {
                case .eventsDropped:
                    continue
                case .event(let event) where cut.map({ event.revision < $0 }) ?? false:
                    continue
                default:
                    try self.write(row)
                }
            }
        }
        if let cut { try self.write(.eventsDropped(before: cut)) }
    }

    mutating func write(_ row: ChangeSet.Row) throws {
        switch row {
        case .volume(let volume):
            try self.run(
                "INSERT OR REPLACE INTO volume (id, blockSize, blockCount, pinSetting, epoch) VALUES (1, ?, ?, ?, ?)",
                [volume.geometry.blockSize.stored, volume.geometry.blockCount.stored, volume.pinSetting.rawValue, volume.epoch.stored]
            )
        case .counters(let c):
            try self.run(
                """
                INSERT INTO counters
                (id, lastInode, lastSession, lastPin, lastLayout, lastRecall, lastToken, lastFence, lastEvent)
                VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET
                lastInode = excluded.lastInode, lastSession = excluded.lastSession, lastPin = excluded.lastPin,
                lastLayout = excluded.lastLayout, lastRecall = excluded.lastRecall, lastToken = excluded.lastToken,
                lastFence = excluded.lastFence, lastEvent = excluded.lastEvent
                """,
                [
                    c.lastInode.stored, c.lastSession.stored, c.lastPin.stored, c.lastLayout.stored, c.lastRecall.stored,
                    c.lastToken.stored, c.lastFence.stored, c.lastEvent.stored,
                ]
            )
        case .inode(let id, let record?):
            var source: QuarantineSource?
            if case .quarantine(let quarantine) = record.kind { source = quarantine }
            try self.run(
                """
                INSERT OR REPLACE INTO inode (id, generation, size, kind, sourceInode, sourceGeneration, sourceOffset, keepBlocks)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    id.rawValue.stored, record.generation.stored, record.size.stored, source == nil ? "regular" : "quarantine",
                    source?.inode.rawValue.stored, source?.generation.stored, source?.fileOffset.stored, source?.keep,
                ]
            )
        case .inode(let id, nil):
            try self.run("DELETE FROM inode WHERE id = ?", [id.rawValue.stored])
        case .extent(let key, let extent?):
            try self.run(
                "INSERT OR REPLACE INTO extent (inode, fileBlock, physicalBlock, blockCount, written) VALUES (?, ?, ?, ?, ?)",
                [key.inode.rawValue.stored, key.fileBlock.stored, extent.physicalBlock.stored, extent.count.stored, extent.written]
            )
        case .extent(let key, nil):
            try self.run("DELETE FROM extent WHERE inode = ? AND fileBlock = ?", [key.inode.rawValue.stored, key.fileBlock.stored])
        case .freeExtent(let start, let count?):
            try self.run("INSERT OR REPLACE INTO freeExtent (start, blockCount) VALUES (?, ?)", [start.stored, count.stored])
        case .freeExtent(let start, nil):
            try self.run("DELETE FROM freeExtent WHERE start = ?", [start.stored])
        case .busy(let start, let record?):
            try self.run(
                "INSERT OR REPLACE INTO busyRun (start, blockCount, quarantineInode) VALUES (?, ?, ?)",
                [start.stored, record.count.stored, record.quarantine?.rawValue.stored]
            )
        case .busy(let start, nil):
            try self.run("DELETE FROM busyRun WHERE start = ?", [start.stored])
        case .session(let id, let record?):
            try self.run(
                """
                INSERT OR REPLACE INTO session (id, identity, name, secretDigest, ttlNanoseconds, slotCount, lastPush)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    id.rawValue.stored, record.identity, record.name, record.secretDigest.description, record.ttl.storedNanoseconds,
                    record.slotCount, record.lastPush.stored,
                ]
            )
        case .session(let id, nil):
            try self.run("DELETE FROM session WHERE id = ?", [id.rawValue.stored])
        case .slot(let key, let record?):
            let reply: Data = try record.reply.wire.serializedBytes()
            try self.run(
                "INSERT OR REPLACE INTO slot (session, slot, sequence, reply) VALUES (?, ?, ?, ?)",
                [key.session.rawValue.stored, Int64(key.slot), record.sequence.stored, reply]
            )
        case .slot(let key, nil):
            try self.run("DELETE FROM slot WHERE session = ? AND slot = ?", [key.session.rawValue.stored, Int64(key.slot)])
        case .pin(let id, let record?):
            var ttl: Int64?
            if case .shortTerm(let duration) = record.kind { ttl = duration.storedNanoseconds }
            try self.run(
                """
                INSERT OR REPLACE INTO pin (id, session, inode, ranges, kind, ttlNanoseconds, token, extents, busyBlocks)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    id.rawValue.stored, record.session.rawValue.stored, record.inode.rawValue.stored, ListText.ranges(record.ranges),
                    ttl == nil ? "longTerm" : "shortTerm", ttl, record.token.rawValue.stored, ListText.extents(record.extents),
                    record.busyBlocks.stored,
                ]
            )
        case .pin(let id, nil):
            try self.run("DELETE FROM pin WHERE id = ?", [id.rawValue.stored])
        case .layout(let id, let record?):
            try self.run(
                "INSERT OR REPLACE INTO layout (id, session, inode, iomode, seqid, token, grants) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    id.rawValue.stored, record.session.rawValue.stored, record.inode.rawValue.stored, record.iomode.rawValue,
                    Int64(record.seqid), record.token.rawValue.stored, ListText.grants(record.grants),
                ]
            )
        case .layout(let id, nil):
            try self.run("DELETE FROM layout WHERE id = ?", [id.rawValue.stored])
        case .recall(let id, let record?):
            var layout: Int64?
            var range: BlockRange?
            var pin: Int64?
            switch record.target {
            case .layout(let layoutID, let recalled):
                layout = layoutID.rawValue.stored
                range = recalled
            case .pin(let pinID):
                pin = pinID.rawValue.stored
            }
            try self.run(
                """
                INSERT OR REPLACE INTO recall (id, session, inode, kind, layout, rangeStart, rangeEnd, pin, prolonged)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    id.rawValue.stored, record.session.rawValue.stored, record.inode.rawValue.stored, pin == nil ? "layout" : "pin",
                    layout, range?.start.stored, range?.end.stored, pin, record.prolonged,
                ]
            )
        case .recall(let id, nil):
            try self.run("DELETE FROM recall WHERE id = ?", [id.rawValue.stored])
        case .fence(let revision, let fence?):
            try self.run(
                "INSERT OR REPLACE INTO fence (revision, session, identity, maxToken, reason, blocks) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    revision.rawValue.stored, fence.session.rawValue.stored, fence.identity, fence.maxToken.rawValue.stored,
                    fence.reason.rawValue, ListText.blocks(fence.blocks),
                ]
            )
        case .fence(let revision, nil):
            try self.run("DELETE FROM fence WHERE revision = ?", [revision.rawValue.stored])
        case .target(let name, let target?):
            try self.run("INSERT OR REPLACE INTO target (name, acknowledged) VALUES (?, ?)", [name, target.acknowledged.rawValue.stored])
        case .target(let name, nil):
            try self.run("DELETE FROM target WHERE name = ?", [name])
        case .event(let event):
            let body: Data = try event.wire.serializedBytes()
            try self.run("INSERT OR REPLACE INTO event (revision, body) VALUES (?, ?)", [event.revision.rawValue.stored, body])
        case .eventsDropped(let before):
            try self.run("DELETE FROM event WHERE revision < ?", [before.rawValue.stored])
        }
    }

    /// The journal position of the batch being written, in the counters row (which is
    /// created with every counter at 0 if no batch wrote it yet).
    func write(_ position: LogPosition) throws {
        try self.run(
            """
            INSERT INTO counters (id, lastInode, lastSession, lastPin, lastLayout, lastRecall, lastToken, lastFence, lastEvent, term, logIndex)
            VALUES (1, 0, 0, 0, 0, 0, 0, 0, 0, ?, ?)
            ON CONFLICT (id) DO UPDATE SET term = excluded.term, logIndex = excluded.logIndex
            """,
            [position.term.stored, position.index.stored]
        )
    }

    private func run(_ sql: String, _ arguments: StatementArguments) throws {
        try self.db.cachedStatement(sql: sql).execute(arguments: arguments)
    }
}

