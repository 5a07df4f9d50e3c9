import LeaseholdCore
import LeaseholdJournal
import LeaseholdTestSupport
import Synchronization
import Testing

/// The journal with several batches in flight and outcomes in any order, against a sink
/// the test answers by hand.
@Suite("Journal: batches in flight, released in order")
struct JournalOrderingTests {
    struct Broken: Error {}

    /// One row, different for every `n`.
    static func changes(_ n: Int) -> ChangeSet {
        ChangeSet(rows: [.freeExtent(UInt64(n) * 2, count: 1)])
    }

    /// Time for the writer thread to act on a completion, where the test checks that
    /// nothing happens.
    static let settle = Duration.milliseconds(100)

    final class Released: Sendable {
        let order = Mutex<[Int]>([])
        var all: [Int] { self.order.withLock { $0 } }
        func action(_ n: Int) -> @Sendable () -> Void { { self.order.withLock { $0.append(n) } } }
    }

    final class Failures: Sendable {
        let list = Mutex<[JournalFailure]>([])
        var count: Int { self.list.withLock { $0.count } }
        var first: JournalFailure? { self.list.withLock { $0.first } }
    }

    static func journal(_ sink: ScriptedSink, failures: Failures = Failures()) -> Journal {
        var options = Journal.Options()
        options.retryDelay = .milliseconds(20)
        options.onFailure = { failure in failures.list.withLock { $0.append(failure) } }
        return Journal(sink: sink, after: LogPosition(term: 0, index: 41), options: options)
    }

    /// Enqueues change sets 1...count one at a time, each in a batch of its own.
    static func enqueueSeparately(_ count: Int, _ journal: Journal, _ sink: ScriptedSink, _ released: Released) async throws -> [UInt64] {
        var sequences: [UInt64] = []
        for n in 1...count {
            sequences.append(journal.enqueue(Self.changes(n), afterCommit: released.action(n)))
            try await eventually("batch \(n) reaches the sink") { sink.batches.count == n }
        }
        return sequences
    }

    @Test("outcomes arriving out of order release nothing until every batch before is durable; then all, in order")
    func outOfOrderCompletion() async throws {
        let sink = ScriptedSink(maxBatchesInFlight: 3)
        let journal = Self.journal(sink)
        let released = Released()
        let sequences = try await Self.enqueueSeparately(3, journal, sink, released)
        #expect(sink.batches.map(\.position.index) == [42, 43, 44], "positions follow the one the journal started after")
        #expect(sink.batches.map { $0.changeSets } == [[Self.changes(1)], [Self.changes(2)], [Self.changes(3)]])
        sink.complete(2, .durable(sync: nil))
        sink.complete(1, .durable(sync: nil))
        try await Task.sleep(for: Self.settle)
        #expect(released.all == [])
        #expect(journal.lastDurable == 0)
        sink.complete(0, .durable(sync: nil))
        await journal.waitUntilDurable(sequences[2])
        #expect(released.all == [1, 2, 3])
        #expect(journal.statistics.transactions == 3)
        journal.close()
    }

    @Test("a failed batch releases nothing from it on; earlier batches still become durable and are released")
    func failureStops() async throws {
        let sink = ScriptedSink(maxBatchesInFlight: 3)
        let failures = Failures()
        let journal = Self.journal(sink, failures: failures)
        let released = Released()
        let sequences = try await Self.enqueueSeparately(3, journal, sink, released)
        sink.complete(2, .durable(sync: nil))
        sink.complete(1, .failed(Broken()))
        try await eventually("the failure is reported") { failures.count == 1 }
        #expect(failures.first?.position.index == 43)
        #expect(journal.failure?.position.index == 43)
        #expect(await journal.waitUntilDurable(sequences[1]) == false)
        #expect(await journal.waitUntilDurable(sequences[2]) == false)
        sink.complete(0, .durable(sync: nil))
        #expect(await journal.waitUntilDurable(sequences[0]))
        // A later step is never handed over, and nothing more is released.
        let later = journal.enqueue(Self.changes(4), afterCommit: released.action(4))
        try await Task.sleep(for: Self.settle)
        #expect(released.all == [1])
        #expect(journal.lastDurable == sequences[0])
        #expect(sink.batches.count == 3)
        #expect(await journal.waitUntilDurable(later) == false)
        #expect(failures.count == 1, "reported once")
        journal.close()
    }

    @Test("a deposed journal releases nothing more at all, not even earlier batches that become durable")
    func deposedReleasesNothing() async throws {
        let sink = ScriptedSink(maxBatchesInFlight: 3)
        let failures = Failures()
        let journal = Self.journal(sink, failures: failures)
        let released = Released()
        let sequences = try await Self.enqueueSeparately(2, journal, sink, released)
        sink.complete(1, .deposed("the leader key has another create revision"))
        try await eventually("the deposition is reported") { failures.count == 1 }
        #expect(await journal.waitUntilDurable(sequences[0]) == false, "a newer term may have released already")
        sink.complete(0, .durable(sync: nil))
        try await Task.sleep(for: Self.settle)
        #expect(released.all == [])
        #expect(journal.lastDurable == 0)
        journal.close()
    }

