import Foundation
import LeaseholdClient
import LeaseholdCore
import LeaseholdJournal
import LeaseholdMessages
import LeaseholdServer
import LeaseholdTestSupport
import LeaseholdWire
import Testing

/// Watching the admin event history over the network (issue 13, item 6): the history is
/// durable, so a watcher resumes from its revision after a restart; a long history comes
/// in pages; a revision older than the history is `compacted`.
@Suite("Watching the durable event history", .timeLimit(.minutes(1)))
struct WatchTests {
    /// A server whose "worker" session created `inodes` inodes (events 1 to inodes + 1).
    static func start(
        inodes: Int, _ configure: (inout ServerConfiguration) -> Void = { _ in }
    ) async throws -> (cluster: TestCluster, client: LeaseholdClient, session: LeaseholdSession) {
        let cluster = try await TestCluster.start(configure)
        let client = try await cluster.client("worker")
        let session = try await client.openSession(ttl: .seconds(60))
        for _ in 0..<inodes { _ = try await session.createInode() }
        return (cluster, client, session)
    }

    /// The next `count` events of a watch.
    static func take(_ count: Int, _ watch: inout AsyncThrowingStream<Event, any Error>.Iterator) async throws -> [Event] {
        var events: [Event] = []
        while events.count < count, let event = try await watch.next() { events.append(event) }
        return events
    }

    @Test("after a restart, watch from a revision returns what followed it, then new events")
    func watchAcrossRestart() async throws {
        let (cluster, client, _) = try await Self.start(inodes: 4)
        let admin = try await cluster.client()
        let before = try await admin.events()
        #expect(before.count == 5, "sessionOpened and four inodeCreated")
        admin.close()
        client.close()

        let restarted = try await cluster.restarted()
        let reader = try await restarted.client()
        #expect(try await reader.events().map(\.revision) == before.map(\.revision), "the history survived the restart")
        let from = before[1].revision
        var watch = reader.watchEvents(after: from).makeAsyncIterator()
        let other = try await restarted.client("worker-2")
        let later = try await other.openSession(ttl: .seconds(60))
        let seen = try await Self.take(4, &watch)
        try #require(seen.count == 4)
        #expect(seen.map(\.revision) == before.dropFirst(2).map(\.revision) + [seen[3].revision])
        #expect(seen[3].revision > before.last!.revision)
        if case .sessionOpened(let opened, _) = seen[3].kind { #expect(opened == later.id) } else { Issue.record("got \(seen[3].kind)") }
        other.close()
        reader.close()
        try await restarted.stop()
    }

    @Test("a history longer than a page reaches the watcher page by page, in order, then live")
    func pagedWatch() async throws {
        let (cluster, client, session) = try await Self.start(inodes: 9) { $0.coordinator.maxPageSize = 3 }
        let admin = try await cluster.client()
        var watch = admin.watchEvents().makeAsyncIterator()
        let history = try await Self.take(10, &watch)
        #expect(history.map(\.revision.rawValue) == Array(1...10))
        // Then the watch is registered: a new event arrives live on the same stream.
        _ = try await session.createInode()
        #expect(try await Self.take(1, &watch).map(\.revision.rawValue) == [11])
        admin.close()
        client.close()
        try await cluster.stop()
    }

    @Test("on the wire: a page with more registers nothing, an event committed between pages comes in a page and is not also pushed, then later events are pushed once")
    func pagesOnTheWire() async throws {
        let (cluster, client, session) = try await Self.start(inodes: 4) { $0.coordinator.maxPageSize = 3 }
        let raw = try await RawConnection(cluster: cluster)
        try await raw.hello()
        func watch(_ id: UInt64, after: UInt64) async throws -> Leasehold_V1_EventList {
            var request = WireRequest()
            request.watchEvents.afterRevision = after
            try await raw.send(EnvelopeCodec.request(id: id, request))
            return try #require(try await raw.response(to: id)).eventList
        }
        func pushed() throws -> [UInt64] {
            try raw.envelopes.compactMap { envelope in
                if case .push(let push)? = envelope.body, case .event(let event)? = push.body { return event.revision }
                return nil
            }
        }
        let first = try await watch(2, after: 0)
        #expect(first.events.map(\.revision) == [1, 2, 3] && first.more)
        _ = try await session.createInode()
        let second = try await watch(3, after: 3)
        #expect(second.events.map(\.revision) == [4, 5, 6] && !second.more)
        _ = try await session.createInode()
        try await eventually("event 7 is pushed") { try pushed().contains(7) }
        #expect(try pushed() == [7], "nothing was pushed before the watch caught up, and event 6 came only in its page")
        await raw.close()
        client.close()
        try await cluster.stop()
    }

    @Test("a revision older than the history kept is compacted, naming the oldest kept")
    func compacted() async throws {
        let (cluster, client, _) = try await Self.start(inodes: 5) { $0.coordinator.eventHistory = 3 }
        let admin = try await cluster.client()
        #expect(try await admin.events().map(\.revision.rawValue) == [4, 5, 6])
        let read = await #expect(throws: LeaseholdError.self) { _ = try await admin.events(after: 1) }
        #expect(read?.code == .compacted && read?.details.oldestRevision == EventRevision(rawValue: 4))
        let watched = await #expect(throws: LeaseholdError.self) { for try await _ in admin.watchEvents(after: 2) {} }
        #expect(watched?.code == .compacted && watched?.details.oldestRevision == EventRevision(rawValue: 4))
        // Right before the oldest kept still works.
        #expect(try await admin.events(after: 3).map(\.revision.rawValue) == [4, 5, 6])
        admin.close()
        client.close()
        try await cluster.stop()
    }
}
