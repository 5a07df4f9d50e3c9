import Foundation
import Crypto
import DequeModule
import LeaseholdCore
import LeaseholdEtcd
import LeaseholdJournal
import LeaseholdMessages
import Synchronization

/// The journal's durable sink in cluster mode: a log of entries in etcd, each written in a
/// transaction that holds only while this node's leader key still has the create revision
/// of its term (docs/cluster.md, "Writing the log" and "Safety argument").
///
/// Lifecycle of a batch: ``apply(_:completion:)`` queues it; one sender at a time takes
/// every batch queued (up to the limits of one request) into one guarded transaction;
/// its outcome is settled from what the transaction's failure branch read, and the
/// completions are called in batch order. A batch too large for one request is written
/// as parts first, alone in its transaction. Once an outcome is `deposed`, `failed` or a
/// retryable one, every batch queued behind gets the same outcome: nothing behind a batch
/// that is not durable is sent, and the journal resends in order.
public final class EtcdSink: JournalSink {
    /// The leader key this sink writes under and its create revision, the term.
    public struct Leadership: Sendable, Hashable {
        public var key: String
        public var term: UInt64

        public init(key: String, term: UInt64) {
            self.key = key
            self.term = term
        }
    }

    /// Limits of one transaction: etcd's defaults are 128 operations and 1.5 MiB a
    /// request; an entry's bytes travel raw inside etcd, base64 in the JSON in front of it.
    public struct Limits: Sendable {
        public var operations = 120
        public var bytes = 1 << 20
        /// An entry larger than this is written as parts of this size.
        public var partBytes = 512 << 10

        public init() {}
    }

    struct Pending {
        var batch: JournalBatch
        var completion: @Sendable (BatchOutcome) -> Void
    }

    /// A batch encoded as the value of its `log/` key, with the parts written before it.
    struct Encoded {
        var pending: Pending
        var entry: [UInt8]
        var parts: [[UInt8]]
        /// What it adds to the log's size (`LogHead.log_bytes`).
        var bytes: UInt64 { UInt64(self.entry.count) + self.parts.reduce(0) { $0 + UInt64($1.count) } }
    }

    /// The head of the log as this sink last saw it: its index and its mod revision (0:
    /// no head yet). Every guarded write compares the revision, so while a write holds,
    /// the index is right too.
    struct KnownHead: Sendable {
        var index: UInt64
        var revision: Int64
        /// `LogHead.log_bytes`: the next head adds what its transaction writes.
        var logBytes: UInt64
    }

    struct State {
        var queue: Deque<Pending> = []
        var sending = false
        var closed = false
        /// `head` as this sink last wrote or read it; `nil` until then.
        var head: KnownHead?
    }

    public let maxBatchesInFlight: Int
    public let keys: ClusterKeys
    public let leadership: Leadership?
    /// The state a standby already applied, so that loading reads only the log after it.
    let startingFrom: LoadedState?
    public let client: EtcdClient
    let limits: Limits
    private let state = Mutex(State())

    /// - Parameters:
    ///   - leadership: the leader key and term to write under; `nil` for a sink that only
    ///     loads and takes snapshots (a standby's view of the log).
    ///   - startingFrom: what this node already applied of the log (a standby taking
    ///     over): ``load()`` reads only the entries after it, up to the head.
    public init(
        client: EtcdClient, keys: ClusterKeys, leadership: Leadership?, startingFrom: LoadedState? = nil, maxBatchesInFlight: Int = 8,
        limits: Limits = Limits()
    ) {
        self.startingFrom = startingFrom
        self.client = client
        self.keys = keys
        self.leadership = leadership
        self.maxBatchesInFlight = maxBatchesInFlight
        self.limits = limits
    }

    // MARK: - Loading

    /// The index of the last entry this sink knows durable (0 before ``load()``).
    public var durableIndex: UInt64 { self.state.withLock { $0.head?.index ?? 0 } }

    public func load() async throws -> LoadedState? {
        let caught = try await LogReader(client: self.client, keys: self.keys).catchUp(from: self.startingFrom)
        self.state.withLock {
            $0.closed = false
            $0.head = KnownHead(index: caught.state?.position.index ?? 0, revision: caught.headModRevision, logBytes: caught.headLogBytes)
        }
        return caught.state
    }

    public func snapshot(to path: String) async throws -> LogPosition {
        let (loaded, _) = try await LogReader(client: self.client, keys: self.keys).read()
        let image = loaded ?? LoadedState(state: PersistentState(), position: .zero)
        try ImageFile.write(image.state, at: image.position, to: path)
        return image.position
    }

    public func close() throws {
        self.state.withLock { $0.closed = true }
    }

    // MARK: - Writing

    public func apply(_ batch: JournalBatch, completion: @escaping @Sendable (BatchOutcome) -> Void) {
        let start = self.state.withLock { state -> Bool in
            state.queue.append(Pending(batch: batch, completion: completion))
            guard !state.sending else { return false }
            state.sending = true
            return true
        }
        if start { Task { await self.drain() } }
    }

