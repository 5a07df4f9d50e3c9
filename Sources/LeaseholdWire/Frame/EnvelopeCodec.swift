import LeaseholdCore
import LeaseholdMessages
import NIOCore
import SwiftProtobuf

/// Turns frame payloads into envelopes and back.
public enum EnvelopeCodec {
    /// Decodes one frame's payload.
    /// - Throws: `protocolError` naming the problem when the bytes are not an envelope.
    public static func decode(_ payload: ByteBuffer) throws(LeaseholdError) -> Leasehold_V1_Envelope {
        do {
            var options = BinaryDecodingOptions()
            options.messageDepthLimit = 32
            return try Leasehold_V1_Envelope(serializedBytes: PayloadBytes(buffer: payload), options: options)
        } catch {
            throw .protocolError("a frame of \(payload.readableBytes) bytes is not a protobuf Envelope: \(error)")
        }
    }

    /// Encodes an envelope into a new payload buffer.
    public static func encode(_ envelope: Leasehold_V1_Envelope) -> ByteBuffer {
        // Serializing a message built in memory cannot fail (no required fields in proto3).
        let bytes: PayloadBytes = try! envelope.serializedBytes()
        return bytes.buffer
    }

    /// A request envelope.
    public static func request(id: UInt64, _ request: Leasehold_V1_Request) -> Leasehold_V1_Envelope {
        var envelope = Leasehold_V1_Envelope()
        envelope.id = id
        envelope.request = request
        return envelope
    }

    /// A response envelope.
    public static func response(id: UInt64, _ response: Leasehold_V1_Response) -> Leasehold_V1_Envelope {
        var envelope = Leasehold_V1_Envelope()
        envelope.id = id
        envelope.response = response
        return envelope
    }

    /// A push envelope (id 0).
    public static func push(_ push: Leasehold_V1_Push) -> Leasehold_V1_Envelope {
        var envelope = Leasehold_V1_Envelope()
        envelope.push = push
        return envelope
    }
}

/// A ByteBuffer as swift-protobuf's byte container, so that messages are read from and
/// written into NIO buffers without an intermediate array.
struct PayloadBytes: SwiftProtobufContiguousBytes {
    var buffer: ByteBuffer

    init(buffer: ByteBuffer) {
        self.buffer = buffer
    }

    init(repeating: UInt8, count: Int) {
        self.buffer = ByteBuffer(repeating: repeating, count: count)
    }

    init<S: Sequence>(_ sequence: S) where S.Element == UInt8 {
        self.buffer = ByteBuffer(bytes: sequence)
    }

    var count: Int { self.buffer.readableBytes }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try self.buffer.withUnsafeReadableBytes(body)
    }

    mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try self.buffer.withUnsafeMutableReadableBytes(body)
    }
}