    @Test("a retryable outcome resends that batch and every later one, in order, then releases them in order",
          arguments: [BatchOutcome.unavailable("no quorum"), .unknown("timed out after sending"), .outOfOrder(expected: LogPosition(term: 0, index: 42))])
    func retryResendsInOrder(outcome: BatchOutcome) async throws {
        let sink = ScriptedSink(maxBatchesInFlight: 2)
        let journal = Self.journal(sink)
        let released = Released()
        let sequences = try await Self.enqueueSeparately(2, journal, sink, released)
        sink.complete(1, .durable(sync: nil))
        sink.complete(0, outcome)
        try await eventually("both batches are sent again") { sink.batches.count == 4 }
        #expect(Array(sink.batches[2...]) == Array(sink.batches[..<2]), "the same batches at the same positions, in order")
        #expect(released.all == [])
        sink.complete(2, .durable(sync: nil))
        sink.complete(3, .durable(sync: nil))
        await journal.waitUntilDurable(sequences[1])
        #expect(released.all == [1, 2])
        #expect(journal.statistics.resends == 2)
        #expect(journal.failure == nil)
        journal.close()
    }

    @Test("a retryable outcome behind an outstanding head holds new batches and is resent, in order, once the head is released")
    func retryBehindTheHead() async throws {
        let sink = ScriptedSink(maxBatchesInFlight: 3)
        let journal = Self.journal(sink)
        let released = Released()
        let sequences = try await Self.enqueueSeparately(3, journal, sink, released)
        sink.complete(1, .unavailable("no quorum"))
        let fourth = journal.enqueue(Self.changes(4), afterCommit: released.action(4))
        sink.complete(0, .durable(sync: nil))
        await journal.waitUntilDurable(sequences[0])
        try await Task.sleep(for: Self.settle)
        #expect(sink.batches.count == 3, "nothing is sent while a batch waits to be sent again and another is outstanding")
        sink.complete(2, .durable(sync: nil))
        try await eventually("batches 43, 44 and then 45 are sent") { sink.batches.count == 6 }
        #expect(sink.batches.map(\.position.index) == [42, 43, 44, 43, 44, 45])
        for call in 3..<6 { sink.complete(call, .durable(sync: nil)) }
        await journal.waitUntilDurable(fourth)
        #expect(released.all == [1, 2, 3, 4])
        journal.close()
    }

    @Test("an empty change set is a barrier: released after everything before it, never sent to the sink")
    func barrier() async throws {
        let sink = ScriptedSink(maxBatchesInFlight: 2)
        let journal = Self.journal(sink)
        let released = Released()
        _ = try await Self.enqueueSeparately(1, journal, sink, released)
        let barrier = journal.enqueue(ChangeSet(), afterCommit: released.action(0))
        try await Task.sleep(for: Self.settle)
        #expect(released.all == [])
        #expect(sink.batches.count == 1)
        sink.complete(0, .durable(sync: nil))
        await journal.waitUntilDurable(barrier)
        #expect(released.all == [1, 0])
        #expect(sink.batches.count == 1)
        // With nothing in flight, a barrier is released at once.
        await journal.commit(ChangeSet())
        #expect(sink.batches.count == 1)
        journal.close()
    }

    @Test("no more than maxBatchesInFlight batches are outstanding; steps queued meanwhile share the next batch")
    func inFlightLimit() async throws {
        let sink = ScriptedSink(maxBatchesInFlight: 2)
        let journal = Self.journal(sink)
        let released = Released()
        _ = try await Self.enqueueSeparately(2, journal, sink, released)
        journal.enqueue(Self.changes(3), afterCommit: released.action(3))
        let last = journal.enqueue(Self.changes(4), afterCommit: released.action(4))
        try await Task.sleep(for: Self.settle)
        #expect(sink.batches.count == 2)
        sink.complete(0, .durable(sync: nil))
        try await eventually("the third batch is sent once the first is released") { sink.batches.count == 3 }
        #expect(sink.batches[2].changeSets == [Self.changes(3), Self.changes(4)])
        #expect(sink.batches[2].position.index == 44)
        sink.complete(1, .durable(sync: nil))
        sink.complete(2, .durable(sync: nil))
        await journal.waitUntilDurable(last)
        #expect(released.all == [1, 2, 3, 4])
        journal.close()
    }
}

/// A sink that loads nothing and fails every batch: a disk that broke before the start.
final class BrokenSink: JournalSink {
    struct Broken: Error {}
    let maxBatchesInFlight = 1
    func load() async throws -> LoadedState? { nil }
    func apply(_ batch: JournalBatch, completion: @escaping @Sendable (BatchOutcome) -> Void) { completion(.failed(Broken())) }
    func snapshot(to path: String) async throws -> LogPosition { .zero }
    func close() throws {}
}

@Suite("Boot on a broken sink")
struct BootFailureTests {
    @Test("a first tick that cannot be made durable is an error, not a server that serves")
    func brokenFirstTick() async throws {
        var options = Journal.Options()
        let reported = JournalOrderingTests.Failures()
        options.onFailure = { failure in reported.list.withLock { $0.append(failure) } }
        do {
            _ = try await Boot.open(sink: BrokenSink(), configuration: Harness.configuration(), at: .zero, options: options)
            Issue.record("Boot.open served from a start that is not recorded")
        } catch let failure as JournalFailure {
            #expect(failure.position == LogPosition(term: 0, index: 1))
            guard case .failed = failure.outcome else {
                Issue.record("outcome \(failure.outcome)")
                return
            }
        }
        #expect(reported.count == 1)
    }
}
