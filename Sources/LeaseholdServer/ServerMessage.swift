import LeaseholdCore
import LeaseholdJournal
import LeaseholdMessages
import LeaseholdWire
import NIOCore

/// A frame the server sends, as plain values: mapped to its protobuf message and
/// serialized by ``ServerMessageEncoder`` in the connection's pipeline, on its event loop,
/// so that neither the Coordinator's owner nor the journal's thread encodes anything.
enum ServerMessage: Sendable {
    /// The answer to request `id`.
    case reply(id: UInt64, Reply)
    /// An answer built by the server itself (the handshake).
    case response(id: UInt64, WireResponse)
    /// A successful `status` or `listSessions` reply with what only the server knows: its
    /// uptime, and which of the listed sessions are connected.
    case annotated(id: UInt64, Reply, uptime: Duration, connected: Set<SessionID>)
    /// A standby's answer to an admin query, from the state at a log position.
    case reflecting(id: UInt64, Reply, LogPosition)
    /// The answer to `subscribeFences`: the registered target and the fences after the
    /// revision it asked from.
    case fenceSubscription(id: UInt64, StorageTarget, [Fence])
    /// A numbered push of a session: recalls, fenced, sessionExpiring.
    case sessionPush(Push, SessionID)
    /// A fence feed entry, to a storage target.
    case fence(Fence)
    /// An admin event, to a watcher.
    case event(Event)
    /// Why the server closes the connection (its last frame).
    /// Why the connection closes; `session`: the one another connection resumed (superseded).
    case closing(Leasehold_V1_Closing.Reason, String, session: SessionID? = nil)

    /// The request this frame answers; `nil` for pushes.
    var requestID: UInt64? {
        switch self {
        case .reply(let id, _), .response(let id, _), .annotated(let id, _, _, _), .reflecting(let id, _, _), .fenceSubscription(let id, _, _): id
        case .sessionPush, .fence, .event, .closing: nil
        }
    }

    var envelope: WireEnvelope {
        switch self {
        case .reply(let id, let reply):
            return EnvelopeCodec.response(id: id, reply.wire)
        case .response(let id, let response):
            return EnvelopeCodec.response(id: id, response)
        case .annotated(let id, let reply, let uptime, let connected):
            var response = reply.wire
            if case .volumeStatus? = response.result {
                response.volumeStatus.uptimeNanos = uptime.nanosecondsClamped
            }
            if case .sessionList? = response.result {
                for index in response.sessionList.sessions.indices {
                    let session = SessionID(rawValue: response.sessionList.sessions[index].session)
                    response.sessionList.sessions[index].connected = connected.contains(session)
                }
            }
            return EnvelopeCodec.response(id: id, response)
        case .reflecting(let id, let reply, let position):
            var response = reply.wire
            response.reflects.term = position.term
            response.reflects.index = position.index
            return EnvelopeCodec.response(id: id, response)
        case .fenceSubscription(let id, let target, let fences):
            var response = WireResponse()
            response.fenceSubscription.target = target.wire
            response.fenceSubscription.fences = fences.map(\.wire)
            return EnvelopeCodec.response(id: id, response)
        case .sessionPush(let push, let session):
            var wire = WirePush()
            wire.sessionPush = push.wire(session: session)
            return EnvelopeCodec.push(wire)
        case .fence(let fence):
            var wire = WirePush()
            wire.fence = fence.wire
            return EnvelopeCodec.push(wire)
        case .event(let event):
            var wire = WirePush()
            wire.event = event.wire
            return EnvelopeCodec.push(wire)
        case .closing(let reason, let message, let session):
            var wire = WirePush()
            wire.closing.reason = reason
            wire.closing.message = message
            if let session { wire.closing.session = session.rawValue }
            return EnvelopeCodec.push(wire)
        }
    }
}

/// The last handler before the frame codec's bytes: a ``ServerMessage`` to one
/// length-prefixed frame.
struct ServerMessageEncoder: MessageToByteEncoder {
    typealias OutboundIn = ServerMessage

    func encode(data: ServerMessage, out: inout ByteBuffer) throws {
        let payload = EnvelopeCodec.encode(data.envelope)
        try out.writeLengthPrefixed(as: UInt32.self) { $0.writeImmutableBuffer(payload) }
    }
}
