import Foundation
import LeaseholdCluster
import LeaseholdClusterTestSupport
import LeaseholdCore
import LeaseholdEtcd
import LeaseholdJournal
import LeaseholdStore
import LeaseholdTestSupport
import Synchronization
import Testing

/// The suite every journal sink must pass, run once per sink: what the seeded simulation
/// commits through a journal reloads field by field as the Coordinator's own persisted
/// image; ids, tokens, revisions and the epoch only grow across restarts; a snapshot taken
/// while batches go on loads as the state at the position it reports.
@Suite("Journal sinks: conformance", .serialized)
struct SinkConformanceTests {
    enum Kind: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case memory
        case sqlite
        case etcd

        var testDescription: String { self.rawValue }
    }

    /// One sink's storage, reopened as a restart would.
    struct Storage {
        let kind: Kind
        let directory: String
        var sink: any JournalSink
        /// The term batches are written in: 0 on one node; for etcd the create revision of
        /// the leader key the sink writes under (a cluster of its own in the shared member).
        var term: UInt64 = 0

        init(_ kind: Kind) async throws {
            self.kind = kind
            self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("leasehold-sink-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
            switch kind {
            case .memory: self.sink = InMemorySink()
            case .sqlite: self.sink = try Store(path: self.directory + "/leasehold.db")
            case .etcd:
                let sink = try await EtcdTestCluster.leaderSink()
                self.sink = sink
                self.term = sink.leadership!.term
            }
        }

        /// A restart: the SQLite file is closed and opened again; the etcd sink is made
        /// anew over the same keys and leadership; memory stays (the object is the "disk").
        mutating func reopen() throws {
            switch self.kind {
            case .memory: break
            case .sqlite:
                try self.sink.close()
                self.sink = try Store(path: self.directory + "/leasehold.db")
            case .etcd:
                try self.sink.close()
                let old = self.sink as! EtcdSink
                self.sink = EtcdSink(client: old.client, keys: old.keys, leadership: old.leadership)
            }
        }

        /// A snapshot file opened as a sink (of the same kind where the kind has files).
        func open(snapshot path: String) throws -> any JournalSink {
            switch self.kind {
            case .memory, .etcd: try InMemorySink(contentsOf: path)
            case .sqlite: try Store(path: path)
            }
        }

        func remove() {
            try? self.sink.close()
            try? FileManager.default.removeItem(atPath: self.directory)
        }
    }

    static func options(term: UInt64) -> Journal.Options {
        var options = Journal.Options()
        options.term = term
        options.onFailure = { failure in Issue.record("journal stopped: \(failure)") }
        return options
    }

    static func journal(_ sink: any JournalSink, after position: LogPosition, term: UInt64) -> Journal {
        Journal(sink: sink, after: position, options: Self.options(term: term))
    }

    /// Runs `count` simulation steps on a thread of its own and returns each step's change
    /// sets: the simulation is CPU-bound, and on the cooperative pool it would starve the
    /// network tests running beside this suite.
    static func steps(_ simulation: inout Simulation, _ count: Int) async throws -> [[ChangeSet]] {
        let start = simulation
        let (after, changes) = try await onOwnThread { () -> (Simulation, [[ChangeSet]]) in
            var simulation = start
            var changes: [[ChangeSet]] = []
            for _ in 0..<count {
                simulation.step()
                changes.append(simulation.takeChanges())
            }
            return (simulation, changes)
        }
        simulation = after
        return changes
    }

    /// Runs `steps` simulation steps and queues each step's change set; returns once all
    /// are durable.
    static func run(_ simulation: inout Simulation, steps: Int, into journal: Journal) async throws {
        var last: UInt64?
        for changes in try await Self.steps(&simulation, steps).joined() { last = journal.enqueue(changes) }
        if let last { await journal.waitUntilDurable(last) }
    }

    /// Batches straight to a sink, one per step, from a thread that may block: the image
    /// after each batch, by position.
    struct Writer {
        struct NotDurable: Error, CustomStringConvertible {
            var position: LogPosition
            var outcome: BatchOutcome
            var description: String { "batch \(self.position): \(self.outcome)" }
        }

        final class Outcome: Sendable {
            let value = Mutex<BatchOutcome?>(nil)
        }

        let sink: any JournalSink
        var term: UInt64 = 0
        var image = PersistentState()
        var position = LogPosition.zero
        var images: [UInt64: PersistentState] = [:]

        mutating func write(_ sets: [ChangeSet]) throws {
            guard !sets.isEmpty else { return }
            self.position = self.position.next(term: self.term)
            let done = DispatchSemaphore(value: 0)
            let outcome = Outcome()
            self.sink.apply(JournalBatch(position: self.position, changeSets: sets)) { result in
                outcome.value.withLock { $0 = result }
                done.signal()
            }
            done.wait()
            let result = outcome.value.withLock { $0! }
            guard result.isDurable else { throw NotDurable(position: self.position, outcome: result) }
            for changes in sets { self.image.apply(changes) }
            self.images[self.position.index] = self.image
        }
    }

    @Test("the simulation's change sets, replayed through a journal, reload as the Coordinator's persisted image",
          arguments: Kind.allCases, TestSeed.seeds(default: [51, 52]))
    func replayAndReload(kind: Kind, seed: UInt64) async throws {
        print(TestSeed.replayHint(seed: seed, test: "SinkConformanceTests"))
        var storage = try await Storage(kind)
        defer { storage.remove() }
        #expect(try await storage.sink.load() == nil, "an empty sink holds no volume")
        var simulation = Simulation(seed: seed)
        simulation.keepsChanges = true
        var journal = Self.journal(storage.sink, after: .zero, term: storage.term)
        await journal.commit(simulation.harness.persisted.changeSet)
        for round in 0..<8 {
            try await Self.run(&simulation, steps: 150, into: journal)
            let written = journal.position
            journal.close()
            try storage.reopen()
            let loaded = try #require(try await storage.sink.load(), "round \(round): nothing loaded")
            #expect(loaded.position == written, "round \(round): the position of the last batch")
            let differences = loaded.state.differences(from: simulation.harness.coordinator.persistentState())
            #expect(differences.isEmpty, "\(kind) seed \(seed) round \(round): \(differences.prefix(5))")
            #expect(simulation.problems.isEmpty, "seed \(seed): \(simulation.problems.prefix(3))")
            if !differences.isEmpty || !simulation.problems.isEmpty { break }
            journal = Self.journal(storage.sink, after: loaded.position, term: storage.term)
        }
        journal.close()
    }

    @Test("across restarts the epoch goes up and every id, token and revision handed out is above all before",
          arguments: Kind.allCases)
    func monotonicAcrossRestarts(kind: Kind) async throws {
        var storage = try await Storage(kind)
        defer { storage.remove() }
        var simulation = Simulation(seed: 61)
        simulation.keepsChanges = true
        let journal = Self.journal(storage.sink, after: .zero, term: storage.term)
        await journal.commit(simulation.harness.persisted.changeSet)
        try await Self.run(&simulation, steps: 600, into: journal)
        journal.close()
        var before = simulation.harness.coordinator.persistentState()
        var epoch = try #require(before.volume).epoch

        for restart in 0..<3 {
            try storage.reopen()
            let loadedPosition = try #require(try await storage.sink.load()).position
            let boot = try await Boot.open(
                sink: storage.sink, configuration: Simulation.configuration(), at: Instant.zero + .seconds(1_000 * Int64(restart + 1)),
                options: Self.options(term: storage.term)
            )
            #expect(boot.restored)
            #expect(boot.coordinator.epoch == epoch + 1, "restart \(restart): the epoch goes up by one")
            #expect(boot.journal.position.index == loadedPosition.index + 1, "the first tick is one batch after the loaded position")
            var coordinator = boot.coordinator
            let now = Instant.zero + .seconds(1_000 * Int64(restart + 1))
            let caller = Caller(identity: "restart-\(restart)")
            let opened = coordinator.handle(
                Request(caller: caller, command: .openSession(name: "r", ttl: .seconds(60), slots: 2, secret: SessionSecret(high: 7, low: UInt64(restart)))),
                at: now
            )
            guard case .success(.sessionOpened(let grant))? = opened.reply else {
                Issue.record("openSession after restart \(restart): \(String(describing: opened.reply))")
                return
            }
            #expect(grant.session.rawValue > before.counters.lastSession)
            #expect(before.sessions.keys.allSatisfy { $0 < grant.session })
            let created = coordinator.handle(Request(caller: caller, session: grant.session, tag: SlotTag(slot: 0, sequence: 1), command: .createInode), at: now)
            guard case .success(.inodeCreated(let inode))? = created.reply else {
                Issue.record("createInode after restart \(restart): \(String(describing: created.reply))")
                return
            }
            #expect(inode.rawValue > before.counters.lastInode)
            #expect(before.inodes.keys.allSatisfy { $0 < inode })
            let pinned = coordinator.handle(
                Request(
                    caller: caller, session: grant.session, tag: SlotTag(slot: 1, sequence: 1),
                    command: .pin(PinRequest(inode: inode, ranges: [ByteRange(offset: 0, length: 4096)], kind: .longTerm, allocate: true))
                ),
                at: now
            )
            guard case .success(.pinned(let pin))? = pinned.reply else {
                Issue.record("pin after restart \(restart): \(String(describing: pinned.reply))")
                return
            }
            #expect(pin.token.rawValue > before.counters.lastToken)
            #expect(before.pins.values.allSatisfy { $0.token < pin.token } && before.layouts.values.allSatisfy { $0.token < pin.token })
            #expect(pin.pin.rawValue > before.counters.lastPin)
            for output in [opened, created, pinned] { boot.journal.enqueue(output.effects.changes) }
            await boot.journal.commit(ChangeSet())
            boot.journal.close()
            let after = coordinator.persistentState()
            try storage.reopen()
            let reloaded = try #require(try await storage.sink.load())
            #expect(reloaded.state.differences(from: after).isEmpty, "restart \(restart): \(reloaded.state.differences(from: after).prefix(3))")
            for (name, old, new) in Self.counters(before.counters, reloaded.state.counters) {
                #expect(new >= old, "restart \(restart): counter \(name) went from \(old) back to \(new)")
            }
            #expect(reloaded.position > loadedPosition)
            before = after
            epoch = boot.coordinator.epoch
        }
    }

    @Test("a first start on an empty sink creates the volume and makes it durable before serving", arguments: Kind.allCases)
    func firstStart(kind: Kind) async throws {
        var storage = try await Storage(kind)
        defer { storage.remove() }
        let boot = try await Boot.open(sink: storage.sink, configuration: Simulation.configuration(), at: .zero, options: Self.options(term: storage.term))
        #expect(!boot.restored)
        #expect(boot.journal.position == LogPosition(term: storage.term, index: 1))
        boot.journal.close()
        try storage.reopen()
        let loaded = try #require(try await storage.sink.load())
        #expect(loaded.position == LogPosition(term: storage.term, index: 1))
        #expect(loaded.state.differences(from: boot.coordinator.persistentState()).isEmpty)
    }

    /// One batch straight to the sink, waiting for its outcome.
    static func outcome(_ sink: any JournalSink, _ batch: JournalBatch) async -> BatchOutcome {
        await withCheckedContinuation { continuation in sink.apply(batch) { continuation.resume(returning: $0) } }
    }

    @Test("a resend of a durable batch is durable and writes nothing again; a batch past the next position is out of order and writes nothing",
          arguments: Kind.allCases)
    func resendAndGap(kind: Kind) async throws {
        var storage = try await Storage(kind)
        defer { storage.remove() }
        var simulation = Simulation(seed: 81)
        simulation.keepsChanges = true
        let initial = JournalBatch(position: LogPosition(term: storage.term, index: 1), changeSets: [simulation.harness.persisted.changeSet])
        let steps = try await Self.steps(&simulation, 50).joined()
        let second = JournalBatch(position: LogPosition(term: storage.term, index: 2), changeSets: Array(steps))
        #expect(await Self.outcome(storage.sink, initial).isDurable)
        #expect(await Self.outcome(storage.sink, second).isDurable)
        let written = try #require(try await storage.sink.load())
        #expect(written.position == second.position)
        for restart in [false, true] {
            if restart { try storage.reopen() }
            // The first batch again: its rows are older than the second's and must not be
            // written over them.
            #expect(await Self.outcome(storage.sink, initial).isDurable, "restart \(restart): a resend of batch 1")
            #expect(await Self.outcome(storage.sink, second).isDurable, "restart \(restart): a resend of batch 2")
            let gap = JournalBatch(position: LogPosition(term: storage.term, index: 4), changeSets: [ChangeSet(rows: [.freeExtent(1 << 40, count: 1)])])
            let outcome = await Self.outcome(storage.sink, gap)
            guard case .outOfOrder(let expected) = outcome else {
                Issue.record("restart \(restart): batch 4 after batch 2 came back \(outcome)")
                continue
            }
            #expect(expected.index == 3)
            let loaded = try #require(try await storage.sink.load())
            #expect(loaded.position == second.position)
            #expect(loaded.state.differences(from: written.state).isEmpty, "restart \(restart): \(loaded.state.differences(from: written.state).prefix(3))")
        }
    }

    static func counters(_ old: Counters, _ new: Counters) -> [(String, UInt64, UInt64)] {
        [
            ("inode", old.lastInode, new.lastInode), ("session", old.lastSession, new.lastSession), ("pin", old.lastPin, new.lastPin),
            ("layout", old.lastLayout, new.lastLayout), ("recall", old.lastRecall, new.lastRecall), ("token", old.lastToken, new.lastToken),
            ("fence", old.lastFence, new.lastFence), ("event", old.lastEvent, new.lastEvent),
        ]
    }

    @Test("a snapshot taken while batches go on loads as the state at the position it reports; one taken at rest as the live state",
          arguments: Kind.allCases)
    func snapshotThenLoad(kind: Kind) async throws {
        let storage = try await Storage(kind)
        defer { storage.remove() }
        var simulation = Simulation(seed: 71)
        simulation.keepsChanges = true
        let sink = storage.sink
        let term = storage.term
        let initial = simulation.harness.persisted.changeSet
        let first = try await Self.steps(&simulation, 300)
        // Writing is blocking I/O for the SQLite sink: off the cooperative pool too.
        var (image, images, position) = try await onOwnThread { () throws -> (PersistentState, [UInt64: PersistentState], LogPosition) in
            var writer = Writer(sink: sink, term: term)
            try writer.write([initial])
            for sets in first { try writer.write(sets) }
            return (writer.image, writer.images, writer.position)
        }
        // At rest: the copy is the live state.
        let restPath = storage.directory + "/rest.snapshot"
        let rest = try await storage.sink.snapshot(to: restPath)
        #expect(rest == position)
        let restCopy = try storage.open(snapshot: restPath)
        let restLoaded = try #require(try await restCopy.load())
        try restCopy.close()
        #expect(restLoaded.position == position)
        #expect(restLoaded.state.differences(from: simulation.harness.coordinator.persistentState()).isEmpty)

        // While batches go on: the copy is the state at the position it names.
        let busyPath = storage.directory + "/busy.snapshot"
        let second = try await Self.steps(&simulation, 300)
        let snapshot = Task { try await sink.snapshot(to: busyPath) }
        (image, images, position) = try await onOwnThread { [image, images, position, term] () throws -> (PersistentState, [UInt64: PersistentState], LogPosition) in
            var writer = Writer(sink: sink, term: term, image: image, position: position, images: images)
            for sets in second { try writer.write(sets) }
            return (writer.image, writer.images, writer.position)
        }
        #expect(image == simulation.harness.coordinator.persistentState())
        let reported = try await snapshot.value
        let copy = try storage.open(snapshot: busyPath)
        let loaded = try #require(try await copy.load())
        #expect(loaded.position == reported)
        let expected = try #require(images[reported.index], "the snapshot names position \(reported), which was never written")
        #expect(loaded.state.differences(from: expected).isEmpty, "\(kind): \(loaded.state.differences(from: expected).prefix(3))")
        try copy.close()
    }
}
