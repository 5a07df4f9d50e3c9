import LeaseholdCore
import LeaseholdEtcd
import LeaseholdJournal
import LeaseholdMessages

/// How a standby tails the committed log (docs/cluster.md, "Standbys"): it applies
/// entries in index order and only committed ones. An entry is committed once its
/// `log/<index>` key exists: the guarded transaction writes it together with the head.
///
/// Lifecycle: ``catchUp(from:)`` brings an image up to the head, read at one revision
/// (from the checkpoint when the entries it needs were compacted), and returns that
/// revision; ``follow(after:from:apply:)``
/// then watches the log from the next revision and applies each entry as it commits,
/// until cancelled. A gap (an entry that is not the next index), an entry that does not
/// read, or history compacted below the revision asked for throws: the standby then
/// catches up again.
public struct LogFollower: Sendable {
    public let client: EtcdClient
    public let keys: ClusterKeys

    public init(client: EtcdClient, keys: ClusterKeys) {
        self.client = client
        self.keys = keys
    }

    /// The head now (or at store revision `at`): its position (`nil`: no log yet) and the
    /// store revision it was read at.
    public func head(at revision: Int64 = 0) async throws -> (position: LogPosition?, revision: Int64) {
        let head = try await LogReader(client: self.client, keys: self.keys).head(at: revision)
        return (head.position, head.revision)
    }

    /// The index of the checkpoint now (`nil`: none): an image below it cannot catch up
    /// from the log alone.
    public func checkpointIndex() async throws -> UInt64? {
        guard let kv = try await self.client.range(self.keys.checkpoint).kvs.first else { return nil }
        return try Leasehold_Cluster_V1_Checkpoint(serializedBytes: kv.value).index
    }

    /// The state at the head, read at one revision: `image` with the entries after it, or
    /// the checkpoint and the entries after it when the log `image` needs was compacted.
    /// - Returns: that state (`nil`: no log yet) and the revision it was read at.
    public func catchUp(from image: LoadedState?) async throws -> (state: LoadedState?, revision: Int64) {
        let caught = try await LogReader(client: self.client, keys: self.keys).catchUp(from: image)
        return (caught.state, caught.revision)
    }

    /// Watches the log after `position` from store revision `revision` + 1 and applies
    /// each committed entry in index order, until the task is cancelled.
    public func follow(after position: LogPosition, from revision: Int64, apply: (JournalBatch) async throws -> Void) async throws {
        let reader = LogReader(client: self.client, keys: self.keys)
        var applied = position
        let start = self.keys.prefix + "log/"
        for try await update in self.client.watch(start, end: self.keys.logEnd, from: revision + 1) {
            for event in update.events where event.kind == .put {
                guard let index = self.keys.index(ofLogKey: event.kv.key) else { continue }
                guard index == applied.index + 1 else {
                    throw EtcdSinkError("the log's next entry is \(index), after \(applied) applied here: a gap")
                }
                let batch = try await reader.batch(event.kv, expected: index, revision: event.kv.modRevision)
                try await apply(batch)
                applied = batch.position
            }
        }
    }
}
