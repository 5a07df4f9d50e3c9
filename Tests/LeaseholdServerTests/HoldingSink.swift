import LeaseholdCore
import LeaseholdJournal
import Synchronization

/// A sink in front of an ``InMemorySink`` that can hold batches back: while holding, a
/// batch is neither durable nor answered, as a write to a slow or lost disk or log would
/// be. ``loseHeld()`` answers the held batches `deposed` without writing them: the
/// leader (or the process) died before they were durable, and a new leader starts from
/// what the inner sink holds.
final class HoldingSink: JournalSink {
    struct Held {
        var batch: JournalBatch
        var completion: @Sendable (BatchOutcome) -> Void
    }

    struct State {
        var holding = false
        var held: [Held] = []
    }

    let inner: InMemorySink
    private let state = Mutex(State())

    init(_ inner: InMemorySink = InMemorySink()) {
        self.inner = inner
    }

    var maxBatchesInFlight: Int { self.inner.maxBatchesInFlight }

    func load() async throws -> LoadedState? { try await self.inner.load() }

    func apply(_ batch: JournalBatch, completion: @escaping @Sendable (BatchOutcome) -> Void) {
        let forward = self.state.withLock { state -> Bool in
            guard state.holding else { return true }
            state.held.append(Held(batch: batch, completion: completion))
            return false
        }
        if forward { self.inner.apply(batch, completion: completion) }
    }

    func snapshot(to path: String) async throws -> LogPosition { try await self.inner.snapshot(to: path) }

    func close() throws { try self.inner.close() }

    /// Holds every batch from now on.
    func hold() { self.state.withLock { $0.holding = true } }

    /// Batches held so far.
    var heldCount: Int { self.state.withLock { $0.held.count } }

    /// Answers every held batch `deposed`, writing none, and stops holding.
    func loseHeld() {
        let held = self.state.withLock { state -> [Held] in
            state.holding = false
            defer { state.held.removeAll() }
            return state.held
        }
        for entry in held { entry.completion(.deposed("test: this node was lost before the batch was durable")) }
    }
}
