import Foundation
import GRDB
import LeaseholdCore
import LeaseholdJournal
import LeaseholdTestSupport
import Testing

@testable import LeaseholdStore

/// A fresh directory for one test's database files.
func temporaryDatabase(_ name: String = "leasehold.db") throws -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("leasehold-store-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory.appendingPathComponent(name).path
}

@Suite("Store: schema, rows and snapshots")
struct StoreTests {
    @Test("an empty file is migrated to the schema, in WAL mode with synchronous = FULL, and reopens")
    func migrationAndReopen() throws {
        let path = try temporaryDatabase()
        let store = try Store(path: path)
        #expect(try store.hasVolume() == false)
        let schema = try store.schema()
        for table in ["volume", "counters", "inode", "extent", "freeExtent", "busyRun", "session", "slot", "pin", "layout", "recall", "fence", "target", "event"] {
            #expect(schema.contains("CREATE TABLE \(table) ("), "table \(table)")
        }
        let (mode, synchronous) = try store.pool.writeWithoutTransaction { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode"), try Int.fetchOne(db, sql: "PRAGMA synchronous"))
        }
        #expect(mode == "wal")
        #expect(synchronous == 2)
        var coordinator = Coordinator(configuration: Harness.configuration())
        try store.apply([coordinator.tick(at: .zero).effects.changes])
        try store.close()

        let reopened = try Store(path: path)
        #expect(try reopened.hasVolume())
        #expect(try reopened.loadState() == coordinator.persistentState())
    }

    @Test("a database of schema v1 opens at journal position 0:0 with its rows; batches then record their position")
    func upgradeFromV1() async throws {
        let path = try temporaryDatabase()
        var coordinator = Coordinator(configuration: Harness.configuration())
        let created = coordinator.tick(at: .zero).effects.changes
        try Self.writeV1(path: path, created)
        let store = try Store(path: path)
        #expect(try store.position() == .zero)
        let loaded = try #require(try await store.load())
        #expect(loaded.position == .zero)
        #expect(loaded.state == coordinator.persistentState())
        let journal = Journal(sink: store, after: loaded.position)
        let opened = coordinator.handle(
            Request(caller: Caller(identity: "a"), command: .openSession(name: "a", ttl: .seconds(60), slots: 1, secret: SessionSecret(high: 1, low: 1))),
            at: .zero
        )
        await journal.commit(opened.effects.changes)
        journal.close()
        try store.close()
        let reopened = try Store(path: path)
        #expect(try reopened.position() == LogPosition(term: 0, index: 1))
        #expect(try reopened.loadState() == coordinator.persistentState(), "the counters row keeps its counters when the position is written")
        try reopened.close()
    }

    @Test("a database of schema v3 opens with an empty event history; later events are kept and survive a reopen")
    func upgradeFromV3() async throws {
        let path = try temporaryDatabase()
        var h = Harness()
        let session = h.openSession("alice")
        _ = h.createInode(in: session)
        let queue = try DatabaseQueue(path: path)
        try StoreSchema.migrator.migrate(queue, upTo: StoreSchema.secretDigests)
        try queue.inDatabase { db in
            var writer = RowWriter(db: db)
            for row in h.persisted.changeSet.rows {
                if case .event = row { continue }
                try writer.write(row)
            }
        }
        try queue.close()

        let store = try Store(path: path)
        let loaded = try store.loadState()
        #expect(loaded.events.isEmpty && loaded.counters.lastEvent == 2)
        var coordinator = try Coordinator(restoring: loaded, configuration: Harness.configuration(), at: .zero)
        let opened = coordinator.handle(
            Request(caller: Caller(identity: "bob"), command: .openSession(name: "b", ttl: .seconds(60), slots: 1, secret: SessionSecret(high: 2, low: 2))),
            at: .zero
        )
        try store.apply([opened.effects.changes])
        try store.close()
        let reopened = try Store(path: path)
        #expect(try reopened.loadState().events.map(\.revision.rawValue) == [3], "revisions go on from the counter")
        try reopened.close()
    }

