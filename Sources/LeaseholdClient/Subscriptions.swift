import LeaseholdCore
import LeaseholdWire
import Synchronization

// MARK: - Feeds that survive reconnects
//
// The fence feed (storage targets) and the admin event stream are subscriptions: a
// request that returns what is already there and makes the server push what comes
// later on this connection. After a reconnect the subscription is made again from the
// last revision delivered, and revisions already delivered are skipped, so the consumer
// sees every entry once, in order. Pushes that arrive while a (re)subscription's reply
// is being read are held back and delivered after it.

/// Subscription bookkeeping shared by both feeds.
struct FeedState<Item: Sendable> {
    var last: UInt64
    var subscribing = false
    var heldBack: [Item] = []
    var continuation: AsyncThrowingStream<Item, any Error>.Continuation?
}

final class FenceSubscription: ConnectionListener, Sendable {
    let connection: ClientConnection
    let state: Mutex<FeedState<Fence>>

    init(after revision: FenceRevision, connection: ClientConnection) {
        self.connection = connection
        self.state = Mutex(FeedState(last: revision.rawValue))
    }

    func start() -> AsyncThrowingStream<Fence, any Error> {
        let (stream, continuation) = AsyncThrowingStream<Fence, any Error>.makeStream()
        self.state.withLock { $0.continuation = continuation }
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            self.connection.unregister(self)
        }
        self.connection.register(self)
        Task { await self.subscribe(duringResume: false) }
        return stream
    }

    func subscribe(duringResume: Bool) async {
        let after = self.state.withLock { state -> UInt64 in
            state.subscribing = true
            return state.last
        }
        do {
            let response = try await self.connection.send(try WireRequestBody(command: .subscribeFences(after: FenceRevision(rawValue: after))).wire(), duringResume: duringResume)
            if case .error(let error)? = response.result { throw LeaseholdError(wire: error) }
            var fences: [Fence] = []
            for fence in response.fenceSubscription.fences { fences.append(try Fence(wire: fence)) }
            self.finishSubscribing(with: fences)
        } catch is ConnectionLost {
            // The next reconnect subscribes again.
            self.state.withLock { $0.subscribing = false }
        } catch {
            let continuation = self.state.withLock { $0.continuation }
            continuation?.finish(throwing: error)
            self.connection.unregister(self)
        }
    }

    func finishSubscribing(with fences: [Fence]) {
        let (continuation, deliver) = self.state.withLock { state -> (AsyncThrowingStream<Fence, any Error>.Continuation?, [Fence]) in
            var deliver: [Fence] = []
            for fence in fences + state.heldBack.sorted(by: { $0.revision < $1.revision }) where fence.revision.rawValue > state.last {
                state.last = fence.revision.rawValue
                deliver.append(fence)
            }
            state.heldBack = []
            state.subscribing = false
            return (state.continuation, deliver)
        }
        for fence in deliver { continuation?.yield(fence) }
    }

    func reconnected(_ connection: ClientConnection, epoch: UInt64) async {
        await self.subscribe(duringResume: true)
    }

    func received(_ push: WirePush) {
        guard case .fence(let wire)? = push.body, let fence = try? Fence(wire: wire) else { return }
        let (continuation, deliver) = self.state.withLock { state -> (AsyncThrowingStream<Fence, any Error>.Continuation?, Bool) in
            if state.subscribing {
                state.heldBack.append(fence)
                return (nil, false)
            }
            guard fence.revision.rawValue > state.last else { return (nil, false) }
            state.last = fence.revision.rawValue
            return (state.continuation, true)
        }
        if deliver { continuation?.yield(fence) }
    }
}

final class EventWatch: ConnectionListener, Sendable {
    let connection: ClientConnection
    let state: Mutex<FeedState<Event>>

    init(after revision: EventRevision, client: LeaseholdClient) {
        self.connection = client.connection
        self.state = Mutex(FeedState(last: revision.rawValue))
    }

    func start() -> AsyncThrowingStream<Event, any Error> {
        let (stream, continuation) = AsyncThrowingStream<Event, any Error>.makeStream()
        self.state.withLock { $0.continuation = continuation }
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            self.connection.unregister(self)
        }
        self.connection.register(self)
        Task { await self.subscribe(duringResume: false) }
        return stream
    }

    func subscribe(duringResume: Bool) async {
        let after = self.state.withLock { state -> UInt64 in
            state.subscribing = true
            return state.last
        }
        do {
            let response = try await self.connection.send(try WireRequestBody(command: .watchEvents(after: EventRevision(rawValue: after))).wire(), duringResume: duringResume)
            guard case .events(let events) = try Reply(wire: response).get() else { throw LeaseholdSession.unexpected("watchEvents") }
            let (continuation, deliver) = self.state.withLock { state -> (AsyncThrowingStream<Event, any Error>.Continuation?, [Event]) in
                var deliver: [Event] = []
                for event in events + state.heldBack.sorted(by: { $0.revision < $1.revision }) where event.revision.rawValue > state.last {
                    state.last = event.revision.rawValue
                    deliver.append(event)
                }
                state.heldBack = []
                state.subscribing = false
                return (state.continuation, deliver)
            }
            for event in deliver { continuation?.yield(event) }
        } catch is ConnectionLost {
            self.state.withLock { $0.subscribing = false }
        } catch {
            let continuation = self.state.withLock { $0.continuation }
            continuation?.finish(throwing: error)
            self.connection.unregister(self)
        }
    }

    func reconnected(_ connection: ClientConnection, epoch: UInt64) async {
        await self.subscribe(duringResume: true)
    }

    func received(_ push: WirePush) {
        guard case .event(let wire)? = push.body, let event = try? Event(wire: wire) else { return }
        let (continuation, deliver) = self.state.withLock { state -> (AsyncThrowingStream<Event, any Error>.Continuation?, Bool) in
            if state.subscribing {
                state.heldBack.append(event)
                return (nil, false)
            }
            guard event.revision.rawValue > state.last else { return (nil, false) }
            state.last = event.revision.rawValue
            return (state.continuation, true)
        }
        if deliver { continuation?.yield(event) }
    }
}

extension Reply {
    /// The response, or the error thrown.
    func get() throws(LeaseholdError) -> Response {
        switch self {
        case .success(let response): return response
        case .failure(let error): throw error
        }
    }
}

// MARK: - Storage targets (need the target role)

extension LeaseholdClient {
    /// Registers this identity as a storage target and follows the fence feed: every
    /// fence after `revision`, then new ones as sessions are evicted, across reconnects.
    /// Apply each fence (reject I/O of the session with tokens up to `maxToken`), then
    /// ``acknowledgeFence(_:)`` it.
    public func fenceFeed(after revision: FenceRevision = 0) -> AsyncThrowingStream<Fence, any Error> {
        FenceSubscription(after: revision, connection: self.connection).start()
    }

    /// This target has applied every fence up to `revision`.
    @discardableResult
    public func acknowledgeFence(_ revision: FenceRevision) async throws -> StorageTarget {
        guard case .fenceAcknowledged(let target) = try await self.call(.core(.acknowledgeFence(revision)), retry: true) else {
            throw LeaseholdSession.unexpected("acknowledgeFence")
        }
        return target
    }

    /// Fences after `revision` still in the feed.
    public func readFences(after revision: FenceRevision = 0) async throws -> [Fence] {
        guard case .fences(let fences) = try await self.call(.core(.readFences(after: revision)), retry: true) else { throw LeaseholdSession.unexpected("readFences") }
        return fences
    }
}
