import Foundation
import LeaseholdCore
import LeaseholdJournal
import LeaseholdTestSupport
import Synchronization
import Testing

@testable import LeaseholdStore

@Suite("Journal on the SQLite file: group commit")
struct JournalTests {
    @Test("change sets queued while a transaction commits share the next one; order is kept")
    func groupCommit() async throws {
        let store = try Store(path: try temporaryDatabase())
        let commits = Mutex<[Journal.Commit]>([])
        var options = Journal.Options()
        options.onCommit = { commit in commits.withLock { $0.append(commit) } }
        let journal = Journal(sink: store, after: .zero, options: options)
        var coordinator = Coordinator(configuration: Harness.configuration())
        var rows = 0
        let initial = coordinator.tick(at: .zero).effects.changes
        rows += initial.rows.count
        await journal.commit(initial)
        let caller = Caller(identity: "alice")
        let opened = coordinator.handle(
            Request(caller: caller, command: .openSession(name: "a", ttl: .seconds(300), slots: 1, secret: SessionSecret(high: 1, low: 2))),
            at: .zero
        )
        guard case .success(.sessionOpened(let grant))? = opened.reply else {
            Issue.record("open failed")
            return
        }
        rows += opened.effects.changes.rows.count
        await journal.commit(opened.effects.changes)
        // 500 steps, each queued without waiting, then all awaited together.
        var sequences: [UInt64] = []
        for sequence in 1...500 {
            let output = coordinator.handle(
                Request(caller: caller, session: grant.session, tag: SlotTag(slot: 0, sequence: UInt64(sequence)), command: .createInode),
                at: .zero
            )
            rows += output.effects.changes.rows.count
            sequences.append(journal.enqueue(output.effects.changes))
        }
        await withTaskGroup(of: Void.self) { group in
            for sequence in sequences { group.addTask { await journal.waitUntilDurable(sequence) } }
        }
        let statistics = journal.statistics
        #expect(statistics.changeSets == 502)
        #expect(statistics.transactions < statistics.changeSets, "steps queued during a commit share a transaction")
        // Each transaction was reported once, with its steps and rows.
        let reported = commits.withLock { $0 }
        #expect(UInt64(reported.count) == statistics.transactions)
        #expect(reported.reduce(0) { $0 + $1.changeSets } == 502)
        #expect(reported.reduce(0) { $0 + $1.rows } == rows)
        #expect(reported.allSatisfy { $0.sync > .zero && $0.sync <= $0.duration })
        // The slot row ends with the last sequence: later rows won.
        let state = try store.loadState()
        #expect(state.slots[SlotKey(session: grant.session, slot: 0)]?.sequence == 500)
        #expect(state == coordinator.persistentState())
        #expect(try store.position() == journal.position, "the database records the position of the last batch")
        #expect(journal.position.index == statistics.transactions)
        journal.close()
    }

    @Test("a burst of big change sets commits in slices of about maxRowsPerBatch rows, in order")
    func bigBurstsCommitInSlices() async throws {
        let store = try Store(path: try temporaryDatabase())
        let commits = Mutex<[Journal.Commit]>([])
        var options = Journal.Options()
        options.onCommit = { commit in commits.withLock { $0.append(commit) } }
        let journal = Journal(sink: store, after: .zero, options: options)
        let rowsPerSet = Journal.maxRowsPerBatch * 3 / 4
        // The writer may take the first set alone before the rest are queued; every
        // transaction after it stops at the first set that reaches the limit.
        var last: UInt64 = 0
        for set in 0..<4 {
            var changes = ChangeSet()
            for index in 0..<rowsPerSet { changes.rows.append(.freeExtent(UInt64(set * rowsPerSet + index) * 2, count: 1)) }
            last = journal.enqueue(changes)
        }
        await journal.waitUntilDurable(last)
        let reported = commits.withLock { $0 }
        #expect(reported.reduce(0) { $0 + $1.changeSets } == 4)
        #expect(reported.count >= 2, "4 sets of \(rowsPerSet) rows cannot share one transaction")
        #expect(reported.allSatisfy { $0.changeSets <= 2 })
        #expect(try store.loadState().freeExtents.count == 4 * rowsPerSet)
        journal.close()
    }

    @Test("an empty change set is durable only once everything queued before it is")
    func emptyChangeSetIsABarrier() async throws {
        let store = try Store(path: try temporaryDatabase())
        let journal = Journal(sink: store, after: .zero)
        var coordinator = Coordinator(configuration: Harness.configuration())
        let first = journal.enqueue(coordinator.tick(at: .zero).effects.changes)
        let barrier = journal.enqueue(ChangeSet())
        await journal.waitUntilDurable(barrier)
        #expect(journal.lastDurable >= first)
        #expect(try store.hasVolume())
        journal.close()
    }

    @Test("a failed commit is reported and nothing after it is acknowledged")
    func failStop() async throws {
        let store = try Store(path: try temporaryDatabase())
        let failures = Mutex<[String]>([])
        var options = Journal.Options()
        options.onFailure = { failure in failures.withLock { $0.append("\(failure)") } }
        let journal = Journal(sink: store, after: .zero, options: options)
        var coordinator = Coordinator(configuration: Harness.configuration())
        try store.close()
        let sequence = journal.enqueue(coordinator.tick(at: .zero).effects.changes)
        let deadline = ContinuousClock.now + .seconds(10)
        while failures.withLock({ $0.isEmpty }) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(failures.withLock { $0.count } == 1)
        #expect(journal.lastDurable < sequence)
        #expect(await journal.waitUntilDurable(sequence) == false, "a waiter learns that it will never be durable")
        journal.close()
    }
}