    /// What an earlier version left: the v1 schema and its rows.
    static func writeV1(path: String, _ changes: ChangeSet) throws {
        let queue = try DatabaseQueue(path: path)
        try StoreSchema.migrator.migrate(queue, upTo: "v1: coordinator state")
        try queue.inDatabase { db in
            try db.execute(sql: "BEGIN")
            var writer = RowWriter(db: db)
            for row in changes.rows { try writer.write(row) }
            try db.execute(sql: "COMMIT")
        }
        try queue.close()
    }

    @Test("list texts round-trip and refuse malformed input")
    func listTexts() throws {
        let ranges = [ByteRange(offset: 0, length: 4096), ByteRange(offset: .max - 5, length: 5)]
        #expect(try ListText.ranges(ListText.ranges(ranges)) == ranges)
        let extents = [PinnedExtent(fileBlock: 3, physicalBlock: 900, count: 2)]
        #expect(try ListText.extents(ListText.extents(extents)) == extents)
        let grants = [LayoutGrant(range: BlockRange(start: 1, count: 2), seqid: 7)]
        #expect(try ListText.grants(ListText.grants(grants)) == grants)
        #expect(try ListText.blocks("") == [])
        for bad in ["1+", "+2", "1+2;", "1-2", "99999999999999999999+1", "1+2;3"] {
            #expect(throws: ListText.Malformed.self) { try ListText.blocks(bad) }
        }
        let digest = SessionSecretDigest(of: SessionSecret(high: .max, low: 1))
        #expect(SessionSecretDigest(hex: digest.description) == digest)
        #expect(SessionSecretDigest(hex: String(digest.description.dropLast())) == nil)
        #expect(SessionSecretDigest(hex: String(digest.description.dropLast()) + "g") == nil)
    }

    @Test("session secrets: a v2 database's secrets become digests, its sessions resume with their secrets, and no file holds a secret")
    func secretsKeptAsDigests() async throws {
        let path = try temporaryDatabase()
        var coordinator = Coordinator(configuration: Harness.configuration())
        let created = coordinator.tick(at: .zero).effects.changes
        let queue = try DatabaseQueue(path: path)
        try StoreSchema.migrator.migrate(queue, upTo: "v2: journal position")
        try queue.inDatabase { db in
            try db.execute(sql: "BEGIN")
            var writer = RowWriter(db: db)
            for row in created.rows { try writer.write(row) }
            // A session row as v2 wrote it: the secret itself, 32 hex digits.
            try db.execute(
                sql: "INSERT INTO session (id, identity, name, secret, ttlNanoseconds, slotCount, lastPush) VALUES (7, 'host-a', 'old', ?, ?, 4, 0)",
                arguments: ["00000000000000ab00000000000000cd", 30_000_000_000]
            )
            try db.execute(sql: "UPDATE counters SET lastSession = 7")
            try db.execute(sql: "COMMIT")
        }
        try queue.close()

        let old = SessionSecret(high: 0xAB, low: 0xCD)
        let store = try Store(path: path)
        let loaded = try #require(try await store.load())
        #expect(loaded.state.sessions[SessionID(rawValue: 7)]?.secretDigest == SessionSecretDigest(of: old))
        var restored = try Coordinator(restoring: loaded.state, configuration: Harness.configuration(), at: .zero)
        let host = Caller(identity: "host-a")
        let wrong = restored.handle(Request(caller: host, command: .resumeSession(SessionID(rawValue: 7), secret: SessionSecret(high: 0xAB, low: 0xCE))), at: .zero)
        guard case .failure(let error)? = wrong.reply else {
            Issue.record("a wrong secret resumed the session")
            return
        }
        #expect(error.code == .permissionDenied)
        let resumed = restored.handle(Request(caller: host, command: .resumeSession(SessionID(rawValue: 7), secret: old)), at: .zero)
        guard case .success(.sessionResumed)? = resumed.reply else {
            Issue.record("the v2 session did not resume with its secret: \(String(describing: resumed.reply))")
            return
        }

        // A new session: its secret is in the reply only, not in the database.
        let fresh = SessionSecret(high: 0x1122_3344_5566_7788, low: 0x99AA_BBCC_DDEE_FF00)
        let opened = restored.handle(Request(caller: host, command: .openSession(name: "new", ttl: .seconds(60), slots: 1, secret: fresh)), at: .zero)
        guard case .success(.sessionOpened(let grant))? = opened.reply else {
            Issue.record("openSession failed")
            return
        }
        #expect(grant.secret == fresh)
        try store.apply([opened.effects.changes])
        try store.close()
        var files = Data()
        for suffix in ["", "-wal"] { files.append((try? Data(contentsOf: URL(fileURLWithPath: path + suffix))) ?? Data()) }
        for secret in [old, fresh] {
            let hex = String(format: "%016llx%016llx", secret.high, secret.low)
            #expect(files.range(of: Data(hex.utf8)) == nil, "the database holds a secret: \(path)")
        }
        #expect(files.range(of: Data(SessionSecretDigest(of: fresh).description.utf8)) != nil, "the database holds the new session's digest")
    }

