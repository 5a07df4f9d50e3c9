import Foundation
import Crypto
import LeaseholdCore
import LeaseholdEtcd
import LeaseholdJournal
import LeaseholdMessages

/// Reads the log of a cluster from etcd at one revision: its head, then every entry up to
/// it in index order, each applied to the image of the one before.
struct LogReader {
    let client: EtcdClient
    let keys: ClusterKeys
    /// Entries read per request.
    var pageSize: Int64 = 64

    /// The head as etcd holds it now (or at store revision `at`): its position (`nil` when
    /// the cluster has no log yet), its mod revision, the store revision it was read at,
    /// and the log's bytes up to it (`LogHead.log_bytes`).
    func head(at revision: Int64 = 0) async throws -> (position: LogPosition?, modRevision: Int64, revision: Int64, logBytes: UInt64) {
        let range = try await self.client.range(self.keys.head, revision: revision)
        // etcd's header gives the store's current revision, not the one asked for.
        let readAt = revision == 0 ? range.revision : revision
        guard let kv = range.kvs.first else {
            // At the head's revision: a leader writing its first entry and the head since
            // then is not damage.
            let stray = try await self.client.range(self.keys.log(0), end: self.keys.logEnd, revision: readAt, limit: 1, keysOnly: true)
            if let key = stray.kvs.first?.key {
                throw EtcdSinkError("the log has entries (\(key)) but no head: the cluster's keys are damaged")
            }
            return (nil, 0, readAt, 0)
        }
        let head = try Leasehold_Cluster_V1_LogHead(serializedBytes: kv.value)
        return (LogPosition(term: head.term, index: head.index), kv.modRevision, readAt, head.logBytes)
    }

    /// The state at the head and the head's mod revision; `nil` and 0 when the cluster has
    /// no log yet.
    /// - Throws: an ``EtcdError``, or an ``EtcdSinkError`` naming the entry that does not
    ///   read back (missing, out of order, unreadable, parts that do not match).
    func read() async throws -> (LoadedState?, Int64) {
        let caught = try await self.catchUp(from: nil)
        return (caught.state, caught.headModRevision)
    }

    /// The state at the head, all read at one revision: `base` with the entries after it
    /// when they are all still in the log, otherwise the checkpoint with the entries after
    /// it. - Returns: the state (`nil`: no log yet), the head's mod revision, the store
    /// revision it was read at, and the log's bytes up to the head.
    func catchUp(from base: LoadedState?) async throws -> (state: LoadedState?, headModRevision: Int64, revision: Int64, headLogBytes: UInt64) {
        let head = try await self.head()
        guard let position = head.position else {
            if let base, base.position != .zero {
                throw EtcdSinkError("this node applied the log to \(base.position), but etcd holds no log: etcd was wiped or restored")
            }
            return (nil, 0, head.revision, 0)
        }
        let checkpoint = try await self.checkpoint(at: head.revision)
        var state: LoadedState
        if let base, base.position.index >= (checkpoint?.position.index ?? 0) {
            state = base
        } else if let checkpoint {
            state = checkpoint
        } else {
            state = LoadedState(state: PersistentState(), position: .zero)
        }
        guard position.index >= state.position.index else {
            throw EtcdSinkError("this node applied the log to \(state.position), past etcd's head \(position): etcd was wiped or restored")
        }
        try await self.entries(after: state.position, through: position, at: head.revision) { batch in
            for changes in batch.changeSets { state.state.apply(changes) }
        }
        state.position = position
        return (state, head.modRevision, head.revision, head.logBytes)
    }

