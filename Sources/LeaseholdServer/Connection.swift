import LeaseholdCore
import LeaseholdWire
import Logging
import NIOCore
import Synchronization

/// One client connection as the Coordinator's owner sees it: who is calling, the
/// sessions attached to it, and where its frames go.
///
/// Lifecycle: created after the TLS handshake and `Hello`; sessions are attached by
/// openSession and resumeSession (a resume elsewhere detaches them and closes this
/// connection as superseded); requests count as in flight from arrival to reply; when
/// the peer goes away or the server closes it, the owner detaches its sessions and
/// cancels their waits, and the outbox drains before the channel closes.
final class Connection: Sendable {
    struct State {
        var sessions: Set<SessionID> = []
        var inFlight = 0
        var closing = false
    }

    /// A number for logs.
    let number: UInt64
    let caller: Caller
    let outbox: Outbox
    let channel: any Channel
    let logger: Logger
    let state = Mutex(State())

    init(number: UInt64, caller: Caller, outbox: Outbox, channel: any Channel, logger: Logger) {
        self.number = number
        self.caller = caller
        self.outbox = outbox
        self.channel = channel
        self.logger = logger
    }

    var sessions: Set<SessionID> { self.state.withLock { $0.sessions } }

    /// Counts a new request in flight.
    /// - Returns: `false` when `limit` requests are unanswered already.
    func admit(limit: Int) -> Bool {
        self.state.withLock { state in
            guard state.inFlight < limit else { return false }
            state.inFlight += 1
            return true
        }
    }

    /// Sends the response to request `id` (which is no longer in flight).
    func reply(_ id: UInt64, _ response: WireResponse) {
        self.state.withLock { $0.inFlight = Swift.max(0, $0.inFlight - 1) }
        self.outbox.send(EnvelopeCodec.encode(EnvelopeCodec.response(id: id, response), allocator: self.channel.allocator))
    }

    func reply(_ id: UInt64, _ reply: Reply) {
        self.reply(id, reply.wire)
    }

    func push(_ push: WirePush) {
        self.outbox.send(EnvelopeCodec.encode(EnvelopeCodec.push(push), allocator: self.channel.allocator))
    }

    func push(_ push: Push, session: SessionID) {
        var wire = WirePush()
        wire.sessionPush = push.wire(session: session)
        self.push(wire)
    }

    /// Tells the peer why, stops accepting frames, and lets the outbox drain; the writer
    /// then closes the channel.
    func close(_ reason: Leasehold_V1_Closing.Reason, _ message: String) {
        let first = self.state.withLock { state -> Bool in
            defer { state.closing = true }
            return !state.closing
        }
        guard first else { return }
        self.logger.info("closing connection", metadata: ["connection.reason": "\(reason)", "connection.message": "\(message)"])
        var push = WirePush()
        push.closing.reason = reason
        push.closing.message = message
        self.push(push)
        self.outbox.finish()
    }

    var isClosing: Bool { self.state.withLock { $0.closing } }
}