    /// Sends what is queued until nothing is.
    private func drain() async {
        while true {
            let next = self.state.withLock { state -> (group: [Pending], closed: Bool, head: KnownHead?)? in
                guard !state.queue.isEmpty else {
                    state.sending = false
                    return nil
                }
                let group = Array(state.queue.prefix(self.limits.operations - 1))
                state.queue.removeFirst(group.count)
                return (group, state.closed, state.head)
            }
            guard let next else { return }
            if next.closed {
                self.stop(next.group[...], .failed(EtcdSinkError("the etcd journal sink is closed")))
            } else if let leadership = self.leadership {
                await self.write(next.group, leadership: leadership, head: next.head)
            } else {
                self.stop(next.group[...], .failed(EtcdSinkError("this etcd journal sink has no leadership to write under")))
            }
        }
    }

    /// Completes `pending` and everything queued behind it with `outcome`, which is not
    /// `durable`: nothing behind a batch that is not durable is sent.
    private func stop(_ pending: ArraySlice<Pending>, _ outcome: BatchOutcome) {
        let rest = self.state.withLock { state in
            let all = Array(state.queue)
            state.queue.removeAll()
            return all
        }
        for item in pending { item.completion(outcome) }
        for item in rest { item.completion(outcome) }
    }

    /// Writes `group` in as few guarded transactions as the limits allow, in order.
    private func write(_ group: [Pending], leadership: Leadership, head known: KnownHead?) async {
        var encoded: [Encoded] = []
        do {
            for pending in group {
                guard pending.batch.position.term == leadership.term else {
                    throw EtcdSinkError("batch \(pending.batch.position) handed to the sink of term \(leadership.term)")
                }
                encoded.append(try self.encode(pending))
            }
        } catch {
            self.stop(group[...], .failed(error))
            return
        }
        var head = known
        var rest = encoded[...]
        while !rest.isEmpty {
            // One transaction: an entry with parts alone, otherwise entries up to the byte
            // limit (at least one).
            var count = 1
            var bytes = rest.first!.entry.count
            if rest.first!.parts.isEmpty {
                for item in rest.dropFirst() {
                    guard item.parts.isEmpty, bytes + item.entry.count <= self.limits.bytes else { break }
                    bytes += item.entry.count
                    count += 1
                }
            }
            let chunk = rest.prefix(count)
            let (written, stopped) = await self.send(chunk, leadership: leadership, head: &head)
            if let stopped {
                self.stop(chunk.dropFirst(written).map(\.pending)[...] + rest.dropFirst(count).map(\.pending), stopped)
                return
            }
            rest = rest.dropFirst(count)
        }
    }

    private func encode(_ pending: Pending) throws -> Encoded {
        // One change set with the batch's net effect: the log carries each key's last
        // write and one drop of the event history, not every step's.
        let net = JournalBatch(position: pending.batch.position, changeSets: [ChangeSet.coalescing(pending.batch.changeSets)])
        let batch = try net.message.serializedBytes() as [UInt8]
        var entry = Leasehold_Cluster_V1_LogEntry()
        entry.format = 1
        entry.term = pending.batch.position.term
        entry.index = pending.batch.position.index
        entry.writtenUnixMs = Int64(Date().timeIntervalSince1970 * 1_000)
        var parts: [[UInt8]] = []
        if batch.count <= self.limits.partBytes {
            entry.batch = Data(batch)
        } else {
            var offset = 0
            while offset < batch.count {
                let end = min(offset + self.limits.partBytes, batch.count)
                parts.append(Array(batch[offset..<end]))
                offset = end
            }
            var list = Leasehold_Cluster_V1_Parts()
            list.count = UInt32(parts.count)
            list.size = UInt64(batch.count)
            list.sha256 = Data(SHA256.hash(data: batch))
            entry.parts = list
        }
        return Encoded(pending: pending, entry: try entry.serializedBytes(), parts: parts)
    }