    /// The checkpoint as etcd held it at `revision`, if there is one.
    func checkpoint(at revision: Int64) async throws -> LoadedState? {
        guard let kv = try await self.client.range(self.keys.checkpoint, revision: revision).kvs.first else { return nil }
        let checkpoint = try Leasehold_Cluster_V1_Checkpoint(serializedBytes: kv.value)
        guard checkpoint.format >= 1 && checkpoint.format <= 1 else {
            throw EtcdSinkError("the checkpoint has format \(checkpoint.format), which this version does not read (1)")
        }
        let prefix = self.keys.checkpointParts(checkpoint.index, writer: checkpoint.writer)
        let range = try await self.client.range(prefix, end: etcdPrefixEnd(prefix), revision: revision)
        let bytes = range.kvs.flatMap(\.value)
        guard range.kvs.count == Int(checkpoint.parts.count), bytes.count == Int(checkpoint.parts.size),
            Data(SHA256.hash(data: bytes)) == checkpoint.parts.sha256
        else {
            throw EtcdSinkError("the checkpoint at \(checkpoint.index) lists \(checkpoint.parts.count) parts of \(checkpoint.parts.size) bytes; etcd holds \(range.kvs.count) of \(bytes.count) bytes that do not match its digest")
        }
        let batch = try JournalBatch(message: try Leasehold_Journal_V1_Batch(serializedBytes: bytes))
        guard batch.position == LogPosition(term: checkpoint.term, index: checkpoint.index) else {
            throw EtcdSinkError("the checkpoint at \(checkpoint.term):\(checkpoint.index) holds the image of \(batch.position)")
        }
        var state = PersistentState()
        for changes in batch.changeSets { state.apply(changes) }
        return LoadedState(state: state, position: batch.position)
    }

    /// Calls `apply` with every batch after `start` up to `head`, in index order, as etcd
    /// held them at `revision`.
    func entries(after start: LogPosition, through head: LogPosition, at revision: Int64, _ apply: (JournalBatch) throws -> Void) async throws {
        var position = start
        var from = self.keys.log(start.index + 1)
        while position.index < head.index {
            let page = try await self.client.range(from, end: self.keys.logEnd, revision: revision, limit: self.pageSize)
            guard !page.kvs.isEmpty else { break }
            for kv in page.kvs where position.index < head.index {
                let batch = try await self.batch(kv, expected: position.index + 1, revision: revision)
                try apply(batch)
                position = batch.position
            }
            guard page.more, let lastKey = page.kvs.last?.key else { break }
            from = lastKey + "\0"
        }
        guard position == head else {
            throw EtcdSinkError("the log ends at \(position) but its head says \(head)")
        }
    }

    /// The batch an entry holds, its parts read at `revision` when it has them.
    func batch(_ kv: EtcdKeyValue, expected index: UInt64, revision: Int64) async throws -> JournalBatch {
        guard self.keys.index(ofLogKey: kv.key) == index else {
            throw EtcdSinkError("log entry \(index) is missing (the next key is \(kv.key))")
        }
        let entry = try Leasehold_Cluster_V1_LogEntry(serializedBytes: kv.value)
        guard entry.format >= 1 && entry.format <= 1 else {
            throw EtcdSinkError("log entry \(index) has format \(entry.format), which this version does not read (1)")
        }
        guard entry.index == index else { throw EtcdSinkError("the entry at log key \(index) says index \(entry.index)") }
        let bytes: [UInt8]
        switch entry.body {
        case .batch(let inline):
            bytes = Array(inline)
        case .parts(let parts):
            let prefix = self.keys.parts(index, term: entry.term)
            let range = try await self.client.range(prefix, end: etcdPrefixEnd(prefix), revision: revision)
            bytes = range.kvs.flatMap(\.value)
            guard range.kvs.count == Int(parts.count), bytes.count == Int(parts.size), Data(SHA256.hash(data: bytes)) == parts.sha256 else {
                throw EtcdSinkError("log entry \(index) lists \(parts.count) parts of \(parts.size) bytes; etcd holds \(range.kvs.count) of \(bytes.count) bytes that do not match its digest")
            }
        case nil:
            throw EtcdSinkError("log entry \(index) holds no batch")
        }
        let batch = try JournalBatch(message: try Leasehold_Journal_V1_Batch(serializedBytes: bytes))
        guard batch.position == LogPosition(term: entry.term, index: entry.index) else {
            throw EtcdSinkError("log entry \(entry.term):\(index) holds batch \(batch.position)")
        }
        return batch
    }
}
