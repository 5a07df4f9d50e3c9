import LeaseholdTestSupport
import Testing

@testable import LeaseholdCore

/// The admin event history is durable and bounded (issue 13, item 6): each step writes
/// its events as rows and drops the ones beyond `eventHistory`; a restart restores the
/// same history; a reader asking after a revision whose successors were dropped gets
/// `compacted` with the oldest revision kept, as etcd answers a watch on a compacted
/// revision.
@Suite("Durable event history")
struct EventHistoryTests {
    static func configuration(history: Int) -> CoordinatorConfiguration {
        var configuration = Harness.configuration()
        configuration.eventHistory = history
        return configuration
    }

    static func events(_ response: Response) throws -> (revisions: [UInt64], more: Bool) {
        guard case .events(let events, let more) = response else { throw LeaseholdError.invalidArgument("not an event list: \(response)") }
        return (events.map(\.revision.rawValue), more)
    }

    @Test("the newest eventHistory events are kept, in the persisted rows as in the answers")
    func bounded() throws {
        var h = Harness(configuration: Self.configuration(history: 5))
        let session = h.openSession("alice")
        for _ in 0..<6 { _ = h.createInode(in: session) }
        let last = h.coordinator.currentCounters.lastEvent
        #expect(last == 7, "one sessionOpened and six inodeCreated")
        // The harness checked every step's rows against the Coordinator's image; the
        // image holds exactly the newest five.
        #expect(h.persisted.events.map(\.revision.rawValue) == Array(3...7))
        #expect(h.coordinator.persistentState().events == h.persisted.events)

        #expect(try Self.events(try h.admin(.readEvents(after: 0, limit: 100))).revisions == Array(3...7), "0: all that is kept")
        #expect(try Self.events(try h.admin(.readEvents(after: 2, limit: 100))).revisions == Array(3...7), "right before the oldest kept")
        #expect(try Self.events(try h.admin(.readEvents(after: 5, limit: 100))).revisions == [6, 7])
        #expect(try Self.events(try h.admin(.readEvents(after: 7, limit: 100))).revisions == [])
        let page = try Self.events(try h.admin(.readEvents(after: 2, limit: 2)))
        #expect(page.revisions == [3, 4] && page.more, "a full page says more follow")
        #expect(try !Self.events(try h.admin(.readEvents(after: 5, limit: 2))).more, "the rest of the history says none follow")

        // The largest revision is read like any other: nothing after it (its successor
        // would overflow), and fences likewise.
        #expect(try Self.events(try h.admin(.readEvents(after: EventRevision(rawValue: .max), limit: 100))).revisions == [])
        guard case .fences(let fences) = try h.call(.readFences(after: FenceRevision(rawValue: .max)), as: Caller(identity: "nvme-1", isTarget: true)) else {
            Issue.record("readFences did not answer with fences")
            return
        }
        #expect(fences.isEmpty)
        let error = #expect(throws: LeaseholdError.self) { try h.admin(.readEvents(after: 1, limit: 100)) }
        #expect(error?.code == .compacted)
        #expect(error?.details.oldestRevision == EventRevision(rawValue: 3))
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("a history of 0 keeps nothing: only the latest revision can be read after, anything older is compacted")
    func none() throws {
        var h = Harness(configuration: Self.configuration(history: 0))
        let session = h.openSession("alice")
        _ = h.createInode(in: session)
        #expect(h.persisted.events.isEmpty)
        #expect(try Self.events(try h.admin(.readEvents(after: 0, limit: 10))).revisions == [])
        #expect(try Self.events(try h.admin(.readEvents(after: 2, limit: 10))).revisions == [])
        let error = #expect(throws: LeaseholdError.self) { try h.admin(.readEvents(after: 1, limit: 10)) }
        #expect(error?.details.oldestRevision == EventRevision(rawValue: 3))
        #expect(h.violations.isEmpty, "\(h.violations)")
    }

    @Test("one step's change set adds its events and drops the oldest in one range row")
    func rows() throws {
        var h = Harness(configuration: Self.configuration(history: 2))
        h.keepsChanges = true
        let session = h.openSession("alice")
        _ = h.createInode(in: session)
        _ = h.takeChanges()
        _ = h.createInode(in: session)
        let rows = h.takeChanges().flatMap(\.rows)
        let events = rows.compactMap { if case .event(let event) = $0 { event.revision.rawValue } else { nil } }
        let dropped = rows.compactMap { if case .eventsDropped(let before) = $0 { before.rawValue } else { nil } }
        #expect(events == [3])
        #expect(dropped == [2], "events below 2 are gone: 2 and 3 stay")
    }

    @Test("a restart restores the history, and a shorter configured history drops the oldest with the first commit")
    func restart() throws {
        var h = Harness(configuration: Self.configuration(history: 10))
        let session = h.openSession("alice")
        for _ in 0..<5 { _ = h.createInode(in: session) }
        let image = h.persisted
        #expect(image.events.count == 6)

        var same = try Coordinator(restoring: image, configuration: Self.configuration(history: 10), at: Instant(nanoseconds: 9))
        let all = same.handle(Request(caller: Caller(identity: "admin", isAdmin: true), command: .readEvents(after: 0, limit: 100)), at: Instant(nanoseconds: 9))
        guard case .success(let response)? = all.reply else {
            Issue.record("readEvents failed: \(String(describing: all.reply))")
            return
        }
        #expect(try Self.events(response).revisions == Array(1...6))

        var shorter = try Coordinator(restoring: image, configuration: Self.configuration(history: 4), at: Instant(nanoseconds: 9))
        let first = shorter.tick(at: Instant(nanoseconds: 10))
        #expect(first.effects.changes.rows.contains(.eventsDropped(before: EventRevision(rawValue: 3))))
        var after = image
        after.apply(first.effects.changes)
        #expect(after.events.map(\.revision.rawValue) == Array(3...6))
        #expect(InvariantChecker.check(shorter).isEmpty)
    }
}