    /// One guarded transaction for `chunk`, settled from its failure branch; completes the
    /// batches it made durable, in order.
    /// - Returns: how many batches of `chunk` were completed, and the outcome that stopped
    ///   the rest (`nil` when all are durable).
    private func send(_ chunk: ArraySlice<Encoded>, leadership: Leadership, head: inout KnownHead?) async -> (Int, BatchOutcome?) {
        let guardLeader = EtcdCompare.createRevision(leadership.key, equals: Int64(leadership.term))
        let readBack: [EtcdOperation] = [.range(leadership.key), .range(self.keys.head)]
        let started = ContinuousClock.now
        var rest = chunk
        do {
            for item in chunk where !item.parts.isEmpty {
                for (k, part) in item.parts.enumerated() {
                    let key = self.keys.part(item.pending.batch.position.index, term: leadership.term, k)
                    let result = try await self.client.txn([guardLeader], success: [.put(key, part)], failure: [.range(leadership.key)])
                    guard result.succeeded else { return (0, .deposed(self.deposedReason(leadership, found: result.ranges.first?.kvs.first))) }
                }
            }
            // Each round writes, or learns from the leader key and the head how much of the
            // chunk the log already holds (an earlier attempt whose answer was lost) and
            // whether the rest may follow. The head moves under this sink only by its own
            // writes, so three rounds settle it.
            for _ in 0..<3 {
                let first = rest.first!.pending.batch.position
                let last = rest.last!.pending.batch.position
                let result: EtcdTxnResult
                if let known = head, known.index + 1 == first.index {
                    var value = Leasehold_Cluster_V1_LogHead()
                    value.term = last.term
                    value.index = last.index
                    value.logBytes = known.logBytes + rest.reduce(0) { $0 + $1.bytes }
                    var success = rest.map { EtcdOperation.put(self.keys.log($0.pending.batch.position.index), $0.entry) }
                    success.append(.put(self.keys.head, try value.serializedBytes()))
                    result = try await self.client.txn(
                        [guardLeader, .modRevision(self.keys.head, equals: known.revision)], success: success, failure: readBack
                    )
                    if result.succeeded {
                        head = KnownHead(index: last.index, revision: result.revision, logBytes: value.logBytes)
                        self.state.withLock { $0.head = head }
                        let sync = ContinuousClock.now - started
                        for item in rest { item.pending.completion(.durable(sync: sync)) }
                        return (chunk.count, nil)
                    }
                } else {
                    // Not right after the head this sink knows (a resend, a gap, a first
                    // write): read the leader key and the head in one consistent read.
                    result = try await self.client.txn([], success: readBack, failure: [])
                }
                let settled = try self.settle(result.ranges, first: first, last: last, leadership: leadership)
                head = settled.head
                self.state.withLock { $0.head = settled.head }
                let durable = rest.prefix { $0.pending.batch.position.index <= settled.durableThrough }
                for item in durable { item.pending.completion(.durable(sync: nil)) }
                rest = rest.dropFirst(durable.count)
                if let stopped = settled.stopped { return (chunk.count - rest.count, stopped) }
                if rest.isEmpty { return (chunk.count, nil) }
            }
            return (chunk.count - rest.count, .unknown("the log's head kept moving under this writer"))
        } catch let error as EtcdError {
            return (chunk.count - rest.count, Self.outcome(of: error))
        } catch {
            return (chunk.count - rest.count, .failed(error))
        }
    }

    /// What the leader key and the head say about a chunk from `first` to `last`: the
    /// index up to which the log already holds this writer's batches, the head to write
    /// after next, and the outcome that stops the rest, if any.
    struct Settled {
        var durableThrough: UInt64
        var head: KnownHead
        var stopped: BatchOutcome?
    }

    /// - Parameter ranges: the leader key, then the head, read together.
    func settle(_ ranges: [EtcdRange], first: LogPosition, last: LogPosition, leadership: Leadership) throws -> Settled {
        guard ranges.count == 2 else { throw EtcdSinkError("a read of the leader key and the head returned \(ranges.count) ranges, not 2") }
        let headKV = ranges[1].kvs.first
        let value = try headKV.map { try Leasehold_Cluster_V1_LogHead(serializedBytes: $0.value) }
        let head = KnownHead(index: value?.index ?? 0, revision: headKV?.modRevision ?? 0, logBytes: value?.logBytes ?? 0)
        let leader = ranges[0].kvs.first
        guard let leader, leader.createRevision == Int64(leadership.term) else {
            return Settled(durableThrough: 0, head: head, stopped: .deposed(self.deposedReason(leadership, found: leader)))
        }
        if head.index + 1 < first.index {
            return Settled(durableThrough: 0, head: head, stopped: .outOfOrder(expected: LogPosition(term: leadership.term, index: head.index + 1)))
        }
        if head.index >= first.index && value?.term != leadership.term {
            let stopped = BatchOutcome.failed(
                EtcdSinkError("the log holds \(value?.term ?? 0):\(head.index), at or past batch \(first) of term \(leadership.term): this writer started behind the log")
            )
            return Settled(durableThrough: 0, head: head, stopped: stopped)
        }
        return Settled(durableThrough: min(head.index, last.index), head: head, stopped: nil)
    }

    private func deposedReason(_ leadership: Leadership, found: EtcdKeyValue? = nil) -> String {
        if let found {
            return "leader key \(leadership.key) has create revision \(found.createRevision), not term \(leadership.term)"
        }
        return "leader key \(leadership.key) of term \(leadership.term) is gone (its lease expired or was revoked)"
    }

    /// The journal's outcome for a request that got no answer.
    static func outcome(of error: EtcdError) -> BatchOutcome {
        switch error.kind {
        case .unreachable: .unavailable(error.description)
        case .uncertain: .unknown(error.description)
        case .unavailable: error.mayHaveWritten ? .unknown(error.description) : .unavailable(error.description)
        case .refused, .malformed: .failed(error)
        }
    }
}

/// A use of the etcd sink that cannot work (closed, no leadership, a log that does not
/// read back).
public struct EtcdSinkError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}
