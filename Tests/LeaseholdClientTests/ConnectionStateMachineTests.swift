@testable import LeaseholdClient
import LeaseholdCore
import LeaseholdMessages
import Testing

/// The connection lifecycle without a network or a clock: which node it takes, where it
/// goes after a loss or a refusal, how long it pauses, when `connect` gives up.
@Suite("Client connection state machine")
struct ConnectionStateMachineTests {
    static let a = HostPort(host: "127.0.0.1", port: 7001)
    static let b = HostPort(host: "127.0.0.1", port: 7002)
    static let c = HostPort(host: "127.0.0.1", port: 7003)
    static let backoff: (initial: Duration, maximum: Duration) = (.milliseconds(20), .milliseconds(500))

    static func hello(_ role: NodeRole, term: UInt64, leader: HostPort? = nil) -> ServerHello {
        ServerHello(
            epoch: 1, limits: ServerLimits(wire: Leasehold_V1_Limits()),
            identity: "host", isAdmin: false, isTarget: false, role: role, leaderEndpoint: leader?.description, term: term
        )
    }

    static func machine(_ endpoints: [HostPort], acceptsStandby: Bool = false, seed: UInt64 = 7) -> ConnectionStateMachine {
        ConnectionStateMachine(endpoints: endpoints, backoff: Self.backoff, acceptsStandby: acceptsStandby, seed: seed)
    }

    @Test("a single node: accepted, resumed, ready; a loss reconnects to it at once, then with pauses that double within their jitter up to the cap")
    func singleNode() {
        let t0 = ContinuousClock.now
        var machine = Self.machine([Self.a])
        #expect(machine.start(now: t0, openTimeout: .seconds(5)) == .connect(Self.a, after: .zero))
        #expect(machine.helloAnswered(Self.hello(.single, term: 0), now: t0) == .resume(generation: 1))
        #expect(machine.phase == .resuming(generation: 1))
        #expect(machine.resumed(generation: 1) == true)
        #expect(machine.phase == .ready(generation: 1))
        #expect(machine.connectionLost(generation: 1, now: t0) == .connect(Self.a, after: .zero))
        var pauses: [Duration] = []
        for _ in 0..<8 {
            guard case .connect(let endpoint, let pause) = machine.attemptFailed(.unreachable("refused"), now: t0) else {
                Issue.record("expected another attempt")
                return
            }
            #expect(endpoint == Self.a)
            pauses.append(pause)
        }
        // Rounds 1, 2, 3…: 20, 40, 80, 160, 320, 500, 500, 500 ms, each drawn from its upper half.
        let nominal: [Duration] = [20, 40, 80, 160, 320, 500, 500, 500].map { .milliseconds($0) }
        for (pause, cap) in zip(pauses, nominal) {
            #expect(pause >= cap / 2 && pause <= cap, "\(pause) outside [\(cap / 2), \(cap)]")
        }
        // Once requests flow again, attempts count from zero.
        #expect(machine.helloAnswered(Self.hello(.single, term: 0), now: t0) == .resume(generation: 2))
        #expect(machine.resumed(generation: 2) == true)
        #expect(machine.connectionLost(generation: 2, now: t0) == .connect(Self.a, after: .zero))
    }

    @Test("the same seed gives the same pauses; another seed others (clients that lost one leader do not come back in step)")
    func jitterReplays() {
        func pauses(seed: UInt64) -> [Duration] {
            let t0 = ContinuousClock.now
            var machine = Self.machine([Self.a, Self.b], seed: seed)
            _ = machine.start(now: t0, openTimeout: .seconds(60))
            _ = machine.helloAnswered(Self.hello(.standby, term: 1), now: t0)
            return (0..<10).compactMap {
                _ = $0
                if case .connect(_, let pause) = machine.attemptFailed(.unreachable("x"), now: t0) { return pause }
                return nil
            }
        }
        #expect(pauses(seed: 1) == pauses(seed: 1))
        #expect(pauses(seed: 1) != pauses(seed: 2))
    }

