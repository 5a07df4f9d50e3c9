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

    /// The head as etcd holds it now: its position (`nil` when the cluster has no log
    /// yet), its mod revision, and the store revision it was read at.
    func head() async throws -> (position: LogPosition?, modRevision: Int64, revision: Int64) {
        let range = try await self.client.range(self.keys.head)
        guard let kv = range.kvs.first else {
            let stray = try await self.client.range(self.keys.log(0), end: self.keys.logEnd, limit: 1, keysOnly: true)
            if let key = stray.kvs.first?.key {
                throw EtcdSinkError("the log has entries (\(key)) but no head: the cluster's keys are damaged")
            }
            return (nil, 0, range.revision)
        }
        let head = try Leasehold_Cluster_V1_LogHead(serializedBytes: kv.value)
        return (LogPosition(term: head.term, index: head.index), kv.modRevision, range.revision)
    }

    /// The state at the head and the head's mod revision; `nil` and 0 when the cluster has
    /// no log yet.
    /// - Throws: an ``EtcdError``, or an ``EtcdSinkError`` naming the entry that does not
    ///   read back (missing, out of order, unreadable, parts that do not match).
    func read() async throws -> (LoadedState?, Int64) {
        let head = try await self.head()
        guard let position = head.position else { return (nil, 0) }
        var state = PersistentState()
        try await self.entries(after: .zero, through: position, at: head.revision) { batch in
            for changes in batch.changeSets { state.apply(changes) }
        }
        return (LoadedState(state: state, position: position), head.modRevision)
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
