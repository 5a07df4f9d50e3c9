import NIOCore
import NIOPosix
import Synchronization

/// A TCP relay on 127.0.0.1 between clients and a server, for tests that need the network
/// to fail: it cuts every relayed connection, refuses new ones while told to, and can
/// swallow what the server sends (a reply lost on the way back). The TLS session runs
/// end to end through it; the proxy sees only bytes.
public final class FaultProxy: Sendable {
    struct State {
        var refusing = false
        var swallowingReplies = false
        var connections: [(client: any Channel, server: any Channel)] = []
    }

    let state = Mutex(State())
    let channel: any Channel
    let group: MultiThreadedEventLoopGroup

    private init(channel: any Channel, group: MultiThreadedEventLoopGroup) {
        self.channel = channel
        self.group = group
    }

    /// Listens on a free port of 127.0.0.1 and relays to `port` there.
    public static func start(to port: Int) async throws -> FaultProxy {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let box = ProxyBox()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                guard let proxy = box.proxy, !proxy.isRefusing else { return inbound.close() }
                return ClientBootstrap(group: inbound.eventLoop)
                    .connect(host: "127.0.0.1", port: port)
                    .flatMapThrowing { outbound in
                        // A cut or a refusal that came while connecting applies to it too.
                        let admitted = proxy.state.withLock { state -> Bool in
                            guard !state.refusing else { return false }
                            state.connections.append((inbound, outbound))
                            return true
                        }
                        guard admitted else {
                            outbound.close(promise: nil)
                            throw ChannelError.ioOnClosedChannel
                        }
                        try inbound.pipeline.syncOperations.addHandler(Relay(peer: outbound, proxy: proxy, fromServer: false))
                        try outbound.pipeline.syncOperations.addHandler(Relay(peer: inbound, proxy: proxy, fromServer: true))
                        inbound.closeFuture.whenComplete { _ in
                            proxy.state.withLock { state in state.connections.removeAll { $0.client === inbound } }
                        }
                    }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let proxy = FaultProxy(channel: channel, group: group)
        box.set(proxy)
        return proxy
    }

    /// The port clients connect to.
    public var port: Int { self.channel.localAddress?.port ?? 0 }

    public var isRefusing: Bool { self.state.withLock { $0.refusing } }

    /// While set, a new connection is closed as soon as it is accepted, as if the server
    /// were unreachable.
    public func refuse(_ refusing: Bool) {
        self.state.withLock { $0.refusing = refusing }
    }

    /// While set, bytes from the server are dropped instead of relayed.
    public func swallowReplies(_ swallowing: Bool) {
        self.state.withLock { $0.swallowingReplies = swallowing }
    }

    public var isSwallowing: Bool { self.state.withLock { $0.swallowingReplies } }

    /// Closes every relayed connection, both sides.
    public func cutAll() {
        let connections = self.state.withLock { state in
            defer { state.connections.removeAll() }
            return state.connections
        }
        for connection in connections {
            connection.client.close(promise: nil)
            connection.server.close(promise: nil)
        }
    }

    public func stop() async throws {
        self.cutAll()
        try await self.channel.close()
        try await self.group.shutdownGracefully()
    }
}

/// The proxy, once it exists, for the accept handler that is built before it.
private final class ProxyBox: Sendable {
    private let value = Mutex<FaultProxy?>(nil)
    var proxy: FaultProxy? { self.value.withLock { $0 } }
    func set(_ proxy: FaultProxy) { self.value.withLock { $0 = proxy } }
}

/// Forwards what one side reads to the other; closes the other when this side closes.
private final class Relay: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let peer: any Channel
    let proxy: FaultProxy
    let fromServer: Bool

    init(peer: any Channel, proxy: FaultProxy, fromServer: Bool) {
        self.peer = peer
        self.proxy = proxy
        self.fromServer = fromServer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = Self.unwrapInboundIn(data)
        if self.fromServer && self.proxy.isSwallowing { return }
        self.peer.writeAndFlush(bytes, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.peer.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
