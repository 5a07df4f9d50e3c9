import Foundation
import LeaseholdCore
import Logging
import Synchronization

/// Group commit of the Coordinator's change sets.
///
/// Lifecycle of a change set: the Coordinator's owner `enqueue`s it in step order and
/// gets a sequence number; every change set queued while a transaction is committing
/// goes into the next transaction; when that transaction is durable (WAL, `synchronous =
/// FULL`), every waiter up to its last sequence is resumed, and only then may replies and
/// callbacks of those steps go out. There is no timer delay: a lone client sees one
/// commit's latency and many clients share each fsync. An empty change set (a step that
/// changed nothing, such as a retransmission answered from the slot cache) is a barrier:
/// it is durable when everything queued before it is.
///
/// The writer is a dedicated thread, so the fsync never blocks a Swift concurrency
/// thread. A failed commit stops the process (fail-stop): memory would be ahead of disk.
public final class Journal: Sendable {
    struct State {
        var queue: [Entry] = []
        var lastQueued: UInt64 = 0
        var lastDurable: UInt64 = 0
        var waiters: [(sequence: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
        var stopping = false
        var transactions: UInt64 = 0
        var changeSets: UInt64 = 0
    }

    struct Entry {
        var sequence: UInt64
        var changes: ChangeSet
        var afterCommit: (@Sendable () -> Void)?
    }

    /// One committed transaction, as ``init(store:logger:onCommit:onFailure:)`` reports it.
    public struct Commit: Sendable {
        /// Change sets (steps) it made durable, barriers included.
        public var changeSets: Int
        /// Rows written.
        public var rows: Int
        /// From `BEGIN` to durable.
        public var duration: Duration
        /// The `COMMIT` alone: the WAL append and its fsync.
        public var sync: Duration
    }

    /// Figures for benchmarks and metrics.
    public struct Statistics: Sendable, Equatable {
        /// Transactions committed.
        public var transactions: UInt64
        /// Change sets (steps) made durable.
        public var changeSets: UInt64
    }

    /// Rows above which a transaction takes no further change sets.
    static let maxRowsPerTransaction = 4_096

    private let store: Store
    private let state = Mutex(State())
    private let wakeUp = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)
    private let logger: Logger
    private let onFailure: @Sendable (any Error) -> Void
    private let onCommit: (@Sendable (Commit) -> Void)?

    /// Starts the writer thread.
    /// - Parameters:
    ///   - onCommit: called on the writer thread after each transaction (for metrics);
    ///     it must not block.
    ///   - onFailure: called when a commit fails, before the process stops; the default
    ///     stops it with `fatalError` after logging.
    public init(
        store: Store,
        logger: Logger = Logger(label: "leasehold.journal"),
        onCommit: (@Sendable (Commit) -> Void)? = nil,
        onFailure: (@Sendable (any Error) -> Void)? = nil
    ) {
        self.store = store
        self.logger = logger
        self.onCommit = onCommit
        self.onFailure = onFailure ?? { error in
            fatalError("leasehold: a journal commit failed, stopping so that memory is never ahead of disk: \(error)")
        }
        let thread = Thread { [self] in self.writerLoop() }
        thread.name = "leasehold-journal"
        thread.start()
    }

    /// Queues a change set. Order of calls is order of commit.
    /// - Parameters:
    ///   - afterCommit: runs on the writer thread once the change set is durable, in
    ///     queue order, before the next transaction starts: the place to release replies
    ///     and pushes in step order. It must not block.
    /// - Returns: its sequence number, for ``waitUntilDurable(_:)``.
    @discardableResult
    public func enqueue(_ changes: ChangeSet, afterCommit: (@Sendable () -> Void)? = nil) -> UInt64 {
        let (sequence, wake) = self.state.withLock { state -> (UInt64, Bool) in
            state.lastQueued += 1
            state.queue.append(Entry(sequence: state.lastQueued, changes: changes, afterCommit: afterCommit))
            return (state.lastQueued, state.queue.count == 1)
        }
        if wake { self.wakeUp.signal() }
        return sequence
    }

    /// Returns once the change set `sequence` and all before it are durable.
    public func waitUntilDurable(_ sequence: UInt64) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let durable = self.state.withLock { state -> Bool in
                if state.lastDurable >= sequence { return true }
                state.waiters.append((sequence, continuation))
                return false
            }
            if durable { continuation.resume() }
        }
    }

    /// Queues a change set and waits until it is durable.
    public func commit(_ changes: ChangeSet) async {
        await self.waitUntilDurable(self.enqueue(changes))
    }

    /// The highest sequence that is durable.
    public var lastDurable: UInt64 { self.state.withLock { $0.lastDurable } }

    public var statistics: Statistics {
        self.state.withLock { Statistics(transactions: $0.transactions, changeSets: $0.changeSets) }
    }

    /// Commits what is queued, then stops the writer thread.
    public func close() {
        self.state.withLock { $0.stopping = true }
        self.wakeUp.signal()
        self.stopped.wait()
    }

    // MARK: - Writer

    private func writerLoop() {
        while true {
            let (batch, stopping) = self.state.withLock { state -> ([Entry], Bool) in
                // Everything queued, up to `maxRowsPerTransaction` rows (at least one
                // change set): a burst of big steps (an expiry storm) commits in slices,
                // and the replies of the steps in each slice leave without waiting for
                // the whole burst.
                var rows = 0
                var taken = 0
                while taken < state.queue.count {
                    rows += state.queue[taken].changes.rows.count
                    taken += 1
                    if rows >= Self.maxRowsPerTransaction { break }
                }
                let batch = Array(state.queue[..<taken])
                state.queue.removeFirst(taken)
                return (batch, state.stopping)
            }
            if batch.isEmpty {
                if stopping { break }
                self.wakeUp.wait()
                continue
            }
            let sets = batch.map(\.changes).filter { !$0.isEmpty }
            if !sets.isEmpty {
                do {
                    let start = ContinuousClock.now
                    let sync = try self.store.apply(sets)
                    if let onCommit = self.onCommit {
                        let rows = sets.reduce(0) { $0 + $1.rows.count }
                        onCommit(Commit(changeSets: batch.count, rows: rows, duration: ContinuousClock.now - start, sync: sync))
                    }
                } catch {
                    self.logger.critical(
                        "journal commit failed; stopping",
                        metadata: ["error": "\(error)", "journal.changeSets": "\(sets.count)"]
                    )
                    self.onFailure(error)
                    // If the handler returned (tests), nothing further is acknowledged.
                    self.stopped.signal()
                    return
                }
            }
            let last = batch[batch.count - 1].sequence
            for entry in batch { entry.afterCommit?() }
            let ready = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
                state.lastDurable = last
                state.transactions += sets.isEmpty ? 0 : 1
                state.changeSets += UInt64(batch.count)
                let ready = state.waiters.filter { $0.sequence <= last }.map(\.continuation)
                state.waiters.removeAll { $0.sequence <= last }
                return ready
            }
            for continuation in ready { continuation.resume() }
        }
        self.stopped.signal()
    }
}
