import Foundation
import LeaseholdCore
import LeaseholdJournal

// MARK: - The SQLite file as a journal sink
//
// The embedded default. One batch in flight: `apply` runs the batch's transaction on the
// journal's writer thread (BEGIN IMMEDIATE, every row, the journal position, COMMIT with
// `synchronous = FULL`) and completes before returning, so a commit is one fsync and group
// commit works as before. A batch at or below the position the file holds is already
// durable (a resend); one above the next position is out of order and writes nothing. A
// failed transaction is `failed` (fail-stop): there is no other writer to be deposed by
// and no network to be unavailable. `load` and `snapshot` run off the cooperative pool.

extension Store: JournalSink {
    public var maxBatchesInFlight: Int { 1 }

    public func load() async throws -> LoadedState? {
        try await Self.offPool {
            guard try self.hasVolume() else { return nil }
            return LoadedState(state: try self.loadState(), position: try self.position())
        }
    }

    public func apply(_ batch: JournalBatch, completion: @escaping @Sendable (BatchOutcome) -> Void) {
        do {
            let written = try self.position()
            if batch.position.index <= written.index {
                completion(.durable(sync: nil))
                return
            }
            guard batch.position.index == written.index + 1 else {
                completion(.outOfOrder(expected: written.next(term: batch.position.term)))
                return
            }
            let sync = try self.apply(batch.changeSets, position: batch.position)
            completion(.durable(sync: sync))
        } catch {
            completion(.failed(error))
        }
    }

    public func snapshot(to path: String) async throws -> LogPosition {
        try await Self.offPool { try self.backup(to: path) }
    }

    /// Runs blocking database work on a Dispatch thread.
    public static func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }
}
