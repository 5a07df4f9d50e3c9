import LeaseholdCore
import LeaseholdJournal
import LeaseholdMessages

// MARK: - Roles (cluster mode)
//
// standby --lead--> leader --standDown--> standby. A single node serves from its start
// and never changes. Taking the lead boots a Coordinator from the log (a new epoch, every
// deadline restarted in full from now: SEMANTICS.md "Takeover"); standing down abandons
// its journal and Coordinator at once, closes the clients' connections with `notLeader`,
// and keeps nothing of them (docs/cluster.md, "Safety argument").

extension LeaseholdServer {
    /// Serves as the leader of term `term` from `sink` (the etcd log, guarded by this
    /// node's leader key), releasing anything only while `gate` holds.
    /// - Parameters:
    ///   - onFailure: the journal stopped (deposed, or the log refused a write): the
    ///     caller stands down.
    /// - Throws: what booting from the sink throws; the node stays a standby.
    public func lead(
        sink: any JournalSink, term: UInt64, gate: @escaping @Sendable () -> Bool, onFailure: @escaping @Sendable (JournalFailure) -> Void
    ) async throws {
        guard case .standby = self.mode.withLock({ $0 }) else {
            throw LeaseholdError(code: .unavailable, message: "lead called on a node that is not a standby")
        }
        let serving = try await Self.boot(
            sink: sink, role: .leader, term: term, configuration: self.configuration, group: self.group, metrics: self.metrics,
            logger: self.logger, gate: gate, onFailure: onFailure
        )
        self.mode.withLock { $0 = .serving(serving) }
        serving.owner.start()
        self.logger.notice("leading", metadata: ["node.term": "\(term)", "volume.epoch": "\(serving.owner.epoch)"])
    }

    /// Stops leading at once (deposed, fenced, handing over): nothing more of this term
    /// leaves; the clients' connections close with `notLeader`, and the node answers as a
    /// standby of `leader` from now on. A standby only learns the new leader. It waits for
    /// the journal's thread to stop: never call it from the journal's failure handler.
    public func standDown(leader: String?, term: UInt64, reason: String) {
        let (previous, epoch) = self.mode.withLock { mode -> (Serving?, UInt64) in
            switch mode {
            case .serving(let serving):
                let epoch = serving.owner.epoch
                mode = .standby(leader: leader, term: term, epoch: epoch)
                return (serving, epoch)
            case .standby(_, let known, let epoch):
                mode = .standby(leader: leader, term: Swift.max(known, term), epoch: epoch)
                return (nil, epoch)
            }
        }
        guard let previous else { return }
        self.logger.warning("no longer leading", metadata: ["node.term": "\(previous.term)", "node.reason": "\(reason)", "volume.epoch": "\(epoch)"])
        previous.owner.abandon()
        previous.journal.abandon()
        let message = leader.map { "this node no longer leads (\(reason)); the leader serves at \($0)" } ?? "this node no longer leads (\(reason))"
        for connection in self.connections.withLock({ Array($0.values) }) {
            connection.close(.notLeader, message)
        }
    }

    /// Lets a standby answer admin queries (``Command/isAdminQuery``) from the state it
    /// applied from the log: `source` gives that state and its position, `nil` while there
    /// is none. Without it a standby answers them `notLeader`.
    public func serveStandbyReads(from source: @escaping @Sendable () -> LoadedState?) {
        self.standbyReads.withLock { $0 = StandbyReads(source: source, configuration: self.configuration.coordinator) }
    }

    /// A standby learns who leads now (`nil`: nobody); a serving node ignores it.
    public func setLeader(_ leader: String?, term: UInt64) {
        self.mode.withLock { mode in
            if case .standby(_, let known, let epoch) = mode { mode = .standby(leader: leader, term: Swift.max(known, term), epoch: epoch) }
        }
    }

    /// What `Hello` says this node is (role, leader endpoint, term): a leader past its
    /// deadline calls itself a standby that knows no leader.
    public var announcedRole: (NodeRole, String?, UInt64) {
        switch self.mode.withLock({ $0 }) {
        case .serving(let serving):
            if serving.role == .leader, let gate = serving.owner.gate, !gate() { return (.standby, nil, serving.term) }
            return (serving.role, nil, serving.term)
        case .standby(let leader, let term, _):
            return (.standby, leader, term)
        }
    }

    /// The answer of a standby to everything but `Hello`.
    var notLeader: LeaseholdError {
        if case .standby(let leader, _, _) = self.mode.withLock({ $0 }) { return .notLeader(leader: leader) }
        return .notLeader(leader: nil)
    }
}