    @Test("a standby's hint is followed at once; the leader is accepted; a standby is refused unless asked for")
    func followsHint() {
        let t0 = ContinuousClock.now
        var machine = Self.machine([Self.a, Self.b, Self.c])
        #expect(machine.start(now: t0, openTimeout: .seconds(5)) == .connect(Self.a, after: .zero))
        #expect(machine.helloAnswered(Self.hello(.standby, term: 4, leader: Self.c), now: t0) == .connect(Self.c, after: .zero))
        #expect(machine.newestTerm == 4)
        #expect(machine.helloAnswered(Self.hello(.leader, term: 4), now: t0) == .resume(generation: 1))

        var relaxed = Self.machine([Self.a], acceptsStandby: true)
        _ = relaxed.start(now: t0, openTimeout: .seconds(5))
        #expect(relaxed.helloAnswered(Self.hello(.standby, term: 4, leader: Self.c), now: t0) == .resume(generation: 1))
    }

    @Test("hints keep being followed round after round: a client that knows only A and B reaches the leader C that B names once the failover is over")
    func hintsAcrossRounds() {
        let t0 = ContinuousClock.now
        var machine = Self.machine([Self.a, Self.b])
        var action = machine.start(now: t0, openTimeout: .seconds(60))
        var answers = 0
        var reached = false
        for _ in 0..<40 {
            guard case .connect(let endpoint, _) = action else { break }
            switch endpoint {
            case Self.a: action = machine.attemptFailed(.unreachable("refused"), now: t0)
            case Self.b:
                // At first B still names the dead A; then the new leader C.
                answers += 1
                action = machine.helloAnswered(Self.hello(.standby, term: 5, leader: answers < 5 ? Self.a : Self.c), now: t0)
            default:
                action = machine.helloAnswered(Self.hello(.leader, term: 6), now: t0)
                reached = true
            }
            if reached { break }
        }
        #expect(reached && action == .resume(generation: 1), "\(action)")
    }

    @Test("a leader of an older term than one already seen is deposed without knowing it: refused")
    func olderTermRefused() {
        let t0 = ContinuousClock.now
        var machine = Self.machine([Self.a, Self.b])
        _ = machine.start(now: t0, openTimeout: .seconds(5))
        // b is a standby of term 6 that knows no leader yet.
        #expect(machine.helloAnswered(Self.hello(.standby, term: 6), now: t0) == .connect(Self.b, after: .zero))
        // The old leader of term 5 still calls itself leader: refused, next endpoint (a
        // second round over the endpoints, so after a pause).
        guard case .connect(let next, let pause) = machine.helloAnswered(Self.hello(.leader, term: 5), now: t0) else {
            Issue.record("expected another attempt")
            return
        }
        #expect(next == Self.a && pause >= .milliseconds(10) && pause <= .milliseconds(20), "\(next) after \(pause)")
        #expect(machine.phase == .connecting(Self.a))
        #expect(machine.newestTerm == 6)
        // The new leader of term 6 is accepted.
        #expect(machine.helloAnswered(Self.hello(.leader, term: 6), now: t0) == .resume(generation: 1))
    }

    @Test("a reply saying notLeader drops the current connection and goes to the hint; an old generation's is ignored")
    func notLeaderReply() {
        let t0 = ContinuousClock.now
        var machine = Self.machine([Self.a, Self.b])
        _ = machine.start(now: t0, openTimeout: .seconds(5))
        _ = machine.helloAnswered(Self.hello(.leader, term: 3), now: t0)
        #expect(machine.resumed(generation: 1) == true)
        #expect(machine.notLeader(generation: 0, hint: Self.b.description) == false)
        #expect(machine.phase == .ready(generation: 1))
        #expect(machine.notLeader(generation: 1, hint: Self.b.description) == true)
        #expect(machine.resumed(generation: 1) == false, "a dropped connection never opens the gate")
        #expect(machine.connectionLost(generation: 1, now: t0) == .connect(Self.b, after: .zero))
    }

