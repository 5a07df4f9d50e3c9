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
/// from arrival to reply; the owner attaches sessions to it (openSession, resumeSession)
/// and detaches them (a resume elsewhere closes it as superseded); when the peer goes
/// away or the server closes it, the owner detaches its sessions and cancels their waits,
/// and the outbox drains before the channel closes. Frames leave as ``ServerMessage``
/// values and are encoded in the pipeline, on the channel's event loop.
final class Connection: Sendable {
    struct State {
        var inFlight = 0
        var closing = false
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

    /// Counts a new request in flight.
    /// - Returns: `false` when `limit` requests are unanswered already.
    func admit(limit: Int) -> Bool {
        self.state.withLock { state in
            guard state.inFlight < limit else { return false }
            state.inFlight += 1
            return true
        }
    }

    /// Sends a frame; a reply ends its request's time in flight.
    func send(_ message: ServerMessage) {
        switch message {
        case .reply, .response, .annotated, .fenceSubscription: self.state.withLock { $0.inFlight = Swift.max(0, $0.inFlight - 1) }
        default: break
        }
        self.outbox.send(message)
    }

    func reply(_ id: UInt64, _ reply: Reply) {
        self.send(.reply(id: id, reply))
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
        self.outbox.send(.closing(reason, message))
        self.outbox.finish()
    }

    var isClosing: Bool { self.state.withLock { $0.closing } }
}
