import Foundation
import LeaseholdCore
import LeaseholdMessages

/// A whole persisted image in one file: one `leasehold.journal.v1.Batch` message holding
/// the image as a single change set, at the position it reflects. The snapshot format of
/// the sinks that have no file of their own (memory, etcd); ``InMemorySink`` opens it.
public enum ImageFile {
    /// Writes `state` at `position` to `path`, replacing it atomically.
    public static func write(_ state: PersistentState, at position: LogPosition, to path: String) throws {
        let message = JournalBatch(position: position, changeSets: [state.changeSet]).message
        try Data(try message.serializedBytes() as [UInt8]).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// The image and position in the file at `path`.
    /// - Throws: a file error, a protobuf decoding error, or `invalidArgument` naming a row
    ///   that cannot be read.
    public static func read(_ path: String) throws -> LoadedState {
        let message = try Leasehold_Journal_V1_Batch(serializedBytes: try Data(contentsOf: URL(fileURLWithPath: path)))
        let batch = try JournalBatch(message: message)
        var state = PersistentState()
        for changes in batch.changeSets { state.apply(changes) }
        return LoadedState(state: state, position: batch.position)
    }
}
