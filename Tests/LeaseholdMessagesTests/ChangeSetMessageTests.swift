import Foundation
import LeaseholdCore
import LeaseholdMessages
import LeaseholdTestSupport
import Testing

@Suite("Change sets as messages")
struct ChangeSetMessageTests {
    /// The table a row belongs to, to show that every kind was seen.
    static func table(_ row: ChangeSet.Row) -> String {
        switch row {
        case .volume: "volume"
        case .counters: "counters"
        case .inode(_, let value): value == nil ? "inode-" : "inode"
        case .extent(_, let value): value == nil ? "extent-" : "extent"
        case .freeExtent(_, let count): count == nil ? "freeExtent-" : "freeExtent"
        case .busy(_, let value): value == nil ? "busy-" : value?.quarantine == nil ? "busy" : "busyQuarantined"
        case .session(_, let value): value == nil ? "session-" : "session"
        case .slot(_, let value): value == nil ? "slot-" : "slot"
        case .pin(_, let value): value == nil ? "pin-" : value!.kind.isLongTerm ? "pinLong" : "pinShort"
        case .layout(_, let value): value == nil ? "layout-" : "layout"
        case .recall(_, let value):
            switch value?.target {
            case nil: "recall-"
            case .layout?: "recallLayout"
            case .pin?: "recallPin"
            }
        case .fence(_, let value): value == nil ? "fence-" : "fence"
        case .target(_, let value): value == nil ? "target-" : "target"
        case .event: "event"
        case .eventsDropped: "eventsDropped"
        }
    }

    @Test("every change set of the seeded simulation survives encoding and decoding unchanged",
          arguments: TestSeed.seeds(default: [31, 32, 33]))
    func roundTrip(seed: UInt64) async throws {
        print(TestSeed.replayHint(seed: seed, test: "ChangeSetMessageTests"))
        let (problems, seen) = try await onOwnThread { () throws -> ([String], Set<String>) in
            var simulation = Simulation(seed: seed)
            simulation.keepsChanges = true
            var problems: [String] = []
            var seen: Set<String> = []
            var sets = [simulation.harness.persisted.changeSet]
            for _ in 0..<3_000 {
                simulation.step()
                sets += simulation.takeChanges()
            }
            problems += simulation.problems.prefix(3)
            for (index, changes) in sets.enumerated() {
                for row in changes.rows { seen.insert(Self.table(row)) }
                let bytes: [UInt8] = try changes.message.serializedBytes()
                let decoded = try ChangeSet(message: Leasehold_Journal_V1_ChangeSet(serializedBytes: bytes))
                if decoded != changes {
                    let wrong = zip(decoded.rows, changes.rows).first { $0.0 != $0.1 }
                    problems.append("change set \(index) differs after a round trip: \(String(describing: wrong))")
                }
            }
            return (problems, seen)
        }
        #expect(problems.isEmpty, "seed \(seed): \(problems.prefix(5).joined(separator: "\n"))")
        // Upserts of every table and deletions of every table that has them.
        let expected: Set<String> = [
            "volume", "counters", "inode", "inode-", "extent", "extent-", "freeExtent", "freeExtent-", "busy", "busy-",
            "session", "session-", "slot", "slot-", "pinShort", "pinLong", "pin-", "layout", "layout-", "recallLayout", "recallPin",
            "recall-", "fence", "fence-", "target", "event", "eventsDropped",
        ]
        #expect(expected.subtracting(seen).isEmpty, "seed \(seed): the simulation produced no \(expected.subtracting(seen).sorted())")
    }

