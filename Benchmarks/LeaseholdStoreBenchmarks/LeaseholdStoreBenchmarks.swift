// Store benchmarks (release build): `swift package --disable-sandbox benchmark --target LeaseholdStoreBenchmarks`.
// Durable operations through the Coordinator and the group-commit Journal, next to a raw
// 4 KiB write+fsync loop on the same disk in the same run; and recovery of a large
// database. Results, machine and command are in docs/benchmarks.md.
import Benchmark
import Foundation
import LeaseholdCore
import LeaseholdJournal
import LeaseholdStore
import Synchronization

let scratchCounter = Atomic<Int>(0)

/// A new directory for one benchmark iteration (never reused: an iteration's database
/// may still be open while the next one starts).
func scratchDirectory(_ name: String) -> String {
    let serial = scratchCounter.add(1, ordering: .relaxed).newValue
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("leasehold-bench-\(name)-\(getpid())-\(serial)").path
    try? FileManager.default.removeItem(atPath: path)
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Removes a directory made by ``scratchDirectory(_:)``.
func removeScratch(_ path: String) {
    try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent)
}

/// The serial owner of the Coordinator, as the server has one: handles a request and
/// queues its change set under one lock (so steps are queued in the order they ran); the
/// caller then waits for durability outside it.
final class Owner: Sendable {
    let coordinator: Mutex<Coordinator>
    let journal: Journal

    init(coordinator: Coordinator, journal: Journal) {
        self.coordinator = Mutex(coordinator)
        self.journal = journal
    }

    func submit(_ request: Request) -> (Reply?, UInt64) {
        self.coordinator.withLock { coordinator in
            let output = coordinator.handle(request, at: coordinator.currentInstant)
            return (output.reply, self.journal.enqueue(output.effects.changes))
        }
    }
}

/// A client: one session, pinning and unpinning one block of its own inode.
struct Client {
    var session: SessionID
    var caller: Caller
    var inode: InodeID
    var sequence: UInt64 = 0
    var pin: PinID?

    mutating func next() -> Request {
        self.sequence += 1
        let command: Command
        if let pin = self.pin {
            command = .unpin(pin)
        } else {
            command = .pin(PinRequest(inode: self.inode, ranges: [ByteRange(offset: 0, length: 4096)], kind: .longTerm))
        }
        return Request(caller: self.caller, session: self.session, tag: SlotTag(slot: 0, sequence: self.sequence), command: command)
    }

    mutating func handled(_ reply: Reply?) {
        switch reply {
        case .success(.pinned(let grant))?: self.pin = grant.pin
        case .success(.unpinned)?: self.pin = nil
        default: fatalError("unexpected reply \(String(describing: reply))")
        }
    }
}

/// A fresh data directory with `clients` sessions, each with a one-block file.
func setUp(clients count: Int, name: String) async throws -> (Owner, Journal, [Client], Store) {
    let store = try Store(path: scratchDirectory(name) + "/leasehold.db")
    var configuration = CoordinatorConfiguration()
    configuration.maximumTTL = .seconds(300)
    let boot = try await Boot.open(sink: store, configuration: configuration, at: .zero)
    var coordinator = boot.coordinator
    var clients: [Client] = []
    var changes: [ChangeSet] = []
    for index in 0..<count {
        let caller = Caller(identity: "bench-\(index)")
        let opened = coordinator.handle(
            Request(caller: caller, command: .openSession(name: "bench", ttl: .seconds(300), slots: 1, secret: SessionSecret(high: 1, low: UInt64(index)))),
            at: .zero
        )
        guard case .success(.sessionOpened(let grant))? = opened.reply else { fatalError() }
        changes.append(opened.effects.changes)
        let created = coordinator.handle(Request(caller: caller, session: grant.session, tag: SlotTag(slot: 0, sequence: 1), command: .createInode), at: .zero)
        guard case .success(.inodeCreated(let inode))? = created.reply else { fatalError() }
        changes.append(created.effects.changes)
        let allocated = coordinator.handle(
            Request(caller: caller, session: grant.session, tag: SlotTag(slot: 0, sequence: 2), command: .allocate(inode, ByteRange(offset: 0, length: 4096), waitForBusy: nil, expectedGeneration: nil)),
            at: .zero
        )
        changes.append(allocated.effects.changes)
        clients.append(Client(session: grant.session, caller: caller, inode: inode, sequence: 2))
    }
    let journal = boot.journal
    for changes in changes { journal.enqueue(changes) }
    await journal.commit(ChangeSet())
    return (Owner(coordinator: coordinator, journal: journal), journal, clients, store)
}

