import LeaseholdCore
import LeaseholdMessages

/// The lifecycle of the client's one logical connection as a pure state machine: events
/// in (an attempt failed, a `Hello` was answered, the sessions resumed, the connection was
/// lost, a reply said `notLeader`), the next action out (connect to this endpoint after
/// this pause, let the listeners resume, give up). It reads no clock and does no I/O: the
/// instant comes with each event, the jitter from a seeded generator, and
/// ``ClientConnection`` only runs the actions (postgres-nio's `ConnectionStateMachine` is
/// the model).
///
/// Lifecycle: `connecting` (one attempt: TCP, TLS and `Hello` with one endpoint) →
/// `resuming` (the hello was accepted: sessions and feeds re-establish their server state;
/// ordinary requests wait) → `ready` → back to `connecting` when the connection is lost
/// or its node no longer leads → … → `closed` for good.
///
/// Which node it accepts: a single node, or the leader of a term at least as new as any
/// term a node has told it. A standby (or a leader of an older term, deposed without
/// knowing it) is refused: its `leader_endpoint` hint is tried next at once, then the
/// configured endpoints in turn. The first round over the endpoints goes without a
/// pause; after each further round the pause doubles, from the initial backoff to its
/// cap, with "equal jitter" (a uniform draw from the upper half) so that clients that
/// lost the same leader do not come back in step.
///
/// Before the first accepted hello (``LeaseholdClient/connect(_:logger:)``): a refusal
/// by the server (`Hello` answered with an error) fails at once; so does a first round
/// in which no endpoint took a TCP connection or passed the TLS certificate checks; when
/// nodes answer but none leads yet (or a node took the connection but did not finish the
/// handshake), it keeps trying until the open deadline.
struct ConnectionStateMachine {
    typealias Instant = ContinuousClock.Instant

    enum Phase: Equatable {
        case idle
        case connecting(HostPort)
        case resuming(generation: UInt64)
        case ready(generation: UInt64)
        case closed
    }

    enum Action: Equatable {
        /// Connect to the endpoint (TLS, then `Hello`) after the pause.
        case connect(HostPort, after: Duration)
        /// The hello was accepted: let the listeners resume, then ``resumed(generation:)``.
        case resume(generation: UInt64)
        /// The first connection cannot be made: `connect` fails with this.
        case fail(LeaseholdError)
        /// Closed: stop.
        case stop
    }

    /// Why an attempt did not give an accepted connection.
    enum AttemptFailure: Equatable {
        /// No TCP connection.
        case unreachable(String)
        /// Connected, but no TLS handshake or `Hello` answer (the node is there: a slow
        /// or overloaded one is tried again until the open deadline).
        case silent(String)
        /// The server answered `Hello` with an error (identity, protocol version).
        case refused(LeaseholdError)
        /// The TLS handshake failed on a certificate (ours refused, or the node's not
        /// trusted): final only once every endpoint of a round failed.
        case tlsRefused(String)
    }

    let endpoints: [HostPort]
    let backoff: (initial: Duration, maximum: Duration)
    /// A standby is good enough (admin reads that any node answers).
    let acceptsStandby: Bool
    private(set) var phase: Phase = .idle
    /// The newest term any node has told of (hellos of every role).
    private(set) var newestTerm: UInt64 = 0
    private(set) var generation: UInt64 = 0
    /// Whether a hello was ever accepted (`connect` returned).
    private(set) var opened = false
    private var openDeadline: Instant?
    private var cursor = 0
    /// Attempts since requests last flowed (``resumed(generation:)``).
    private var failures = 0
    private var hint: HostPort?
    private var hintsFollowed = 0
    /// Whether any node answered `Hello` before the first accepted one.
    private var anyAnswered = false
    /// Why each endpoint tried since requests last flowed did not do, in the order tried.
    private var failuresByEndpoint: [(endpoint: HostPort, reason: String)] = []
    private var random: UInt64

    /// - Parameters:
    ///   - openTimeout: how long `connect` keeps trying while nodes answer but none
    ///     leads.
    ///   - seed: the jitter's generator.
    init(endpoints: [HostPort], backoff: (initial: Duration, maximum: Duration), acceptsStandby: Bool = false, seed: UInt64) {
        precondition(!endpoints.isEmpty, "a client needs at least one endpoint")
        self.endpoints = endpoints
        self.backoff = backoff
        self.acceptsStandby = acceptsStandby
        self.random = seed
    }

    // MARK: - Events

    /// The first attempt.
    mutating func start(now: Instant, openTimeout: Duration) -> Action {
        guard case .idle = self.phase else { return .stop }
        self.openDeadline = now + openTimeout
        return self.nextAttempt(now: now)
    }

    /// An attempt ended without an accepted connection.
    mutating func attemptFailed(_ failure: AttemptFailure, now: Instant) -> Action {
        guard case .connecting(let endpoint) = self.phase else { return .stop }
        switch failure {
        case .refused(let error):
            self.anyAnswered = true
            if !self.opened { return self.fail(error) }
            self.noteFailure(endpoint, error.message)
        case .unreachable(let reason):
            self.noteFailure(endpoint, reason)
        case .silent(let reason):
            self.anyAnswered = true
            self.noteFailure(endpoint, reason)
        case .tlsRefused(let reason):
            self.noteFailure(endpoint, reason)
        }
        if !self.opened, !self.anyAnswered, self.failures >= self.endpoints.count, self.hint == nil {
            let names = self.endpoints.map(\.description).joined(separator: ", ")
            return self.fail(
                LeaseholdError(code: .unavailable, message: "cannot connect to \(names)" + self.failureSummary)
            )
        }
        return self.nextAttempt(now: now)
    }

