import Foundation
import LeaseholdCore
import Logging
import Synchronization

/// Group commit of the Coordinator's change sets through a ``JournalSink``.
///
/// Lifecycle of a change set: the Coordinator's owner `enqueue`s it in step order and
/// gets a sequence number. The writer thread takes everything queued (up to
/// ``maxRowsPerBatch`` rows) as the next batch, gives it the next log position and hands
/// it to the sink; while up to ``JournalSink/maxBatchesInFlight`` batches are
/// outstanding, the steps queued meanwhile wait for the next batch. There is no timer
/// delay: a lone client sees one commit's latency and many clients share each one.
/// Outcomes may come back in any order; a batch is released (its `afterCommit` actions
/// run, in step order, and its waiters resume) only when it and every batch before it
/// are durable. A retryable outcome (unavailable, unknown, out of order) holds everything
/// from that batch on and resends it and the batches after it, in order, after
/// ``retryDelay``. A `failed` or `deposed` outcome stops the journal: nothing from that
/// batch on is ever released, and the failure handler runs (by default it stops the
/// process: memory would be ahead of disk). An empty change set (a step that changed
/// nothing) is a barrier: it is released when everything queued before it is, and never
/// reaches the sink.
///
/// The writer is a dedicated thread: a sink that writes synchronously (the SQLite file)
/// does so there, so its fsync never blocks a Swift concurrency thread.
public final class Journal: Sendable {
    /// Settings of a journal.
    public struct Options: Sendable {
        public var logger = Logger(label: "leasehold.journal")
        /// Called on the writer thread after each batch is released (for metrics); it must
        /// not block.
        public var onCommit: (@Sendable (Commit) -> Void)?
        /// Called once when the journal stops on a `failed` or `deposed` outcome; `nil`
        /// stops the process with `fatalError` after logging.
        public var onFailure: (@Sendable (JournalFailure) -> Void)?
        /// Time before a batch that came back unavailable, unknown or out of order is sent
        /// again.
        public var retryDelay: Duration = .milliseconds(50)
        /// The term this journal writes under (0 on a single node).
        public var term: UInt64 = 0

        public init() {}
    }

    /// One released batch, as ``Options/onCommit`` reports it.
    public struct Commit: Sendable {
        /// Change sets (steps) it made durable, barriers included.
        public var changeSets: Int
        /// Rows written.
        public var rows: Int
        /// From handing the batch to the sink to its release.
        public var duration: Duration
        /// The durable write alone, as the sink measured it (the SQLite `COMMIT`: the WAL
        /// append and its fsync); `duration` when the sink does not say.
        public var sync: Duration
    }

    /// Batches handed to the sink and not yet answered (cluster mode: etcd transactions
    /// in flight).
    public var batchesInFlight: Int { self.state.withLock { state in state.inFlight.filter { $0.sent && $0.outcome == nil }.count } }

    /// Figures for benchmarks and metrics.
    public struct Statistics: Sendable, Equatable {
        /// Batches made durable by the sink.
        public var transactions: UInt64
        /// Change sets (steps) released.
        public var changeSets: UInt64
        /// Batches handed to the sink again after a retryable outcome.
        public var resends: UInt64
    }

    /// Rows above which a batch takes no further change sets: a burst of big steps (an
    /// expiry storm) commits in slices, and the replies of each slice leave without
    /// waiting for the whole burst.
    public static let maxRowsPerBatch = 4_096

    struct Entry {
        var sequence: UInt64
        var changes: ChangeSet
        var afterCommit: (@Sendable () -> Void)?
    }

    /// A batch between the queue and its release. `batch` is `nil` for barriers only:
    /// those never reach the sink and are durable once everything before them is.
    struct InFlight {
        var entries: [Entry]
        var batch: JournalBatch?
        var sent = false
        var outcome: BatchOutcome?
        var sentAt = ContinuousClock.now
    }

    struct State {
        var queue: [Entry] = []
        var inFlight: [InFlight] = []
        var position: LogPosition
        var lastQueued: UInt64 = 0
        var lastDurable: UInt64 = 0
        var waiters: [(sequence: UInt64, continuation: CheckedContinuation<Bool, Never>)] = []
        var stopping = false
        /// ``abandon()`` was called: nothing more is sent or released.
        var abandoned = false
        var failure: JournalFailure?
        /// After a failure: the first sequence that will never be durable.
        var neverDurableFrom = UInt64.max
        var resendAt: ContinuousClock.Instant?
        var statistics = Statistics(transactions: 0, changeSets: 0, resends: 0)
    }

    /// What one turn of the writer loop does outside the lock.
    struct Work {
        var released: [InFlight] = []
        var ready: [CheckedContinuation<Bool, Never>] = []
        /// Waiters that will never see their change set durable: the journal stopped.
        var abandoned: [CheckedContinuation<Bool, Never>] = []
        var send: [JournalBatch] = []
        var failure: JournalFailure?
        var retrying: BatchOutcome?
        var again = false
        var exit = false
        var wakeAt: ContinuousClock.Instant?
    }

