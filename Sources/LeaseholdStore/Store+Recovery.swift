import Foundation
import LeaseholdCore
import Synchronization

extension Store {
    /// The Coordinator this database describes, ready to serve at `now`.
    ///
    /// A database without a volume is a first start: a new volume is created from
    /// `configuration` and written. Otherwise every row is loaded and the Coordinator is
    /// rebuilt: the epoch goes up by one, every deadline restarts in full from `now`, and
    /// the loaded state must pass the invariant checker. The rows of that new start (the
    /// epoch) are durable before this returns.
    /// - Throws: `RecoveryError` naming every broken invariant, `StoreError` for an
    ///   undecodable row, or the database's error.
    public func openCoordinator(configuration: CoordinatorConfiguration, at now: Instant) throws -> Coordinator {
        var coordinator: Coordinator
        if try self.hasVolume() {
            coordinator = try Coordinator(restoring: try self.load(), configuration: configuration, at: now, checking: false)
            // The invariant checker's parts on every core at once.
            let restored = coordinator
            let found = Mutex<[[InvariantViolation]]>(Array(repeating: [], count: InvariantChecker.parts.count))
            DispatchQueue.concurrentPerform(iterations: InvariantChecker.parts.count) { part in
                let violations = InvariantChecker.check(restored, part: part)
                found.withLock { $0[part] = violations }
            }
            let violations = found.withLock { $0.flatMap { $0 } }
            guard violations.isEmpty else { throw RecoveryError(violations: violations) }
        } else {
            coordinator = Coordinator(configuration: configuration)
        }
        let output = coordinator.tick(at: now)
        try self.apply([output.effects.changes])
        return coordinator
    }
}
