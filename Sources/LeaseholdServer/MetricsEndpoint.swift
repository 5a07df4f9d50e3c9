import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// The Prometheus scrape endpoint: plain HTTP/1.1 on its own port, `GET /metrics` in the
/// text exposition format, anything else 404 (or 405 for other methods).
///
/// Lifecycle: bound by ``LeaseholdServer/start(configuration:logger:)`` when
/// ``ServerConfiguration/metrics`` is set; served by ``run(sample:)`` next to the main
/// listener; ``close()`` at shutdown stops accepting. Each response closes its
/// connection, and accepted channels are in the server's registry, so a shutdown never
/// waits for a scraper.
struct MetricsEndpoint: Sendable {
    typealias HTTPChannel = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    let registry: PrometheusCollectorRegistry
    let serverChannel: NIOAsyncChannel<HTTPChannel, Never>

    var localPort: Int? { self.serverChannel.channel.localAddress?.port }

    static func bind(
        host: String,
        port: Int,
        group: any EventLoopGroup,
        registry: PrometheusCollectorRegistry,
        channels: ChannelRegistry
    ) async throws -> MetricsEndpoint {
        let serverChannel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                channels.add(channel)
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false)
                    return try HTTPChannel(wrappingChannelSynchronously: channel)
                }
            }
        return MetricsEndpoint(registry: registry, serverChannel: serverChannel)
    }

    /// Serves scrapes until ``close()``; `sample` refreshes the gauges before each one.
    func run(sample: @escaping @Sendable () -> Void) async {
        await withDiscardingTaskGroup { group in
            try? await self.serverChannel.executeThenClose { inbound in
                for try await channel in inbound {
                    group.addTask { try? await self.serve(channel, sample: sample) }
                }
            }
        }
    }

    func close() {
        self.serverChannel.channel.close(promise: nil)
    }

    private func serve(_ channel: HTTPChannel, sample: @Sendable () -> Void) async throws {
        try await channel.executeThenClose { inbound, outbound in
            var request: HTTPRequestHead?
            for try await part in inbound {
                switch part {
                case .head(let head):
                    request = head
                case .body:
                    continue
                case .end:
                    guard let head = request else { return }
                    let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
                    let status: HTTPResponseStatus
                    var body = ByteBuffer()
                    if path != "/metrics" {
                        status = .notFound
                        body.writeString("not found: the metrics are at /metrics\n")
                    } else if head.method != .GET && head.method != .HEAD {
                        status = .methodNotAllowed
                        body.writeString("method not allowed: use GET\n")
                    } else {
                        status = .ok
                        sample()
                        body.writeBytes(self.registry.emitToBuffer())
                    }
                    var headers = HTTPHeaders()
                    let contentType = status == .ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8"
                    headers.add(name: "Content-Type", value: contentType)
                    headers.add(name: "Content-Length", value: String(body.readableBytes))
                    headers.add(name: "Connection", value: "close")
                    var parts: [HTTPServerResponsePart] = [.head(HTTPResponseHead(version: head.version, status: status, headers: headers))]
                    if head.method != .HEAD { parts.append(.body(.byteBuffer(body))) }
                    parts.append(.end(nil))
                    try await outbound.write(contentsOf: parts)
                    return
                }
            }
        }
    }
}
