import Foundation
import GRDB
import LeaseholdCore
import LeaseholdJournal
import Synchronization

/// The database of a Leasehold data directory: the Coordinator's persisted rows and the
/// journal position they reflect. It is the embedded journal sink (`Store+JournalSink`).
///
/// One `Store` per file per process (GRDB's rule). WAL mode (a `DatabasePool`), and
/// `synchronous = FULL` on the writer, checked after opening: GRDB sets `NORMAL` when it
/// enables WAL, so the setting is made afterwards. Writes are incremental: each change
/// set row is one `INSERT OR REPLACE` or `DELETE` by primary key, never a table rewrite.
public final class Store: Sendable {
    /// The database file.
    public let path: String
    let pool: DatabasePool
    /// The journal position the file reflects, once read: this `Store` is the file's only
    /// writer (one per file per process), so it follows every batch.
    let writtenPosition = Mutex<LogPosition?>(nil)

    /// How a commit reaches the disk.
    public enum Durability: Sendable {
        /// `synchronous = FULL`: durable when `apply` returns (the journal's sink).
        case full
        /// `synchronous = NORMAL` in WAL mode: consistent after a crash, but a power loss
        /// may take the last commits back (a cluster node's local copy, which etcd backs).
        case consistent
    }

    /// Opens (creating if needed) the database at `path` and migrates it to the current
    /// schema.
    public init(path: String, durability: Durability = .full) throws {
        self.path = path
        var configuration = Configuration()
        configuration.label = "leasehold"
        configuration.busyMode = .timeout(10)
        self.pool = try DatabasePool(path: path, configuration: configuration)
        let (pragma, expected) = durability == .full ? ("FULL", 2) : ("NORMAL", 1)
        try self.pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = \(pragma)")
            let level = try Int.fetchOne(db, sql: "PRAGMA synchronous")
            guard level == expected else { throw StoreError.settingRefused("synchronous = \(pragma) (got \(level ?? -1))") }
        }
        let migrator = StoreSchema.migrator
        let pending = try self.pool.read { db in try migrator.appliedIdentifiers(db) }
        try migrator.migrate(self.pool)
        if !pending.contains(StoreSchema.secretDigests), try self.pool.read({ db in try migrator.appliedIdentifiers(db) }).contains(StoreSchema.secretDigests) {
            // Secrets were just replaced by digests: move the rewritten pages into the
            // database file now, so that its old pages (and the secrets in them) are gone
            // from the disk, not merely superseded in the WAL.
            try self.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        }
    }

    /// Whether the database holds a volume yet (a first start has nothing).
    public func hasVolume() throws -> Bool {
        try self.pool.read { db in try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM volume)") ?? false }
    }

    /// Applies change sets, in order, in one transaction, and records `position` as the
    /// journal position the database now reflects: durable when it returns.
    /// - Returns: how long the `COMMIT` took (appending to the WAL and its fsync).
    @discardableResult
    public func apply(_ changeSets: [ChangeSet], position: LogPosition? = nil) throws -> Duration {
        try self.pool.writeWithoutTransaction { db in
            try db.execute(sql: "BEGIN IMMEDIATE")
            do {
                var writer = RowWriter(db: db)
                try writer.write(batch: changeSets)
                if let position { try writer.write(position) }
                let clock = ContinuousClock()
                let start = clock.now
                try db.execute(sql: "COMMIT")
                let sync = clock.now - start
                if let position { self.writtenPosition.withLock { $0 = position } }
                return sync
            } catch {
                if db.isInsideTransaction { try? db.execute(sql: "ROLLBACK") }
                throw error
            }
        }
    }

    /// Replaces every row by `changes` (a whole image, ``PersistentState/changeSet``) at
    /// `position`, in one transaction: a cluster node's local copy after it caught up
    /// from a checkpoint. A crash leaves the old rows or the new ones, never a mix.
    public func replaceAll(with changes: ChangeSet, position: LogPosition) throws {
        try self.pool.writeWithoutTransaction { db in
            try db.execute(sql: "BEGIN IMMEDIATE")
            do {
                for table in StoreSchema.tables { try db.execute(sql: "DELETE FROM \(table)") }
                var writer = RowWriter(db: db)
                for row in changes.rows { try writer.write(row) }
                try writer.write(position)
                try db.execute(sql: "COMMIT")
                self.writtenPosition.withLock { $0 = position }
            } catch {
                if db.isInsideTransaction { try? db.execute(sql: "ROLLBACK") }
                throw error
            }
        }
    }

    /// The journal position of the last batch written (`zero` before the first).
    public func position() throws -> LogPosition {
        if let known = self.writtenPosition.withLock({ $0 }) { return known }
        let stored = try self.pool.read { db in try RowReader.position(db) }
        self.writtenPosition.withLock { $0 = $0 ?? stored }
        return stored
    }

    /// Every persisted row: the `pin` table (the biggest by far) on a second reader
    /// connection and thread while the rest loads on another. Both read the same state:
    /// the writer is held meanwhile, so no commit can land between them (the system
    /// SQLite has no snapshot API).
    public func loadState() throws -> PersistentState {
        let pins = Mutex<Result<[PinID: PinRecord], any Error>?>(nil)
        let rest = Mutex<Result<PersistentState, any Error>?>(nil)
        self.pool.writeWithoutTransaction { _ in
            DispatchQueue.concurrentPerform(iterations: 2) { part in
                if part == 0 {
                    let result = Result { try self.pool.read { db in try RowReader.loadPins(db) } }
                    pins.withLock { $0 = result }
                } else {
                    let result = Result { try self.pool.read { db in try RowReader.loadAllButPins(db) } }
                    rest.withLock { $0 = result }
                }
            }
        }
        var state = try rest.withLock { $0! }.get()
        state.pins = try pins.withLock { $0! }.get()
        return state
    }

    /// Copies the database to `destination` through SQLite's backup API: a consistent
    /// image while writes go on. The copy opens as a normal Leasehold data directory.
    /// - Returns: the journal position the copy reflects.
    @discardableResult
    public func backup(to destination: String) throws -> LogPosition {
        let target = try DatabaseQueue(path: destination)
        try self.pool.backup(to: target)
        try target.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = WAL") }
        let position = try target.read { db in try RowReader.position(db) }
        try target.close()
        return position
    }

    /// The schema as SQL, as `sqlite3 .schema` prints it.
    public func schema() throws -> String {
        try self.pool.read { db in
            try String.fetchAll(db, sql: "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name").joined(separator: ";\n")
        }
    }

    /// Closes the database.
    public func close() throws {
        try self.pool.close()
    }
}

/// Errors of the store.
public enum StoreError: Error, CustomStringConvertible {
    case settingRefused(String)
    case malformedRow(table: String, key: String, problem: String)

    public var description: String {
        switch self {
        case .settingRefused(let setting): "SQLite refused the setting \(setting)"
        case .malformedRow(let table, let key, let problem): "row \(key) of table \(table) is malformed: \(problem)"
        }
    }
}

/// Unsigned values in signed SQLite integers: the bit pattern, so nothing is lost.
extension UInt64 {
    var stored: Int64 { Int64(bitPattern: self) }
    init(stored: Int64) { self.init(bitPattern: stored) }
}

extension Duration {
    var storedNanoseconds: Int64 { Int64(clamping: self.nanosecondsClamped) }
}