    @Test("every step of the simulation persisted and reloaded equals the Coordinator's rows, field by field",
          arguments: TestSeed.seeds(default: [21, 22, 23, 24, 25, 26]))
    func roundTrip(seed: UInt64) async throws {
        print(TestSeed.replayHint(seed: seed, test: "StoreTests"))
        let path = try temporaryDatabase()
        // CPU-bound: off the cooperative pool (see onOwnThread); problems come back as text.
        let problems = try await onOwnThread { () throws -> [String] in
            let store = try Store(path: path)
            var simulation = Simulation(seed: seed)
            simulation.keepsChanges = true
            try store.apply([simulation.harness.persisted.changeSet])
            var problems: [String] = []
            for round in 0..<20 {
                for _ in 0..<100 {
                    simulation.step()
                    try store.apply(simulation.takeChanges())
                }
                problems += simulation.problems.prefix(3).map { "round \(round): \($0)" }
                let loaded = try store.loadState()
                let expected = simulation.harness.coordinator.persistentState()
                problems += loaded.differences(from: expected).map { "round \(round): reloaded rows differ: \($0)" }
                let restored = try Coordinator(restoring: loaded, configuration: Simulation.configuration(), at: .zero)
                problems += InvariantChecker.check(restored).map { "round \(round): restored state violates \($0)" }
                if !problems.isEmpty { break }
            }
            try store.close()
            return problems
        }
        #expect(problems.isEmpty, "seed \(seed): \(problems.prefix(5).joined(separator: "\n"))")
    }

    @Test("an online snapshot taken while writes go on opens as a data directory with a consistent state")
    func snapshot() async throws {
        let path = try temporaryDatabase()
        let store = try Store(path: path)
        var simulation = Simulation(seed: 99)
        simulation.keepsChanges = true
        try store.apply([simulation.harness.persisted.changeSet])
        simulation.run(steps: 300)
        try store.apply(simulation.takeChanges())
        let snapshotPath = try temporaryDatabase("snapshot.db")
        async let snapshot: LogPosition = { try store.backup(to: snapshotPath) }()
        for _ in 0..<300 {
            simulation.step()
            try store.apply(simulation.takeChanges())
        }
        _ = try await snapshot
        let copy = try Store(path: snapshotPath)
        let state = try copy.loadState()
        let restored = try Coordinator(restoring: state, configuration: Simulation.configuration(), at: .zero)
        #expect(InvariantChecker.check(restored).isEmpty)
        #expect(state.volume != nil)
    }
}
