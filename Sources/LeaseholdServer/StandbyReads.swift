import LeaseholdCore
import LeaseholdJournal
import Synchronization

/// Admin queries on a standby (docs/cluster.md, "Standbys serve admin reads"): answered
/// from the state the node applied from the log, stating its log position.
///
/// Lifecycle: a cluster node hands the server a source of its applied image
/// (``LeaseholdServer/serveStandbyReads(from:)``); a query builds a read-only Coordinator
/// from that image (restored as a takeover would, never ticked, its effects dropped) and
/// keeps it until the image moves on. Nothing here decides or persists anything: a
/// standby runs no commands and no timers. Times left (session TTLs, recall deadlines)
/// read as a takeover at that moment would restart them, not as the leader counts them.
final class StandbyReads: Sendable {
    let source: @Sendable () -> LoadedState?
    let configuration: CoordinatorConfiguration
    private let cached = Mutex<(position: LogPosition, coordinator: Coordinator)?>(nil)

    init(source: @escaping @Sendable () -> LoadedState?, configuration: CoordinatorConfiguration) {
        self.source = source
        var configuration = configuration
        // A query's step fires no due timer (invariant 10): none may run on a standby.
        configuration.maxTimersPerRequest = 0
        self.configuration = configuration
    }

    /// The answer to `command` (an ``Command/isAdminQuery``) and the log position it
    /// reflects; `nil` while the node has applied nothing yet.
    func answer(_ command: Command, caller: Caller) -> (Reply, LogPosition)? {
        guard let image = self.source(), let volume = image.state.volume else { return nil }
        var coordinator: Coordinator
        if let cached = self.cached.withLock({ $0 }), cached.position == image.position {
            coordinator = cached.coordinator
        } else {
            do {
                coordinator = try Coordinator(restoring: image.state, configuration: self.configuration, at: .zero, checking: false)
            } catch {
                return (.failure(LeaseholdError(code: .unavailable, message: "this standby's copy of the log does not load: \(error)")), image.position)
            }
            self.cached.withLock { $0 = (image.position, coordinator) }
        }
        guard var reply = coordinator.handle(Request(caller: caller, command: command), at: .zero).reply else {
            return (.failure(LeaseholdError(code: .unavailable, message: "a standby cannot answer \(command.name)")), image.position)
        }
        // The image's own epoch, not the one a restore would start.
        if case .success(.status(var status)) = reply {
            status.epoch = volume.epoch
            reply = .success(.status(status))
        }
        return (reply, image.position)
    }
}
