import GRDB
import LeaseholdCore

/// The database schema, one migration per version. Shipped migrations are never edited;
/// a change is a new migration.
///
/// Every table is named after the Core entity it stores, with plain columns so that
/// `sqlite3 leasehold.db .schema` reads as documentation. Lists (pin ranges and extents,
/// layout grants, fence blocks) are short texts: `offset+length;…` byte ranges,
/// `fileBlock@physicalBlock+count;…` extents, `start+count@seqid;…` grants and
/// `start+count;…` block ranges. A slot's stored reply is a protobuf `leasehold.v1.Response`
/// message (Protos/leasehold/v1/leasehold.proto), as on the wire. Unsigned 64-bit values
/// above 2^63 - 1 are stored as their two's-complement bit pattern.
enum StoreSchema {
    /// Every table of the coordinator state.
    static let tables = ["volume", "counters", "inode", "extent", "freeExtent", "busyRun", "session", "slot", "pin", "layout", "recall", "fence", "target", "event"]

    /// The migration that replaces session secrets by their digests.
    static let secretDigests = "v3: session secrets kept as digests"

    /// The migration that makes the event history durable.
    static let eventHistory = "v4: the event history"

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: coordinator state") { db in
            try db.execute(
                sql: """
                    -- The one volume this server owns, and the epoch of its current start.
                    CREATE TABLE volume (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        blockSize INTEGER NOT NULL,
                        blockCount INTEGER NOT NULL,
                        pinSetting TEXT NOT NULL CHECK (pinSetting IN ('allow', 'shortTermOnly', 'deny')),
                        epoch INTEGER NOT NULL
                    );
                    -- The last value handed out of every counter; none ever goes backwards.
                    CREATE TABLE counters (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        lastInode INTEGER NOT NULL,
                        lastSession INTEGER NOT NULL,
                        lastPin INTEGER NOT NULL,
                        lastLayout INTEGER NOT NULL,
                        lastRecall INTEGER NOT NULL,
                        lastToken INTEGER NOT NULL,
                        lastFence INTEGER NOT NULL,
                        lastEvent INTEGER NOT NULL
                    );
                    -- Files, and quarantine inodes holding blocks a quarantine truncate cut out
                    -- of a file while they were pinned (source* say where from).
                    CREATE TABLE inode (
                        id INTEGER PRIMARY KEY,
                        generation INTEGER NOT NULL,
                        size INTEGER NOT NULL,
                        kind TEXT NOT NULL CHECK (kind IN ('regular', 'quarantine')),
                        sourceInode INTEGER,
                        sourceGeneration INTEGER,
                        sourceOffset INTEGER,
                        keepBlocks INTEGER
                    );
                    -- Extent maps: file blocks fileBlock..<fileBlock+blockCount of an inode live
                    -- at physicalBlock..; written = 0 for allocated blocks not yet written.
                    CREATE TABLE extent (
                        inode INTEGER NOT NULL,
                        fileBlock INTEGER NOT NULL,
                        physicalBlock INTEGER NOT NULL,
                        blockCount INTEGER NOT NULL,
                        written INTEGER NOT NULL,
                        PRIMARY KEY (inode, fileBlock)
                    ) WITHOUT ROWID;
                    -- Free space, coalesced.
                    CREATE TABLE freeExtent (
                        start INTEGER PRIMARY KEY,
                        blockCount INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    -- Busy blocks (cut while referenced) and quarantined ones (quarantineInode).
                    -- Their holders are the pins and fences that reference them.
                    CREATE TABLE busyRun (
                        start INTEGER PRIMARY KEY,
                        blockCount INTEGER NOT NULL,
                        quarantineInode INTEGER
                    ) WITHOUT ROWID;
                    -- Client sessions. The secret is 32 hex digits (v3: its digest, 64 hex digits).
                    CREATE TABLE session (
                        id INTEGER PRIMARY KEY,
                        identity TEXT NOT NULL,
                        name TEXT NOT NULL,
                        secret TEXT NOT NULL,
                        ttlNanoseconds INTEGER NOT NULL,
                        slotCount INTEGER NOT NULL,
                        lastPush INTEGER NOT NULL
                    );
                    -- The exactly-once reply cache: the last completed sequence of each slot and
                    -- its reply, a protobuf leasehold.v1.Response (Protos/leasehold/v1/).
                    CREATE TABLE slot (
                        session INTEGER NOT NULL,
                        slot INTEGER NOT NULL,
                        sequence INTEGER NOT NULL,
                        reply BLOB NOT NULL,
                        PRIMARY KEY (session, slot)
                    ) WITHOUT ROWID;
                    -- DMA pins. ttlNanoseconds is set for short-term pins only.
                    CREATE TABLE pin (
                        id INTEGER PRIMARY KEY,
                        session INTEGER NOT NULL,
                        inode INTEGER NOT NULL,
                        ranges TEXT NOT NULL,
                        kind TEXT NOT NULL CHECK (kind IN ('shortTerm', 'longTerm')),
                        ttlNanoseconds INTEGER,
                        token INTEGER NOT NULL,
                        extents TEXT NOT NULL,
                        busyBlocks INTEGER NOT NULL
                    );
                    -- pNFS-style layouts, one per (session, inode, iomode).
                    CREATE TABLE layout (
                        id INTEGER PRIMARY KEY,
                        session INTEGER NOT NULL,
                        inode INTEGER NOT NULL,
                        iomode TEXT NOT NULL CHECK (iomode IN ('read', 'readWrite')),
                        seqid INTEGER NOT NULL,
                        token INTEGER NOT NULL,
                        grants TEXT NOT NULL
                    );
                    -- Outstanding recalls of a layout range or of a long-term pin.
                    CREATE TABLE recall (
                        id INTEGER PRIMARY KEY,
                        session INTEGER NOT NULL,
                        inode INTEGER NOT NULL,
                        kind TEXT NOT NULL CHECK (kind IN ('layout', 'pin')),
                        layout INTEGER,
                        rangeStart INTEGER,
                        rangeEnd INTEGER,
                        pin INTEGER,
                        prolonged INTEGER NOT NULL
                    );
                    -- The fence feed: reject I/O of session with tokens up to maxToken.
                    CREATE TABLE fence (
                        revision INTEGER PRIMARY KEY,
                        session INTEGER NOT NULL,
                        identity TEXT NOT NULL,
                        maxToken INTEGER NOT NULL,
                        reason TEXT NOT NULL CHECK (reason IN ('expired', 'admin', 'missedRecall')),
                        blocks TEXT NOT NULL
                    );
                    -- Storage targets and the highest fence revision each acknowledged.
                    CREATE TABLE target (
                        name TEXT PRIMARY KEY,
                        acknowledged INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    """
            )
        }
        migrator.registerMigration("v2: journal position") { db in
            // The journal position of the last batch written (its term, 0 on a single
            // node, and its index) lives in the counters row: the index is one more
            // counter that never goes backwards, and a batch that changes counters then
            // dirties one page for both, not two. A v1 database reads as position 0:0.
            try db.execute(
                sql: """
                    ALTER TABLE counters ADD COLUMN term INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE counters ADD COLUMN logIndex INTEGER NOT NULL DEFAULT 0;
                    """
            )
        }
        migrator.registerMigration(Self.secretDigests) { db in
            // The secret column held the secret itself (32 hex digits); from v3 on the
            // session row holds its SHA-256 digest (64 hex digits) and the secret is
            // persisted nowhere (SEMANTICS.md). Sessions of a v2 database resume with
            // the secrets their clients hold. `secure_delete` for this migration only:
            // SQLite would otherwise leave the old cells, secrets included, in the free
            // space of the rewritten pages.
            try db.execute(sql: "PRAGMA secure_delete = ON")
            defer { try? db.execute(sql: "PRAGMA secure_delete = OFF") }
            try db.execute(sql: "ALTER TABLE session RENAME COLUMN secret TO secretDigest")
            let rows = try Row.fetchAll(db, sql: "SELECT id, secretDigest FROM session")
            for row in rows {
                let id: Int64 = row[0]
                guard let secret = LegacySecretText.decode(row[1]) else {
                    throw StoreError.malformedRow(table: "session", key: "\(UInt64(stored: id))", problem: "secret is not 32 hex digits")
                }
                try db.execute(
                    sql: "UPDATE session SET secretDigest = ? WHERE id = ?",
                    arguments: [SessionSecretDigest(of: secret).description, id]
                )
            }
        }
        migrator.registerMigration(Self.eventHistory) { db in
            // The admin event history (`leaseholdctl watch`, post-mortems), oldest first
            // and at most `--event-history` long: each event a protobuf
            // `leasehold.v1.Event` message, as pushed to watchers. A v3 database starts
            // with an empty history; its events before the upgrade are gone.
            try db.execute(
                sql: """
                    CREATE TABLE event (
                        revision INTEGER PRIMARY KEY,
                        body BLOB NOT NULL
                    );
                    """
            )
        }
        return migrator
    }
}

/// A session secret as a v2 database stored it: 32 hex digits.
enum LegacySecretText {
    static func decode(_ text: String) -> SessionSecret? {
        guard text.utf8.count == 32 else { return nil }
        let high = UInt64(text.prefix(16), radix: 16)
        let low = UInt64(text.suffix(16), radix: 16)
        guard let high, let low else { return nil }
        return SessionSecret(high: high, low: low)
    }
}