    public let sink: any JournalSink
    private let options: Options
    /// The sink's limit, read once.
    private let maxBatchesInFlight: Int
    private let state: Mutex<State>
    private let wakeUp = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)

    /// Starts the writer thread; the first batch gets the position after `position`.
    public init(sink: any JournalSink, after position: LogPosition, options: Options = Options()) {
        self.sink = sink
        self.options = options
        self.maxBatchesInFlight = Swift.max(1, sink.maxBatchesInFlight)
        self.state = Mutex(State(position: position))
        let thread = Thread { [self] in self.writerLoop() }
        thread.name = "leasehold-journal"
        thread.start()
    }

    /// Time before a retryable batch is sent again.
    public var retryDelay: Duration { self.options.retryDelay }

    /// Queues a change set. Order of calls is order of commit.
    /// - Parameters:
    ///   - afterCommit: runs on the writer thread once the change set and everything
    ///     before it are durable, in queue order: the place to release replies and pushes
    ///     in step order. It must not block.
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

    /// Returns once the change set `sequence` and all before it are durable, or once the
    /// journal stopped without making it durable.
    /// - Returns: whether it is durable.
    @discardableResult
    public func waitUntilDurable(_ sequence: UInt64) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let known = self.state.withLock { state -> Bool? in
                if state.lastDurable >= sequence { return true }
                if sequence >= state.neverDurableFrom || state.abandoned { return false }
                state.waiters.append((sequence, continuation))
                return nil
            }
            if let known { continuation.resume(returning: known) }
        }
    }

    /// Queues a change set and waits until it is durable.
    /// - Returns: whether it is durable (`false`: the journal stopped first).
    @discardableResult
    public func commit(_ changes: ChangeSet) async -> Bool {
        await self.waitUntilDurable(self.enqueue(changes))
    }

    /// The highest sequence that is durable.
    public var lastDurable: UInt64 { self.state.withLock { $0.lastDurable } }

    /// The position of the last batch handed to the sink.
    public var position: LogPosition { self.state.withLock { $0.position } }

    /// Why the journal stopped, if it did.
    public var failure: JournalFailure? { self.state.withLock { $0.failure } }

    public var statistics: Statistics { self.state.withLock { $0.statistics } }

    /// Stops at once, whatever is queued or outstanding: nothing more is sent or released,
    /// and every waiter learns that its change set will not be durable here. For a node
    /// that stops leading (cluster mode): what it sent may still become durable in the
    /// log, and the next leader applies it, but no reply of this journal leaves. Outcomes
    /// that arrive later are ignored. The sink stays open.
    public func abandon() {
        let waiters = self.state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            state.abandoned = true
            state.neverDurableFrom = Swift.min(state.neverDurableFrom, state.lastDurable + 1)
            defer { state.waiters.removeAll() }
            return state.waiters.map(\.continuation)
        }
        for waiter in waiters { waiter.resume(returning: false) }
        self.wakeUp.signal()
        self.stopped.wait()
        // A second `close` or `abandon` finds the thread gone.
        self.stopped.signal()
    }

    /// Makes what is queued durable, then stops the writer thread. After a failure it
    /// stops once the batches before the failing one have their outcomes (at once when
    /// deposed). The sink stays open.
    public func close() {
        self.state.withLock { $0.stopping = true }
        self.wakeUp.signal()
        self.stopped.wait()
        // A later `close` or `abandon` finds the thread gone.
        self.stopped.signal()
    }

    // MARK: - Writer

    private func writerLoop() {
        while true {
            let work = self.state.withLock { state in self.nextWork(&state) }
            for done in work.released {
                for entry in done.entries { entry.afterCommit?() }
                if let onCommit = self.options.onCommit, let batch = done.batch {
                    let duration = ContinuousClock.now - done.sentAt
                    var sync = duration
                    if case .durable(let measured?)? = done.outcome { sync = measured }
                    onCommit(Commit(changeSets: done.entries.count, rows: batch.rows, duration: duration, sync: sync))
                }
            }
            for continuation in work.ready { continuation.resume(returning: true) }
            if let outcome = work.retrying {
                self.options.logger.warning(
                    "journal batch not durable; sending it again",
                    metadata: ["journal.outcome": "\(outcome)", "journal.retryDelay": "\(self.options.retryDelay)"]
                )
            }
            if let failure = work.failure {
                self.options.logger.critical("journal stopped; nothing more is acknowledged", metadata: ["error": "\(failure)"])
                if let onFailure = self.options.onFailure {
                    onFailure(failure)
                } else {
                    fatalError("leasehold: \(failure); stopping so that memory is never ahead of durable state")
                }
            }
            // Only after the failure handler: waiters learn that their steps are lost.
            for continuation in work.abandoned { continuation.resume(returning: false) }
            for batch in work.send {
                self.sink.apply(batch) { [self] outcome in self.completed(batch.position, outcome) }
            }
            if work.exit { break }
            if work.again || !work.released.isEmpty || !work.send.isEmpty { continue }
            if let wakeAt = work.wakeAt {
                let wait = wakeAt - ContinuousClock.now
                if wait > .zero { _ = self.wakeUp.wait(timeout: .now() + .nanoseconds(Int(clamping: wait.nanosecondsClamped))) }
            } else {
                self.wakeUp.wait()
            }
        }
        self.stopped.signal()
    }

    /// A sink's outcome for the batch at `position`.
    private func completed(_ position: LogPosition, _ outcome: BatchOutcome) {
        self.state.withLock { state in
            guard !state.abandoned else { return }
            guard let index = state.inFlight.firstIndex(where: { $0.batch?.position == position && $0.sent && $0.outcome == nil }) else {
                preconditionFailure("journal sink answered batch \(position) twice or unasked")
            }
            state.inFlight[index].outcome = outcome
        }
        self.wakeUp.signal()
    }

    /// Decides, under the lock, what to release, resend and send next.
    private func nextWork(_ state: inout State) -> Work {
        var work = Work()
        if state.abandoned {
            work.exit = true
            return work
        }
        // A failed or deposed batch anywhere stops everything from it on.
        if state.failure == nil, let failing = state.inFlight.first(where: { $0.outcome.map { !$0.isDurable && !$0.isRetryable } ?? false }) {
            let failure = JournalFailure(position: failing.batch!.position, outcome: failing.outcome!)
            state.failure = failure
            work.failure = failure
            if case .deposed = failure.outcome {
                state.neverDurableFrom = state.lastDurable + 1
            } else {
                state.neverDurableFrom = failing.entries[0].sequence
            }
            let from = state.neverDurableFrom
            work.abandoned = state.waiters.filter { $0.sequence >= from }.map(\.continuation)
            state.waiters.removeAll { $0.sequence >= from }
        }
        // Release the durable batches at the head, in order. A deposed journal releases
        // nothing more at all, not even batches before the one that found out: a node of
        // a newer term may have released already (invariant 8). A failed one may still
        // release the durable batches before the failure.
        let deposed: Bool
        if case .deposed? = state.failure?.outcome { deposed = true } else { deposed = false }
        while !deposed, let first = state.inFlight.first, first.outcome?.isDurable == true {
            state.inFlight.removeFirst()
            state.lastDurable = first.entries[first.entries.count - 1].sequence
            state.statistics.changeSets += UInt64(first.entries.count)
            if first.batch != nil { state.statistics.transactions += 1 }
            work.released.append(first)
        }
        if !work.released.isEmpty {
            let last = state.lastDurable
            work.ready = state.waiters.filter { $0.sequence <= last }.map(\.continuation)
            state.waiters.removeAll { $0.sequence <= last }
        }
        if state.failure != nil {
            work.exit = state.stopping && (deposed || !state.inFlight.contains { $0.sent && $0.outcome == nil })
            return work
        }
        let awaiting = state.inFlight.contains { $0.sent && $0.outcome == nil }
        // A retryable outcome at the head: once nothing is outstanding, send it and every
        // batch after it again, in order, after the retry delay.
        if let head = state.inFlight.first, let outcome = head.outcome, outcome.isRetryable, !awaiting {
            for index in state.inFlight.indices where state.inFlight[index].batch != nil {
                state.inFlight[index].sent = false
                state.inFlight[index].outcome = nil
            }
            state.resendAt = ContinuousClock.now + self.options.retryDelay
            work.retrying = outcome
        }
        if let resendAt = state.resendAt {
            guard ContinuousClock.now >= resendAt else {
                work.wakeAt = resendAt
                return work
            }
            state.resendAt = nil
            for index in state.inFlight.indices where state.inFlight[index].batch != nil && !state.inFlight[index].sent {
                state.inFlight[index].sent = true
                state.inFlight[index].sentAt = ContinuousClock.now
                state.statistics.resends += 1
                work.send.append(state.inFlight[index].batch!)
            }
        }
        // New batches while the sink has room, unless a batch waits to be sent again: the
        // sink would find them out of order.
        if state.inFlight.contains(where: { $0.outcome?.isRetryable == true }) { return work }
        var outstanding = state.inFlight.count { $0.batch != nil }
        while !state.queue.isEmpty && outstanding < self.maxBatchesInFlight {
            var rows = 0
            var taken = 0
            while taken < state.queue.count {
                rows += state.queue[taken].changes.rows.count
                taken += 1
                if rows >= Self.maxRowsPerBatch { break }
            }
            let entries = Array(state.queue[..<taken])
            state.queue.removeFirst(taken)
            let sets = entries.map(\.changes).filter { !$0.isEmpty }
            if sets.isEmpty {
                state.inFlight.append(InFlight(entries: entries, batch: nil, sent: true, outcome: .durable(sync: nil)))
                work.again = true
                continue
            }
            state.position = state.position.next(term: self.options.term)
            let batch = JournalBatch(position: state.position, changeSets: sets)
            state.inFlight.append(InFlight(entries: entries, batch: batch, sent: true))
            work.send.append(batch)
            outstanding += 1
        }
        work.exit = state.stopping && state.queue.isEmpty && state.inFlight.isEmpty
        return work
    }
}
