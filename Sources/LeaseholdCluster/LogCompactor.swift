import Crypto
import Foundation
import LeaseholdCore
import LeaseholdEtcd
import LeaseholdJournal
import LeaseholdMessages

/// Keeps the log bounded (docs/cluster.md, "Compaction"): the leader writes the state at
/// a committed position as the checkpoint, deletes the entries (and their parts) it
/// replaces in the same guarded transaction, and compacts etcd's history up to it.
///
/// Lifecycle of one ``compact(minimumEntries:)``: read the checkpoint and the entries
/// after it at one revision; if at least `minimumEntries` entries follow the checkpoint,
/// write the new image's parts, then one transaction guarded by this node's leader key
/// puts `checkpoint` and deletes what it replaces; then etcd's `Compact` at that
/// transaction's revision. A standby whose watch falls below the compacted revision, or
/// whose image is behind the checkpoint, catches up from the checkpoint. A deposed leader
/// compacts nothing: its transaction fails its compare.
public struct LogCompactor: Sendable {
    public let client: EtcdClient
    public let keys: ClusterKeys
    public let leadership: EtcdSink.Leadership
    var partBytes = 512 << 10

    public init(client: EtcdClient, keys: ClusterKeys, leadership: EtcdSink.Leadership) {
        self.client = client
        self.keys = keys
        self.leadership = leadership
    }

    /// - Returns: the position of the checkpoint written, `nil` when fewer than
    ///   `minimumEntries` entries follow the current one.
    /// - Throws: an ``EtcdError``, an ``EtcdSinkError`` (the log does not read back), or a
    ///   ``LeaderElectionError`` when this node no longer leads.
    @discardableResult
    public func compact(minimumEntries: UInt64) async throws -> LogPosition? {
        try await self.compact { $0.entries >= minimumEntries && $0.entries > 0 }
    }

    /// Writes a checkpoint when `due` says so, given the log after the current one
    /// (``CompactionPolicy/Tail``: its entries, bytes and the age of its oldest entry).
    /// - Parameter now: the wall clock, milliseconds since 1970, that ages are measured by.
    /// - Returns: the position of the checkpoint written, `nil` when it was not due.
    @discardableResult
    public func compact(now: Int64 = Int64(Date().timeIntervalSince1970 * 1_000), when due: (CompactionPolicy.Tail) -> Bool) async throws -> LogPosition? {
        let reader = LogReader(client: self.client, keys: self.keys)
        let head = try await reader.head()
        guard let headPosition = head.position else { return nil }
        let current = try await self.client.range(self.keys.checkpoint, revision: head.revision).kvs.first
            .map { try Leasehold_Cluster_V1_Checkpoint(serializedBytes: $0.value) }
        let base = current?.index ?? 0
        let entries = headPosition.index > base ? headPosition.index - base : 0
        var age: Duration?
        if entries > 0, let oldest = try await self.client.range(self.keys.log(base + 1), end: self.keys.logEnd, revision: head.revision, limit: 1).kvs.first {
            let written = try Leasehold_Cluster_V1_LogEntry(serializedBytes: oldest.value).writtenUnixMs
            if written > 0 { age = .milliseconds(Swift.max(0, now - written)) }
        }
        let bytes = head.logBytes > (current?.logBytes ?? 0) ? head.logBytes - (current?.logBytes ?? 0) : 0
        guard due(CompactionPolicy.Tail(entries: entries, bytes: bytes, age: age)) else { return nil }
        let caught = try await reader.catchUp(from: nil)
        guard let image = caught.state else { return nil }

        let guardLeader = EtcdCompare.createRevision(self.leadership.key, equals: Int64(self.leadership.term))
        var checkpoint = try await Self.writeParts(of: image, client: self.client, keys: self.keys, guard: guardLeader, partBytes: self.partBytes) {
            LeaderElectionError("no longer the leader of term \(self.leadership.term): compaction stopped")
        }
        checkpoint.logBytes = caught.headLogBytes
        let log = self.keys.logRange(through: image.position.index)
        let parts = self.keys.partsRange(through: image.position.index)
        var operations: [EtcdOperation] = [
            .put(self.keys.checkpoint, try checkpoint.serializedBytes()), .delete(log.start, end: log.end), .delete(parts.start, end: parts.end),
        ]
        // Every other checkpoint's parts: the one replaced, and any an interrupted attempt
        // left behind.
        let all = self.keys.checkpointPartsAll
        let mine = self.keys.checkpointParts(image.position.index, writer: checkpoint.writer)
        operations.append(.delete(all.start, end: mine))
        operations.append(.delete(etcdPrefixEnd(mine), end: all.end))
        let result = try await self.client.txn([guardLeader], success: operations, failure: [])
        guard result.succeeded else {
            // Nothing names these parts: remove them (the next checkpoint would anyway).
            _ = try? await self.client.delete(mine, end: etcdPrefixEnd(mine))
            throw LeaderElectionError("no longer the leader of term \(self.leadership.term): compaction stopped")
        }
        try await self.client.compact(revision: result.revision)
        return image.position
    }

    /// Writes `image` as the parts of a checkpoint, each put guarded by `compare`, under a
    /// new writer token (another attempt at the same index writes under its own).
    /// - Returns: the checkpoint message naming them, for the caller's final transaction.
    /// - Throws: `refused()` when the guard fails, or an ``EtcdError``.
    static func writeParts(
        of image: LoadedState, client: EtcdClient, keys: ClusterKeys, guard compare: EtcdCompare, partBytes: Int, refused: () -> any Error
    ) async throws -> Leasehold_Cluster_V1_Checkpoint {
        let bytes = try JournalBatch(position: image.position, changeSets: [image.state.changeSet]).message.serializedBytes() as [UInt8]
        let writer = ClusterKeys.newWriter()
        var count = 0
        var offset = 0
        while offset < bytes.count || count == 0 {
            let end = min(offset + partBytes, bytes.count)
            let key = keys.checkpointPart(image.position.index, writer: writer, count)
            let result = try await client.txn([compare], success: [.put(key, Array(bytes[offset..<end]))], failure: [])
            guard result.succeeded else {
                // Nothing names this writer's parts: remove those written (best effort;
                // the next checkpoint removes every part but its own anyway).
                let mine = keys.checkpointParts(image.position.index, writer: writer)
                _ = try? await client.delete(mine, end: etcdPrefixEnd(mine))
                throw refused()
            }
            offset = end
            count += 1
        }
        var checkpoint = Leasehold_Cluster_V1_Checkpoint()
        checkpoint.format = 1
        checkpoint.term = image.position.term
        checkpoint.index = image.position.index
        checkpoint.writer = writer
        checkpoint.parts.count = UInt32(count)
        checkpoint.parts.size = UInt64(bytes.count)
        checkpoint.parts.sha256 = Data(SHA256.hash(data: bytes))
        return checkpoint
    }
}