    /// A node answered `Hello`: resume on it, or try another.
    mutating func helloAnswered(_ hello: ServerHello, now: Instant) -> Action {
        guard case .connecting(let endpoint) = self.phase else { return .stop }
        self.anyAnswered = true
        let newest = self.newestTerm
        self.newestTerm = Swift.max(self.newestTerm, hello.term)
        let refusal: String? =
            switch hello.role {
            case .single: nil
            case .leader: hello.term < newest ? "it leads term \(hello.term), but term \(newest) has begun" : nil
            case .standby: self.acceptsStandby ? nil : "it is a standby" + (hello.leaderEndpoint.map { " of the leader at \($0)" } ?? " and knows no leader")
            }
        guard let refusal else {
            self.generation += 1
            self.phase = .resuming(generation: self.generation)
            self.opened = true
            self.hint = nil
            return .resume(generation: self.generation)
        }
        self.noteFailure(endpoint, refusal)
        if let leader = hello.leaderEndpoint.flatMap(HostPort.init(text:)), leader != endpoint { self.hint = leader }
        return self.nextAttempt(now: now)
    }

    /// The listeners resumed on `generation`: whether ordinary requests may flow (it is
    /// still the current connection).
    mutating func resumed(generation: UInt64) -> Bool {
        guard self.phase == .resuming(generation: generation) else { return false }
        self.phase = .ready(generation: generation)
        self.failures = 0
        self.hintsFollowed = 0
        self.failuresByEndpoint = []
        return true
    }

    /// A reply on `generation` said this node does not lead (`hint`: where the leader
    /// serves): whether that connection is current and must be dropped. The next attempt
    /// goes to the hint at once.
    mutating func notLeader(generation: UInt64, hint: String?) -> Bool {
        switch self.phase {
        case .resuming(let current), .ready(let current):
            guard current == generation else { return false }
            if let hint = hint.flatMap(HostPort.init(text:)) { self.hint = hint }
            self.phase = .connecting(self.endpoints[(self.cursor + self.endpoints.count - 1) % self.endpoints.count])
            return true
        default:
            return false
        }
    }

    /// The connection of `generation` closed (or was dropped by ``notLeader(generation:hint:)``).
    mutating func connectionLost(generation: UInt64, now: Instant) -> Action {
        switch self.phase {
        case .closed: return .stop
        case .resuming(let current), .ready(let current):
            guard current == generation else { return .stop }
        case .connecting, .idle:
            break
        }
        // Attempts count from the last time requests flowed: a node that accepts the
        // hello but cannot take the sessions (it stopped leading) backs off like one that
        // does not answer.
        self.phase = .connecting(self.endpoints[self.cursor % self.endpoints.count])
        return self.nextAttempt(now: now)
    }

    mutating func close() {
        self.phase = .closed
    }

    // MARK: - Choosing the next attempt

    private mutating func nextAttempt(now: Instant) -> Action {
        if !self.opened, let deadline = self.openDeadline, now >= deadline {
            return self.fail(
                LeaseholdError(code: .unavailable, message: "no node accepted the connection in time" + self.failureSummary)
            )
        }
        self.failures += 1
        if let hint = self.hint {
            self.hint = nil
            if self.hintsFollowed < self.endpoints.count {
                self.hintsFollowed += 1
                self.phase = .connecting(hint)
                return .connect(hint, after: .zero)
            }
        }
        let endpoint = self.endpoints[self.cursor % self.endpoints.count]
        self.cursor = (self.cursor + 1) % self.endpoints.count
        // A new round over the endpoints may follow hints again (the leader a standby
        // names changes while a failover goes on).
        if self.cursor == 0 { self.hintsFollowed = 0 }
        self.phase = .connecting(endpoint)
        // The first round goes without a pause, then it doubles each round.
        let rounds = (self.failures - 1) / self.endpoints.count
        guard rounds > 0 else { return .connect(endpoint, after: .zero) }
        return .connect(endpoint, after: self.jittered(self.pause(rounds: rounds)))
    }

    private func pause(rounds: Int) -> Duration {
        var pause = self.backoff.initial
        for _ in 1..<rounds where pause < self.backoff.maximum { pause *= 2 }
        return Swift.min(pause, self.backoff.maximum)
    }

    /// Uniform in [pause / 2, pause].
    private mutating func jittered(_ pause: Duration) -> Duration {
        let nanos = pause.components.seconds * 1_000_000_000 + pause.components.attoseconds / 1_000_000_000
        guard nanos > 1 else { return pause }
        let half = UInt64(nanos / 2)
        return .nanoseconds(Int64(half + self.nextRandom() % (half + 1)))
    }

    /// SplitMix64.
    private mutating func nextRandom() -> UInt64 {
        self.random &+= 0x9E37_79B9_7F4A_7C15
        var z = self.random
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    private mutating func noteFailure(_ endpoint: HostPort, _ reason: String) {
        self.failuresByEndpoint.removeAll { $0.endpoint == endpoint }
        self.failuresByEndpoint.append((endpoint, reason))
    }

    /// ` (A: why; B: why)`, each endpoint's latest reason.
    private var failureSummary: String {
        guard !self.failuresByEndpoint.isEmpty else { return "" }
        return " (" + self.failuresByEndpoint.map { "\($0.endpoint): \($0.reason)" }.joined(separator: "; ") + ")"
    }

    private mutating func fail(_ error: LeaseholdError) -> Action {
        self.phase = .closed
        return .fail(error)
    }
}
