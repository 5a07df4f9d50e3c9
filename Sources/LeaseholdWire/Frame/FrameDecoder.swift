import NIOCore

/// A frame's announced length is above the limit. The connection is closed: the bytes
/// that follow cannot be trusted to be a frame boundary.
public struct FrameTooLargeError: Error, Hashable, Sendable, CustomStringConvertible {
    public var length: Int
    public var limit: Int

    public init(length: Int, limit: Int) {
        self.length = length
        self.limit = limit
    }

    public var description: String {
        "frame of \(self.length) bytes is above the limit of \(self.limit) bytes"
    }
}

/// The connection ended in the middle of a frame.
public struct TruncatedFrameError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Bytes of the incomplete frame that arrived, its length prefix included.
    public var received: Int

    public init(received: Int) {
        self.received = received
    }

    public var description: String {
        "the connection ended inside a frame (\(self.received) bytes of it arrived)"
    }
}

/// Splits a byte stream into frames: a 4-byte big-endian payload length, then the
/// payload. The length prefix alone decides whether a frame is too large, so an
/// oversize frame is refused before its bytes are buffered.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    /// The largest payload accepted.
    public let maxFrameLength: Int

    public init(maxFrameLength: Int = FrameLimits.defaultMaxFrameLength) {
        self.maxFrameLength = maxFrameLength
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard Int(length) <= self.maxFrameLength else {
            throw FrameTooLargeError(length: Int(length), limit: self.maxFrameLength)
        }
        return buffer.readLengthPrefixedSlice(as: UInt32.self)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        if let frame = try self.decode(buffer: &buffer) { return frame }
        if seenEOF && buffer.readableBytes > 0 {
            throw TruncatedFrameError(received: buffer.readableBytes)
        }
        return nil
    }
}

/// Frame size limits.
public enum FrameLimits {
    /// 4 MiB, the default of both server and client.
    public static let defaultMaxFrameLength = 4 * 1024 * 1024
}
