import LeaseholdCore
import LeaseholdJournal
import Synchronization

/// A sink whose outcomes the test decides: every batch waits until the test completes it,
/// in any order, with any outcome.
final class ScriptedSink: JournalSink {
    struct Received {
        var batch: JournalBatch
        var completion: @Sendable (BatchOutcome) -> Void
    }

    let maxBatchesInFlight: Int
    private let received = Mutex<[Received]>([])
    private let answered = Mutex<Set<Int>>([])

    init(maxBatchesInFlight: Int) {
        self.maxBatchesInFlight = maxBatchesInFlight
    }

    func load() async throws -> LoadedState? { nil }

    func apply(_ batch: JournalBatch, completion: @escaping @Sendable (BatchOutcome) -> Void) {
        self.received.withLock { $0.append(Received(batch: batch, completion: completion)) }
    }

    func snapshot(to path: String) async throws -> LogPosition { .zero }

    func close() throws {}

    /// Every batch handed over so far, resends included, in the order they came.
    var batches: [JournalBatch] { self.received.withLock { $0.map(\.batch) } }

    /// Completes the `number`th call of `apply` (0-based) with `outcome`.
    func complete(_ number: Int, _ outcome: BatchOutcome) {
        let first = self.answered.withLock { $0.insert(number).inserted }
        precondition(first, "call \(number) was completed already")
        let completion = self.received.withLock { $0[number].completion }
        completion(outcome)
    }
}
