import LeaseholdCore
import LeaseholdMessages
import LeaseholdWire
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

@Suite("Frame codec")
struct FrameCodecTests {
    func frame(_ payload: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(payload.count))
        buffer.writeBytes(payload)
        return buffer
    }

    @Test("frames split and joined at every byte boundary decode to the same payloads")
    func dripFed() throws {
        let one: [UInt8] = [1, 2, 3]
        let empty: [UInt8] = []
        let big = [UInt8](repeating: 7, count: 1_000)
        var two = self.frame(one)
        var second = self.frame(big)
        two.writeBuffer(&second)
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: [
                (self.frame(one), [ByteBuffer(bytes: one)]),
                (self.frame(empty), [ByteBuffer(bytes: empty)]),
                (two, [ByteBuffer(bytes: one), ByteBuffer(bytes: big)]),
            ],
            decoderFactory: { FrameDecoder(maxFrameLength: 4_096) }
        )
    }

    @Test("an oversize frame is refused from its length prefix alone, before its bytes arrive")
    func oversize() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameLength: 1_024)))
        var header = ByteBuffer()
        header.writeInteger(UInt32(1_025))
        #expect(throws: FrameTooLargeError(length: 1_025, limit: 1_024)) { try channel.writeInbound(header) }
        _ = try? channel.finish()
    }

    @Test("a frame of exactly the limit is accepted")
    func exactLimit() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameLength: 16)))
        try channel.writeInbound(self.frame([UInt8](repeating: 1, count: 16)))
        let payload = try #require(try channel.readInbound(as: ByteBuffer.self))
        #expect(payload.readableBytes == 16)
        #expect(try channel.finish().isClean)
    }

    @Test("a connection that ends inside a frame is reported as truncated", arguments: [2, 4, 7])
    func truncated(bytes: Int) throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        var partial = self.frame([1, 2, 3, 4, 5, 6])
        partial.moveWriterIndex(to: bytes)
        try channel.writeInbound(partial)
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        #expect(throws: TruncatedFrameError(received: bytes)) { _ = try channel.finish() }
    }

    @Test("the encoder writes a 4-byte big-endian length before the payload")
    func encoder() throws {
        let channel = EmbeddedChannel(handler: MessageToByteHandler(FrameEncoder()))
        try channel.writeOutbound(ByteBuffer(bytes: [9, 8, 7]))
        let written = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(Array(written.readableBytesView) == [0, 0, 0, 3, 9, 8, 7])
        #expect(try channel.finish().isClean)
    }

    @Test("garbage bytes are a protocolError, not a crash")
    func garbage() {
        for payload: [UInt8] in [[0xFF, 0xFF, 0xFF], [0x0A, 0x80], [0x12, 0x05, 0x01]] {
            let error = #expect(throws: LeaseholdError.self) { try EnvelopeCodec.decode(ByteBuffer(bytes: payload)) }
            #expect(error?.code == .protocolError)
        }
    }

    @Test("an envelope survives encode and decode")
    func envelopeRoundTrip() throws {
        var request = WireRequest()
        request.session = 7
        request.tag.slot = 3
        request.tag.sequence = 9
        request.keepAlive = .init()
        let envelope = EnvelopeCodec.request(id: 42, request)
        #expect(try EnvelopeCodec.decode(EnvelopeCodec.encode(envelope)) == envelope)
    }
}
