import LeaseholdCore
import LeaseholdMessages
import Synchronization

/// A journal sink in memory: the persisted image as a ``PersistentState``, for tests that
/// need no disk and as the reference the other sinks are checked against.
///
/// It keeps the image across "restarts" as long as the object lives: a test that starts
/// a second server on the same sink sees the first one's durable state, as a restart on
/// the same data directory would. Closing refuses batches (`failed`) until the sink is
/// loaded again, as a closed file would. A snapshot is an ``ImageFile``;
/// ``init(contentsOf:maxBatchesInFlight:)`` opens it.
public final class InMemorySink: JournalSink {
    struct State {
        var image = PersistentState()
        var position = LogPosition.zero
        var closed = false
    }

    public let maxBatchesInFlight: Int
    private let state = Mutex(State())

    /// An empty sink (a first start).
    public init(maxBatchesInFlight: Int = 1) {
        self.maxBatchesInFlight = maxBatchesInFlight
    }

    /// The sink a snapshot file describes.
    /// - Throws: a file error, a protobuf decoding error, or `invalidArgument` naming a
    ///   row that cannot be read.
    public convenience init(contentsOf path: String, maxBatchesInFlight: Int = 1) throws {
        self.init(maxBatchesInFlight: maxBatchesInFlight)
        let loaded = try ImageFile.read(path)
        self.state.withLock { state in
            state.image = loaded.state
            state.position = loaded.position
        }
    }

    public func load() async throws -> LoadedState? {
        self.state.withLock { state in
            state.closed = false
            return state.image.volume == nil ? nil : LoadedState(state: state.image, position: state.position)
        }
    }

    public func apply(_ batch: JournalBatch, completion: @escaping @Sendable (BatchOutcome) -> Void) {
        let outcome = self.state.withLock { state -> BatchOutcome in
            guard !state.closed else { return .failed(InMemorySinkClosed()) }
            if batch.position.index <= state.position.index {
                // A resend of a batch already applied.
                return .durable(sync: nil)
            }
            guard batch.position.index == state.position.index + 1 else {
                return .outOfOrder(expected: state.position.next(term: batch.position.term))
            }
            for changes in batch.changeSets { state.image.apply(changes) }
            state.position = batch.position
            return .durable(sync: nil)
        }
        completion(outcome)
    }

    public func snapshot(to path: String) async throws -> LogPosition {
        let (image, position) = self.state.withLock { ($0.image, $0.position) }
        try ImageFile.write(image, at: position, to: path)
        return position
    }

    public func close() throws {
        self.state.withLock { $0.closed = true }
    }
}

/// A batch handed to an ``InMemorySink`` after ``InMemorySink/close()``.
public struct InMemorySinkClosed: Error, CustomStringConvertible {
    public var description: String { "the in-memory journal sink is closed" }
}
