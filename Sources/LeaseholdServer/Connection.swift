import LeaseholdCore
import LeaseholdMessages
import LeaseholdWire
import Logging
import NIOCore
import Synchronization

/// One client connection as the Coordinator's owner sees it: who is calling, and where
/// its frames go.
///
/// Lifecycle: created after the TLS handshake and `Hello`; requests count as in flight
/// from arrival to reply, and their ids must be unique among those in flight; the owner attaches sessions to it (openSession, resumeSession)
/// and detaches them (a resume elsewhere closes it as superseded); when the peer goes
/// away or the server closes it, the owner detaches its sessions and cancels their waits,
/// and the outbox drains before the channel closes. Frames leave as ``ServerMessage``
/// values and are encoded in the pipeline, on the channel's event loop.
final class Connection: Sendable {
    struct State {
        /// Ids of the requests read and not yet answered.
        var outstanding: Set<UInt64> = []
        var closing = false
    }

    /// Whether a request may go on.
    enum Admission {
        case admitted
        /// Its id is that of a request still unanswered on this connection.
        case duplicate
        /// `limit` requests are unanswered already.
        case full
    }

    /// A number for logs.
    let number: UInt64
    let caller: Caller
    let outbox: Outbox<ServerMessage>
    let channel: any Channel
    let logger: Logger
    let state = Mutex(State())

    init(number: UInt64, caller: Caller, outbox: Outbox<ServerMessage>, channel: any Channel, logger: Logger) {
        self.number = number
        self.caller = caller
        self.outbox = outbox
        self.channel = channel
        self.logger = logger
    }

    /// Counts request `id` in flight until its answer is sent.
    func admit(id: UInt64, limit: Int) -> Admission {
        self.state.withLock { state in
            guard state.outstanding.count < limit else { return .full }
            return state.outstanding.insert(id).inserted ? .admitted : .duplicate
        }
    }

    /// Sends a frame; an answer ends its request's time in flight.
    func send(_ message: ServerMessage) {
        if let id = message.requestID { self.state.withLock { _ = $0.outstanding.remove(id) } }
        self.outbox.send(message)
    }

    func reply(_ id: UInt64, _ reply: Reply) {
        self.send(.reply(id: id, reply))
    }

    /// Tells the peer why, stops accepting frames, and lets the outbox drain; the writer
    /// then closes the channel.
    func close(_ reason: Leasehold_V1_Closing.Reason, _ message: String, session: SessionID? = nil) {
        let first = self.state.withLock { state -> Bool in
            defer { state.closing = true }
            return !state.closing
        }
        guard first else { return }
        self.logger.info("closing connection", metadata: ["connection.reason": "\(reason)", "connection.message": "\(message)"])
        self.outbox.send(.closing(reason, message, session: session))
        self.outbox.finish()
    }

    var isClosing: Bool { self.state.withLock { $0.closing } }
}