    @Test("a quarantined busy run, a target deletion and extreme values round-trip")
    func edgeRows() throws {
        let geometry = try VolumeGeometry(blockSize: 1 << 20, blockCount: .max >> 20)
        var counters = Counters()
        counters.lastToken = .max
        counters.lastEvent = 1
        let changes = ChangeSet(rows: [
            .volume(VolumeRecord(geometry: geometry, pinSetting: .shortTermOnly, epoch: .max)),
            .counters(counters),
            .busy(.max - 1, BusyRecord(count: 1, quarantine: InodeID(rawValue: 9))),
            .inode(
                InodeID(rawValue: 9),
                InodeRecord(
                    id: InodeID(rawValue: 9), generation: 3, size: .max,
                    kind: .quarantine(QuarantineSource(inode: InodeID(rawValue: 2), generation: 7, fileOffset: 4096, keep: true))
                )
            ),
            .session(
                SessionID(rawValue: 5),
                SessionRecord(
                    id: SessionID(rawValue: 5), identity: "ünïcode", name: "", secretDigest: SessionSecretDigest(of: SessionSecret(high: .max, low: 0)),
                    ttl: .seconds(300), slotCount: 64, lastPush: .max
                )
            ),
            .slot(SlotKey(session: SessionID(rawValue: 5), slot: .max), SlotRecord(sequence: .max, reply: .failure(.notFound("gone")))),
            .freeExtent(0, count: 0),
            .target("target-1", nil),
        ])
        let bytes: [UInt8] = try changes.message.serializedBytes()
        #expect(try ChangeSet(message: Leasehold_Journal_V1_ChangeSet(serializedBytes: bytes)) == changes)
    }

    @Test("rows that cannot be read are refused with the row named")
    func malformedRows() throws {
        var noTable = Leasehold_Journal_V1_ChangeSet()
        noTable.rows = [Leasehold_Journal_V1_Row()]
        #expect(throws: LeaseholdError.self) { try ChangeSet(message: noTable) }

        var badSecret = Leasehold_Journal_V1_ChangeSet()
        var row = Leasehold_Journal_V1_Row()
        row.session.id = 1
        row.session.value.legacySecret = Data([1, 2, 3])
        badSecret.rows = [row]
        do {
            _ = try ChangeSet(message: badSecret)
            Issue.record("a 3-byte secret was accepted")
        } catch {
            #expect(error.message.contains("16 bytes"))
        }
        row.session.value.secretDigest = Data(repeating: 7, count: 31)
        badSecret.rows = [row]
        do {
            _ = try ChangeSet(message: badSecret)
            Issue.record("a 31-byte digest was accepted")
        } catch {
            #expect(error.message.contains("secret_digest") && error.message.contains("32 bytes"))
        }

        var noTarget = Leasehold_Journal_V1_ChangeSet()
        var recall = Leasehold_Journal_V1_Row()
        recall.recall.id = 4
        recall.recall.value.session = 1
        noTarget.rows = [recall]
        do {
            _ = try ChangeSet(message: noTarget)
            Issue.record("a recall without a target was accepted")
        } catch {
            #expect(error.message.contains("rows[0]"))
        }
    }

    @Test("a session row holds the secret's digest, never the secret; a row of an older log with the secret reads as its digest")
    func secretDigests() throws {
        let secret = SessionSecret(high: 0x0102_0304_0506_0708, low: 0x1112_1314_1516_1718)
        let digest = SessionSecretDigest(of: secret)
        let record = SessionRecord(id: SessionID(rawValue: 3), identity: "host-a", name: "s", secretDigest: digest, ttl: .seconds(30), slotCount: 2, lastPush: 5)
        let changes = ChangeSet(rows: [.session(SessionID(rawValue: 3), record)])
        let bytes: [UInt8] = try changes.message.serializedBytes()
        let secretBytes = Data([secret.high, secret.low].flatMap { word in (0..<8).reversed().map { UInt8(truncatingIfNeeded: word >> ($0 * 8)) } })
        #expect(Data(bytes).range(of: secretBytes) == nil, "the message holds the secret")
        #expect(Data(bytes).range(of: Data(digest.bytes)) != nil)
        #expect(try ChangeSet(message: Leasehold_Journal_V1_ChangeSet(serializedBytes: bytes)) == changes)

        // What a version before digests wrote: the secret itself in field 3.
        var legacy = Leasehold_Journal_V1_ChangeSet()
        var row = Leasehold_Journal_V1_Row()
        row.session.id = 3
        row.session.value.identity = "host-a"
        row.session.value.name = "s"
        row.session.value.legacySecret = secretBytes
        row.session.value.ttlNanos = 30_000_000_000
        row.session.value.slotCount = 2
        row.session.value.lastPush = 5
        legacy.rows = [row]
        #expect(try ChangeSet(message: legacy) == changes)
    }
}
