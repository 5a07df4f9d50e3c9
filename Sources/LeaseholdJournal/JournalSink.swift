import LeaseholdCore

/// Where the journal makes the Coordinator's change sets durable, and where a start finds
/// them again: the SQLite file of a data directory (the embedded default), a replicated
/// log (cluster mode), or memory (tests).
///
/// The contract, as the ``Journal`` relies on it:
/// - ``load()`` returns the persisted rows and the log position they reflect, or `nil`
///   when nothing was ever persisted (a first start).
/// - ``apply(_:completion:)`` gets batches in index order (each index one above the
///   previous, resends after a retryable outcome included) and calls `completion` exactly
///   once per call, from any thread, possibly before returning. Up to
///   ``maxBatchesInFlight`` batches may be outstanding. A sink never makes a batch
///   durable before every batch below it, and answers a resend of a batch it already
///   made durable with `durable` (it settles an earlier `unknown` by reading).
/// - ``snapshot(to:)`` copies durable state only, consistently, while batches go on.
/// - Nothing is released by the journal for a batch until its outcome is `durable`, and
///   nothing after a batch whose outcome is `failed` or `deposed`.
public protocol JournalSink: AnyObject, Sendable {
    /// Batches the journal may hand over before the first of them is durable; at least 1.
    /// The SQLite file keeps one (its commit is the fsync); a replicated log keeps more to
    /// hide its round trips.
    var maxBatchesInFlight: Int { get }

    /// The persisted rows and the log position they reflect; `nil` when the sink holds no
    /// volume yet.
    func load() async throws -> LoadedState?

    /// Makes `batch` durable after every batch before it, then calls `completion` with
    /// the outcome.
    func apply(_ batch: JournalBatch, completion: @escaping @Sendable (BatchOutcome) -> Void)

    /// Writes a consistent copy of the durable state to `path`, which opens as a sink of
    /// the same kind.
    /// - Returns: the log position the copy reflects.
    func snapshot(to path: String) async throws -> LogPosition

    /// Releases the sink's resources. The journal has completed every batch by then.
    func close() throws
}

/// What a sink holds: every persisted row, and the position of the last batch in it.
public struct LoadedState: Sendable, Hashable {
    public var state: PersistentState
    public var position: LogPosition

    public init(state: PersistentState, position: LogPosition) {
        self.state = state
        self.position = position
    }
}

/// One group-commit batch: the change sets of consecutive steps, in step order, at one
/// log position. Applying their rows in order to the state at the previous position gives
/// the state at this one.
public struct JournalBatch: Sendable, Hashable {
    public var position: LogPosition
    public var changeSets: [ChangeSet]

    public init(position: LogPosition, changeSets: [ChangeSet]) {
        self.position = position
        self.changeSets = changeSets
    }

    /// Rows written or deleted.
    public var rows: Int { self.changeSets.reduce(0) { $0 + $1.rows.count } }
}

/// What became of one batch (SEMANTICS.md, "Replication and failover": "Journal").
///
/// The journal's reaction to each: `durable` releases the batch's replies and pushes once
/// every batch before it is durable; `unavailable`, `unknown` and `outOfOrder` resend it
/// and every batch after it, in order, after ``Journal/retryDelay`` (nothing is released
/// meanwhile; the sink settles an unknown one by reading when it comes again); `failed`
/// and `deposed` stop the journal: nothing from that batch on is released, and the
/// journal's failure handler runs (fail-stop for a single node; a deposed leader drops
/// its memory and rebuilds from the log).
public enum BatchOutcome: Sendable {
    /// The batch is durable. `sync`: how long the durable write itself took (SQLite: the
    /// `COMMIT`, that is the WAL append and its fsync), if the sink measures it.
    case durable(sync: Duration?)
    /// Another writer owns the log now (a newer term): this node must not write again.
    case deposed(String)
    /// The sink expected another position first (a batch before this one is missing).
    case outOfOrder(expected: LogPosition)
    /// Not written: the sink cannot reach its storage now.
    case unavailable(String)
    /// Perhaps written, perhaps not (a timeout after sending).
    case unknown(String)
    /// The sink is broken (a disk error): nothing more can be made durable.
    case failed(any Error)

    public var isDurable: Bool {
        if case .durable = self { return true }
        return false
    }

    /// Whether the journal sends the batch again.
    public var isRetryable: Bool {
        switch self {
        case .unavailable, .unknown, .outOfOrder: true
        case .durable, .deposed, .failed: false
        }
    }
}

/// Why a journal stopped: the outcome that stopped it and the batch it came for.
public struct JournalFailure: Error, Sendable, CustomStringConvertible {
    public var position: LogPosition
    public var outcome: BatchOutcome

    public init(position: LogPosition, outcome: BatchOutcome) {
        self.position = position
        self.outcome = outcome
    }

    public var description: String {
        switch self.outcome {
        case .failed(let error): "the journal sink failed at \(self.position): \(error)"
        case .deposed(let reason): "the journal was deposed at \(self.position): \(reason)"
        default: "the journal stopped at \(self.position): \(self.outcome)"
        }
    }
}
