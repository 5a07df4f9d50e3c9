import Foundation
import LeaseholdCore
import Synchronization

/// Starting a Coordinator on a journal sink, whatever the sink is.
///
/// A sink without a volume is a first start: a new volume is created from the
/// configuration. Otherwise the loaded rows are restored as a new start at `now`: the
/// epoch goes up by one, every deadline restarts in full from `now`, and the state must
/// pass the invariant checker, whose parts run on every core at once. The first tick's
/// change set (the new epoch, or the whole new volume) goes through the journal and is
/// durable before ``open(sink:configuration:at:options:)`` returns, so nothing is served
/// from a start that is not recorded.
public struct Boot: Sendable {
    /// The Coordinator, ready to serve.
    public var coordinator: Coordinator
    /// The journal writing to the sink, after the loaded position.
    public var journal: Journal
    /// The position the sink reflected when it was loaded (`zero` on a first start).
    public var loadedPosition: LogPosition
    /// Whether a persisted state was restored (otherwise a volume was created).
    public var restored: Bool

    /// Loads the sink, restores or creates the Coordinator, starts the journal and makes
    /// the first tick durable.
    /// - Throws: `RecoveryError` naming every broken invariant, the sink's loading error,
    ///   or the ``JournalFailure`` of the first tick's batch (when `options.onFailure`
    ///   returns instead of stopping the process).
    /// - Parameter now: read once the sink is loaded: a restored state's deadlines restart
    ///   in full from then (a takeover that reads a long log does not spend the sessions'
    ///   TTLs on it).
    public static func open(
        sink: any JournalSink, configuration: CoordinatorConfiguration, at now: @autoclosure () -> Instant, options: Journal.Options = Journal.Options()
    ) async throws -> Boot {
        let loaded = try await sink.load()
        let now = now()
        var coordinator = try Self.coordinator(restoring: loaded, configuration: configuration, at: now)
        let journal = Journal(sink: sink, after: loaded?.position ?? .zero, options: options)
        let durable = await journal.commit(coordinator.tick(at: now).effects.changes)
        if !durable, let failure = journal.failure {
            journal.close()
            throw failure
        }
        return Boot(coordinator: coordinator, journal: journal, loadedPosition: loaded?.position ?? .zero, restored: loaded != nil)
    }

    /// The Coordinator a loaded state describes, as a new start at `now`; a new volume when
    /// nothing was loaded.
    /// - Throws: `RecoveryError` naming every broken invariant.
    public static func coordinator(restoring loaded: LoadedState?, configuration: CoordinatorConfiguration, at now: Instant) throws -> Coordinator {
        guard let loaded else { return Coordinator(configuration: configuration) }
        let coordinator = try Coordinator(restoring: loaded.state, configuration: configuration, at: now, checking: false)
        let violations = Self.check(coordinator)
        guard violations.isEmpty else { throw RecoveryError(violations: violations) }
        return coordinator
    }

    /// The invariant checker's parts on every core at once.
    public static func check(_ coordinator: Coordinator) -> [InvariantViolation] {
        let found = Mutex<[[InvariantViolation]]>(Array(repeating: [], count: InvariantChecker.parts.count))
        DispatchQueue.concurrentPerform(iterations: InvariantChecker.parts.count) { part in
            let violations = InvariantChecker.check(coordinator, part: part)
            found.withLock { $0[part] = violations }
        }
        return found.withLock { $0.flatMap { $0 } }
    }
}
