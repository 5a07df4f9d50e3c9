import Foundation
import LeaseholdCore
import LeaseholdJournal
import LeaseholdTestSupport
import Synchronization
import Testing

@testable import LeaseholdStore

/// The crash test with real processes: `leasehold-crash-helper` runs random mutations
/// through the journal with 64 requests in flight and prints each acknowledged one; the
/// test kills it with SIGKILL at random moments (most of the time a commit is under way),
/// reopens the database and checks that
/// - every acknowledged mutation is there: its slot holds that sequence or a later one,
///   and a retransmission of the last acknowledged sequence of a slot gets the stored,
///   identical reply;
/// - the recovered state passes the invariant checker (recovery refuses it otherwise);
/// - no counter is below a value that was acknowledged, and the epoch went up.
@Suite("Journal crash test with real processes", .serialized)
struct CrashTests {
    struct Acknowledgement: Codable {
        var request: Request
        var reply: Reply
        var counters: Counters
    }

    static let configuration: CoordinatorConfiguration = {
        var configuration = CoordinatorConfiguration()
        configuration.geometry = try! VolumeGeometry(blockSize: 4096, blockCount: 1 << 16)
        configuration.maximumTTL = .seconds(300)
        return configuration
    }()

    static var helper: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("leasehold-crash-helper")
    }

    @Test("SIGKILL at 24 random moments: every acknowledged operation survives", .timeLimit(.minutes(10)))
    func killAndRecover() async throws {
        let seed = TestSeed.seeds(default: [2026])[0]
        print(TestSeed.replayHint(seed: seed, test: "CrashTests"))
        var random = SeededGenerator(seed: seed)
        let path = try temporaryDatabase()
        var checker = Checker()
        var total = 0
        defer { print("CrashTests: 24 kills, \(total) acknowledged requests checked") }
        for round in 0..<24 {
            let delay = Duration.milliseconds(Int64(random.int(20...400)))
            let acknowledged = try await Self.runHelper(database: path, seed: seed &+ UInt64(round), killAfter: delay)
            total += acknowledged.count
            let problems = try await checker.check(database: path, acknowledged: acknowledged)
            #expect(problems.isEmpty, "round \(round) (killed \(delay) after READY, \(acknowledged.count) acknowledged): \(problems.prefix(5))")
            #expect(!acknowledged.isEmpty, "round \(round): the helper acknowledged nothing before the kill")
        }
    }

    @Test("negative control: acknowledging before the commit is caught by the same checker", .timeLimit(.minutes(5)))
    func acknowledgingBeforeCommitIsCaught() async throws {
        let seed = TestSeed.seeds(default: [77])[0]
        var random = SeededGenerator(seed: seed)
        let path = try temporaryDatabase()
        var checker = Checker()
        var caught = 0
        for round in 0..<10 {
            let delay = Duration.milliseconds(Int64(random.int(50...300)))
            let acknowledged = try await Self.runHelper(database: path, seed: seed &+ UInt64(round), killAfter: delay, acknowledgeBeforeCommit: true)
            if try await !checker.check(database: path, acknowledged: acknowledged).isEmpty { caught += 1 }
        }
        print("CrashTests negative control: acknowledging before the commit was caught in \(caught) of 10 kills")
        #expect(caught > 0, "acknowledging before the commit was never caught in 10 kills")
    }

    // MARK: - The checker

    struct Checker {
        var highest = Counters()
        var lastEpoch: UInt64 = 0

        /// Every way the database falls short of what was acknowledged.
        mutating func check(database: String, acknowledged: [Acknowledgement]) async throws -> [String] {
            var problems: [String] = []
            let store = try Store(path: database)
            defer { try? store.close() }
            var coordinator: Coordinator
            do {
                let boot = try await Boot.open(sink: store, configuration: CrashTests.configuration, at: .zero)
                boot.journal.close()
                coordinator = boot.coordinator
            } catch {
                return ["recovery failed: \(error)"]
            }
            let state = try store.loadState()
            if let epoch = state.volume?.epoch {
                if epoch <= self.lastEpoch { problems.append("epoch \(epoch) is not above \(self.lastEpoch)") }
                self.lastEpoch = epoch
            }
            for acknowledgement in acknowledged { self.highest = self.highest.componentwiseMaximum(acknowledgement.counters) }
            let loaded = coordinator.currentCounters
            if !loaded.isAtLeast(self.highest) { problems.append("counters \(loaded) are below acknowledged \(self.highest)") }

            // The last acknowledged request of each slot.
            var last: [SlotKey: Acknowledgement] = [:]
            for acknowledgement in acknowledged {
                guard let session = acknowledgement.request.session, let tag = acknowledgement.request.tag else { continue }
                let key = SlotKey(session: session, slot: tag.slot)
                if (last[key]?.request.tag?.sequence ?? 0) < tag.sequence { last[key] = acknowledgement }
            }
            for (key, acknowledgement) in last {
                let sequence = acknowledgement.request.tag!.sequence
                guard let stored = state.slots[key], stored.sequence >= sequence else {
                    problems.append("slot \(key.session)/\(key.slot): sequence \(sequence) was acknowledged but is not durable")
                    continue
                }
                guard stored.sequence == sequence else { continue }  // a later request committed too
                let output = coordinator.handle(acknowledgement.request, at: .zero)
                if output.reply != acknowledgement.reply {
                    problems.append("slot \(key.session)/\(key.slot): retransmission got \(String(describing: output.reply)), acknowledged \(acknowledgement.reply)")
                }
                if !output.effects.changes.isEmpty {
                    problems.append("slot \(key.session)/\(key.slot): retransmission changed state")
                }
            }
            return problems
        }
    }

    // MARK: - Running the helper

    /// Starts the helper, waits for READY and its first acknowledgement, lets it run for
    /// `killAfter`, kills it with SIGKILL and returns every line it acknowledged.
    static func runHelper(
        database: String,
        seed: UInt64,
        killAfter delay: Duration,
        acknowledgeBeforeCommit: Bool = false
    ) async throws -> [Acknowledgement] {
        let process = Process()
        process.executableURL = self.helper
        process.arguments = [database, String(seed)] + (acknowledgeBeforeCommit ? ["--ack-before-commit"] : [])
        let pipe = Pipe()
        process.standardOutput = pipe
        // Only the handler reads the pipe, to its end (an empty read): reading the rest
        // elsewhere as well could interleave chunks and cut a line in the middle.
        let received = Mutex((data: Data(), ended: false))
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            received.withLock { state in
                if data.isEmpty { state.ended = true } else { state.data.append(data) }
            }
        }
        try process.run()
        let ready = Data("READY\n".utf8)
        let deadline = ContinuousClock.now + .seconds(120)
        while !received.withLock({ $0.data.starts(with: ready) }) {
            guard process.isRunning, ContinuousClock.now < deadline else {
                process.terminate()
                throw HelperFailed(message: "the helper did not start (running: \(process.isRunning))")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        // From the first acknowledgement on: on a loaded machine the helper's first commits
        // after READY can take longer than the shortest delay, and a round that
        // acknowledged nothing checks nothing.
        while received.withLock({ $0.data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).count }) < 3 {
            guard process.isRunning, ContinuousClock.now < deadline else {
                process.terminate()
                throw HelperFailed(message: "the helper acknowledged nothing (running: \(process.isRunning))")
            }
            try await Task.sleep(for: .milliseconds(1))
        }
        try await Task.sleep(for: delay)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let drained = ContinuousClock.now + .seconds(10)
        while !received.withLock({ $0.ended }), ContinuousClock.now < drained { try await Task.sleep(for: .milliseconds(1)) }
        pipe.fileHandleForReading.readabilityHandler = nil
        let output = received.withLock { $0.data }
        let decoder = JSONDecoder()
        var lines = output.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).dropFirst()
        // The kill may cut the last line short; every complete line decodes.
        if output.last != UInt8(ascii: "\n"), !lines.isEmpty { lines = lines.dropLast() }
        return try lines.map { try decoder.decode(Acknowledgement.self, from: Data($0)) }
    }

    struct HelperFailed: Error {
        var message: String
    }
}

extension Counters {
    func componentwiseMaximum(_ other: Counters) -> Counters {
        var result = Counters()
        result.lastInode = Swift.max(self.lastInode, other.lastInode)
        result.lastSession = Swift.max(self.lastSession, other.lastSession)
        result.lastPin = Swift.max(self.lastPin, other.lastPin)
        result.lastLayout = Swift.max(self.lastLayout, other.lastLayout)
        result.lastRecall = Swift.max(self.lastRecall, other.lastRecall)
        result.lastToken = Swift.max(self.lastToken, other.lastToken)
        result.lastFence = Swift.max(self.lastFence, other.lastFence)
        result.lastEvent = Swift.max(self.lastEvent, other.lastEvent)
        return result
    }

    func isAtLeast(_ other: Counters) -> Bool {
        self.componentwiseMaximum(other) == self
    }
}