/// Writes a data directory holding `sessions` sessions and `pins` long-term pins (one
/// block each, spread over 100 files of 10,000 blocks), as a long-running server would
/// leave it. Each session's identity is its own; pins are taken through the Coordinator,
/// so every row (slot replies included) is what the server writes.
func writeLargeDatabase(sessions sessionCount: Int, pins pinCount: Int, name: String) throws -> String {
    let path = scratchDirectory(name) + "/leasehold.db"
    let store = try Store(path: path)
    var coordinator = try Boot.coordinator(restoring: nil, configuration: CoordinatorConfiguration(), at: .zero)
    var pending: [ChangeSet] = [coordinator.tick(at: .zero).effects.changes]
    func step(_ request: Request) -> Reply? {
        let output = coordinator.handle(request, at: .zero)
        pending.append(output.effects.changes)
        return output.reply
    }
    func flush(force: Bool = false) throws {
        if force || pending.count >= 20_000 {
            try store.apply(pending)
            pending.removeAll(keepingCapacity: true)
        }
    }
    let writer = Caller(identity: "writer")
    guard case .success(.sessionOpened(let owner))? = step(
        Request(caller: writer, command: .openSession(name: "writer", ttl: .seconds(300), slots: 1, secret: SessionSecret(high: 9, low: 9)))
    ) else { fatalError("open") }
    var inodes: [InodeID] = []
    var sequence: UInt64 = 0
    for _ in 0..<100 {
        sequence += 1
        guard case .success(.inodeCreated(let inode))? = step(
            Request(caller: writer, session: owner.session, tag: SlotTag(slot: 0, sequence: sequence), command: .createInode)
        ) else { fatalError("create") }
        sequence += 1
        _ = step(
            Request(
                caller: writer, session: owner.session, tag: SlotTag(slot: 0, sequence: sequence),
                command: .allocate(inode, ByteRange(offset: 0, length: 10_000 * 4096), waitForBusy: nil, expectedGeneration: nil)
            )
        )
        inodes.append(inode)
    }
    var generator = SystemRandomNumberGenerator()
    let pinsPerSession = pinCount / sessionCount
    for index in 0..<sessionCount {
        let caller = Caller(identity: "client-\(index)")
        guard case .success(.sessionOpened(let grant))? = step(
            Request(
                caller: caller,
                command: .openSession(name: "recovery", ttl: .seconds(60), slots: 4, secret: SessionSecret(high: 1, low: UInt64(index)))
            )
        ) else { fatalError("open") }
        for pinIndex in 0..<pinsPerSession {
            let inode = inodes[Int.random(in: 0..<inodes.count, using: &generator)]
            let block = UInt64.random(in: 0..<10_000, using: &generator)
            let reply = step(
                Request(
                    caller: caller, session: grant.session, tag: SlotTag(slot: UInt32(pinIndex % 4), sequence: UInt64(pinIndex / 4 + 1)),
                    command: .pin(PinRequest(inode: inode, ranges: [ByteRange(offset: block * 4096, length: 4096)], kind: .longTerm))
                )
            )
            guard case .success(.pinned)? = reply else { fatalError("pin: \(String(describing: reply))") }
        }
        try flush()
    }
    try flush(force: true)
    try store.close()
    return path
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput],
        timeUnits: .microseconds,
        warmupIterations: 20,
        maxDuration: .seconds(10),
        maxIterations: 3_000
    )

    // Latency: the same loop code times 2,000 raw 4 KiB pwrite+fsync calls on the same
    // disk and 2,000 durable operations (pin, unpin, ...) of one submitter, back to back
    // in each iteration, and reports the percentiles of both.
    let latencyMetrics: [BenchmarkMetric] = [
        "raw fsync p50 (us)", "raw fsync p99 (us)", "durable op p50 (us)", "durable op p99 (us)",
        "p50 ratio (x100)", "p99 ratio (x100)",
    ].map { .custom($0, useScalingFactor: false) }
    Benchmark(
        "Latency: raw 4 KiB pwrite+fsync vs one durable operation, 1 submitter",
        configuration: .init(metrics: latencyMetrics, warmupIterations: 0, maxDuration: .seconds(60), maxIterations: 3)
    ) { benchmark in
        func percentile(_ samples: [Double], _ p: Double) -> Double {
            let sorted = samples.sorted()
            return sorted[Swift.min(sorted.count - 1, Int(Double(sorted.count) * p))]
        }
        let clock = ContinuousClock()
        let path = scratchDirectory("raw") + "/raw.bin"
        let fd = open(path, O_CREAT | O_WRONLY, 0o644)
        precondition(fd >= 0)
        let block = [UInt8](repeating: 0xAB, count: 4096)
        var raw: [Double] = []
        for index in 0..<2_000 {
            let start = clock.now
            precondition(pwrite(fd, block, 4096, off_t(index % 256) * 4096) == 4096)
            precondition(fsync(fd) == 0)
            raw.append(Double((clock.now - start).nanosecondsClamped) / 1_000)
        }
        close(fd)
        removeScratch(path)
        let (owner, journal, clients, store) = try await setUp(clients: 1, name: "latency")
        var client = clients[0]
        var durable: [Double] = []
        for _ in 0..<2_000 {
            let start = clock.now
            let (reply, sequence) = owner.submit(client.next())
            await journal.waitUntilDurable(sequence)
            client.handled(reply)
            durable.append(Double((clock.now - start).nanosecondsClamped) / 1_000)
        }
        journal.close()
        try store.close()
        removeScratch(store.path)
        let values = [
            percentile(raw, 0.5), percentile(raw, 0.99), percentile(durable, 0.5), percentile(durable, 0.99),
            100 * percentile(durable, 0.5) / percentile(raw, 0.5), 100 * percentile(durable, 0.99) / percentile(raw, 0.99),
        ]
        for (metric, value) in zip(latencyMetrics, values) { benchmark.measurement(metric, Int(value.rounded())) }
    }

    for submitters in [1, 8, 64] {
        Benchmark(
            "Durable pin+unpin throughput, \(submitters) submitters (2,000 operations per iteration)",
            configuration: .init(
                metrics: [.wallClock, .throughput, .custom("operations per transaction", polarity: .prefersLarger, useScalingFactor: false)],
                timeUnits: .milliseconds,
                warmupIterations: 1,
                maxDuration: .seconds(20),
                maxIterations: 10
            )
        ) { benchmark in
            let (owner, journal, clients, store) = try await setUp(clients: submitters, name: "tp\(submitters)")
            let perClient = 2_000 / submitters
            let before = journal.statistics
            benchmark.startMeasurement()
            await withTaskGroup(of: Void.self) { group in
                for client in clients {
                    group.addTask {
                        var client = client
                        for _ in 0..<perClient {
                            let (reply, sequence) = owner.submit(client.next())
                            await journal.waitUntilDurable(sequence)
                            client.handled(reply)
                        }
                    }
                }
            }
            benchmark.stopMeasurement()
            let after = journal.statistics
            let transactions = Swift.max(1, after.transactions - before.transactions)
            benchmark.measurement(
                .custom("operations per transaction", polarity: .prefersLarger, useScalingFactor: false),
                Int((after.changeSets - before.changeSets) / transactions)
            )
            journal.close()
            try store.close()
            removeScratch(store.path)
        }
    }
    Benchmark(
        "Recovery: 1M pins and 100k sessions to a serving state (open, load, rebuild, check invariants, bump epoch)",
        configuration: .init(metrics: [.wallClock, .peakMemoryResident], timeUnits: .milliseconds, warmupIterations: 0, maxDuration: .seconds(60), maxIterations: 3)
    ) { benchmark async throws in
        let path = try writeLargeDatabase(sessions: 100_000, pins: 1_000_000, name: "recovery")
        var configuration = CoordinatorConfiguration()
        configuration.maximumTTL = .seconds(300)
        benchmark.startMeasurement()
        let store = try Store(path: path)
        let boot = try await Boot.open(sink: store, configuration: configuration, at: .zero)
        benchmark.stopMeasurement()
        boot.journal.close()
        var coordinator = boot.coordinator
        let status = coordinator.handle(Request(caller: Caller(identity: "admin", isAdmin: true), command: .status), at: .zero).reply
        guard case .success(.status(let figures))? = status, figures.pins == 1_000_000, figures.sessions == 100_001 else {
            fatalError("recovered state is not the written one: \(String(describing: status))")
        }
        try store.close()
        removeScratch(path)
    }
}
