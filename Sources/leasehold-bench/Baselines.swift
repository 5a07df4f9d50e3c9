import Foundation
import Histogram
import NIOCore
import NIOPosix

/// The reference points measured in the same run: a raw 4 KiB write+fsync loop on the
/// data directory's disk, and a loopback TCP echo round trip.
enum Baselines {
    /// p50/p99/max of `count` × (pwrite 4 KiB + fsync) in `directory`.
    static func fsync(in directory: String, count: Int = 2_000) throws -> Histogram<UInt64> {
        let path = (directory as NSString).appendingPathComponent("fsync-baseline.bin")
        let fd = open(path, O_CREAT | O_WRONLY, 0o644)
        guard fd >= 0 else { throw BenchError("cannot create \(path)") }
        defer {
            close(fd)
            unlink(path)
        }
        let block = [UInt8](repeating: 0xA5, count: 4_096)
        var histogram = Histogram<UInt64>(highestTrackableValue: 10_000_000_000, numberOfSignificantValueDigits: .three)
        for index in 0..<count {
            let began = ContinuousClock.now
            guard pwrite(fd, block, 4_096, off_t(index % 256) * 4_096) == 4_096, Foundation.fsync(fd) == 0 else { throw BenchError("write+fsync failed") }
            _ = histogram.record(UInt64((ContinuousClock.now - began).nanosecondsValue))
        }
        return histogram
    }

    /// p50/p99/max of `count` sequential 64-byte round trips over loopback TCP to an
    /// echo server on NIO (the transport the daemon uses, without TLS and protobuf).
    static func echo(count: Int = 5_000) async throws -> Histogram<UInt64> {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await ServerBootstrap(group: group)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in channel.pipeline.addHandler(EchoHandler()) }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let port = server.localAddress!.port!
        let histogram = try Self.roundTrips(port: port, count: count)
        try await server.close()
        try await group.shutdownGracefully()
        return histogram
    }

    static func roundTrips(port: Int, count: Int) throws -> Histogram<UInt64> {
        let socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw BenchError("cannot connect to the echo server") }
        var one: Int32 = 1
        setsockopt(socket, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var histogram = Histogram<UInt64>(highestTrackableValue: 10_000_000_000, numberOfSignificantValueDigits: .three)
        let message = [UInt8](repeating: 7, count: 64)
        var reply = [UInt8](repeating: 0, count: 64)
        for _ in 0..<count {
            let began = ContinuousClock.now
            guard send(socket, message, 64, 0) == 64 else { throw BenchError("echo send failed") }
            var received = 0
            while received < 64 {
                let n = reply.withUnsafeMutableBytes { recv(socket, $0.baseAddress! + received, 64 - received, 0) }
                guard n > 0 else { throw BenchError("echo receive failed") }
                received += n
            }
            _ = histogram.record(UInt64((ContinuousClock.now - began).nanosecondsValue))
        }
        return histogram
    }
}

final class EchoHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(data, promise: nil)
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