    @Test("a connection dropped while its listeners resume counts as a failed attempt: no tight loop against a node that cannot take the sessions")
    func dropDuringResumeBacksOff() {
        let t0 = ContinuousClock.now
        var machine = Self.machine([Self.a])
        _ = machine.start(now: t0, openTimeout: .seconds(5))
        var pauses: [Duration] = []
        for generation in 1...4 {
            #expect(machine.helloAnswered(Self.hello(.leader, term: 2), now: t0) == .resume(generation: UInt64(generation)))
            #expect(machine.notLeader(generation: UInt64(generation), hint: nil) == true)
            guard case .connect(_, let pause) = machine.connectionLost(generation: UInt64(generation), now: t0) else {
                Issue.record("expected another attempt")
                return
            }
            pauses.append(pause)
        }
        #expect(pauses.allSatisfy { $0 > .zero }, "\(pauses)")
        #expect(pauses.last! > pauses.first!, "\(pauses)")
    }

    @Test("connect: a refusal fails at once; nobody answering in a whole round fails; standbys without a leader are waited for until the deadline")
    func openOutcomes() {
        let t0 = ContinuousClock.now
        var refused = Self.machine([Self.a, Self.b])
        _ = refused.start(now: t0, openTimeout: .seconds(5))
        let denied = LeaseholdError(code: .permissionDenied, message: "no such identity")
        #expect(refused.attemptFailed(.refused(denied), now: t0) == .fail(denied))
        #expect(refused.phase == .closed)

        var silent = Self.machine([Self.a, Self.b])
        _ = silent.start(now: t0, openTimeout: .seconds(5))
        #expect(silent.attemptFailed(.unreachable("refused"), now: t0) == .connect(Self.b, after: .zero))
        guard case .fail(let error) = silent.attemptFailed(.unreachable("refused"), now: t0) else {
            Issue.record("expected connect to fail")
            return
        }
        #expect(error.code == .unavailable && error.message.contains("127.0.0.1:7001, 127.0.0.1:7002"), "\(error)")

        // A node that took the connection but did not finish the handshake is there: tried
        // again until the deadline.
        var slow = Self.machine([Self.a])
        _ = slow.start(now: t0, openTimeout: .seconds(5))
        guard case .connect(Self.a, _) = slow.attemptFailed(.silent("no answer to Hello"), now: t0) else {
            Issue.record("a silent node was given up at once")
            return
        }
        guard case .fail = slow.attemptFailed(.silent("no answer to Hello"), now: t0 + .seconds(6)) else {
            Issue.record("a silent node was tried past the deadline")
            return
        }

        var waiting = Self.machine([Self.a, Self.b])
        _ = waiting.start(now: t0, openTimeout: .seconds(5))
        var now = t0
        var action = waiting.helloAnswered(Self.hello(.standby, term: 1), now: now)
        for _ in 0..<50 {
            guard case .connect(_, let pause) = action else { break }
            now += pause + .milliseconds(100)
            action = waiting.helloAnswered(Self.hello(.standby, term: 1), now: now)
        }
        guard case .fail(let late) = action else {
            Issue.record("expected connect to give up at its deadline: \(action)")
            return
        }
        #expect(now >= t0 + .seconds(5))
        #expect(late.code == .unavailable && late.message.contains("standby"), "\(late)")

        // After the first connection, a refusal is retried (the identity may come back).
        var opened = Self.machine([Self.a])
        _ = opened.start(now: t0, openTimeout: .seconds(5))
        _ = opened.helloAnswered(Self.hello(.single, term: 0), now: t0)
        #expect(opened.resumed(generation: 1) == true)
        _ = opened.connectionLost(generation: 1, now: t0 + .seconds(60))
        if case .fail = opened.attemptFailed(.refused(denied), now: t0 + .seconds(60)) { Issue.record("an opened connection gave up") }
    }

    @Test("closed stops everything")
    func closed() {
        let t0 = ContinuousClock.now
        var machine = Self.machine([Self.a])
        _ = machine.start(now: t0, openTimeout: .seconds(5))
        _ = machine.helloAnswered(Self.hello(.single, term: 0), now: t0)
        machine.close()
        #expect(machine.resumed(generation: 1) == false)
        #expect(machine.connectionLost(generation: 1, now: t0) == .stop)
        #expect(machine.attemptFailed(.unreachable("x"), now: t0) == .stop)
    }
}
