import LeaseholdCore
import LeaseholdMessages
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

/// One feed: a subscription request that returns the entries after a revision and
/// makes the server push later ones, kept up across reconnects.
final class FeedSubscription<Item: Sendable>: ConnectionListener, Sendable {
    struct State {
        var last: UInt64
        var subscribing = false
        var heldBack: [Item] = []
        var continuation: AsyncThrowingStream<Item, any Error>.Continuation?
    }

    let connection: ClientConnection
    let state: Mutex<State>
    /// The subscription request for entries after a revision.
    let request: @Sendable (UInt64) -> WireCommand
    /// The entries a subscription reply carries, and whether more follow them (the
    /// subscription was not made yet; ask again after the last). Throws the server's error.
    let entries: @Sendable (WireResponse) throws -> (items: [Item], more: Bool)
    /// The entry a push carries, if it is one of this feed's.
    let pushed: @Sendable (WirePush) -> Item?
    let revision: @Sendable (Item) -> UInt64

    init(
        after start: UInt64,
        connection: ClientConnection,
        request: @escaping @Sendable (UInt64) -> WireCommand,
        entries: @escaping @Sendable (WireResponse) throws -> (items: [Item], more: Bool),
        pushed: @escaping @Sendable (WirePush) -> Item?,
        revision: @escaping @Sendable (Item) -> UInt64
    ) {
        self.connection = connection
        self.state = Mutex(State(last: start))
        self.request = request
        self.entries = entries
        self.pushed = pushed
        self.revision = revision
    }

    func start() -> AsyncThrowingStream<Item, any Error> {
        let (stream, continuation) = AsyncThrowingStream<Item, any Error>.makeStream()
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
        var more = true
        while more {
            more = await self.subscribeOnce(duringResume: duringResume)
        }
    }

    /// One subscription request; whether the reply said more entries follow.
    func subscribeOnce(duringResume: Bool) async -> Bool {
        let after = self.state.withLock { state -> UInt64 in
            state.subscribing = true
            return state.last
        }
        do {
            let response = try await self.connection.send(try WireRequestBody(command: self.request(after)).wire(), duringResume: duringResume)
            let (items, more) = try self.entries(response)
            let (continuation, deliver) = self.state.withLock { state -> (AsyncThrowingStream<Item, any Error>.Continuation?, [Item]) in
                var deliver: [Item] = []
                for item in items + state.heldBack.sorted(by: { self.revision($0) < self.revision($1) }) where self.revision(item) > state.last {
                    state.last = self.revision(item)
                    deliver.append(item)
                }
                state.heldBack = []
                state.subscribing = false
                return (state.continuation, deliver)
            }
            for item in deliver { continuation?.yield(item) }
            return more && !items.isEmpty
        } catch is ConnectionLost {
            // The next reconnect subscribes again.
            self.state.withLock { $0.subscribing = false }
        } catch {
            let continuation = self.state.withLock { $0.continuation }
            continuation?.finish(throwing: error)
            self.connection.unregister(self)
        }
        return false
    }

    func reconnected(_ connection: ClientConnection, epoch: UInt64) async -> ResumeOutcome {
        // A lost connection or a node that no longer leads has dropped this connection
        // already (the next one subscribes again).
        await self.subscribe(duringResume: true)
        return .done
    }

    func received(_ push: WirePush) {
        guard let item = self.pushed(push) else { return }
        let continuation = self.state.withLock { state -> AsyncThrowingStream<Item, any Error>.Continuation? in
            if state.subscribing {
                state.heldBack.append(item)
                return nil
            }
            guard self.revision(item) > state.last else { return nil }
            state.last = self.revision(item)
            return state.continuation
        }
        continuation?.yield(item)
    }
}

extension FeedSubscription where Item == Fence {
    /// The fence feed of a storage target.
    static func fences(after revision: FenceRevision, connection: ClientConnection) -> FeedSubscription<Fence> {
        FeedSubscription(
            after: revision.rawValue,
            connection: connection,
            request: { .subscribeFences(after: FenceRevision(rawValue: $0)) },
            entries: { response in
                if case .error(let error)? = response.result { throw LeaseholdError(wire: error) }
                return (try response.fenceSubscription.fences.map { wire throws(LeaseholdError) in try Fence(wire: wire) }, false)
            },
            pushed: { push in
                guard case .fence(let wire)? = push.body else { return nil }
                return try? Fence(wire: wire)
            },
            revision: { $0.revision.rawValue }
        )
    }
}

extension FeedSubscription where Item == Event {
    /// The admin event stream.
    static func events(after revision: EventRevision, connection: ClientConnection) -> FeedSubscription<Event> {
        FeedSubscription(
            after: revision.rawValue,
            connection: connection,
            request: { .watchEvents(after: EventRevision(rawValue: $0)) },
            entries: { response in
                guard case .events(let events, let more) = try Reply(wire: response).get() else { throw LeaseholdSession.unexpected("watchEvents") }
                return (events, more)
            },
            pushed: { push in
                guard case .event(let wire)? = push.body else { return nil }
                return try? Event(wire: wire)
            },
            revision: { $0.revision.rawValue }
        )
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
        FeedSubscription.fences(after: revision, connection: self.connection).start()
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
