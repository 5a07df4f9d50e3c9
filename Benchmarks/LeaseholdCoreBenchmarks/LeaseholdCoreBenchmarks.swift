// Core benchmarks (release build): `swift package --disable-sandbox benchmark`.
// Results, machine and command are in docs/benchmarks.md.
import Benchmark
import LeaseholdCore

/// A deterministic generator, so every run measures the same work.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Drives a Coordinator the way the server does: requests with slot tags, time passed in.
struct Driver {
    var coordinator: Coordinator
    var now = Instant(nanoseconds: 1_000_000_000)
    var sequence: UInt64 = 0
    let caller = Caller(identity: "bench")
    var sessions: [SessionID] = []

    init(blocks: UInt64 = 1 << 28, sessions: Int = 16) {
        var configuration = CoordinatorConfiguration()
        configuration.geometry = try! VolumeGeometry(blockSize: 4096, blockCount: blocks)
        configuration.maximumTTL = .seconds(300)
        self.coordinator = Coordinator(configuration: configuration)
        for index in 0..<sessions {
            let secret = SessionSecret(high: UInt64(index), low: 1)
            let output = self.coordinator.handle(
                Request(caller: self.caller, command: .openSession(name: "bench", ttl: .seconds(300), slots: 1, secret: secret)),
                at: self.now
            )
            guard case .success(.sessionOpened(let grant))? = output.reply else { fatalError("open failed") }
            self.sessions.append(grant.session)
        }
    }

    mutating func send(_ command: Command, session: SessionID) -> Response {
        self.sequence += 1
        let output = self.coordinator.handle(
            Request(caller: self.caller, session: session, tag: SlotTag(slot: 0, sequence: self.sequence), command: command),
            at: self.now
        )
        guard case .success(let response)? = output.reply else { fatalError("\(command.name) failed: \(String(describing: output.reply))") }
        return response
    }

    mutating func createInode() -> InodeID {
        guard case .inodeCreated(let id) = self.send(.createInode, session: self.sessions[0]) else { fatalError() }
        return id
    }

    /// An inode with `extents` one-block extents separated by holes, so none coalesce.
    mutating func fragmentedInode(extents: Int) -> InodeID {
        let inode = self.createInode()
        for index in 0..<extents {
            _ = self.send(.allocate(inode, ByteRange(offset: UInt64(index) * 8192, length: 4096), waitForBusy: nil, expectedGeneration: nil), session: self.sessions[0])
        }
        return inode
    }

    mutating func pin(_ inode: InodeID, block: UInt64, session: SessionID) -> PinID {
        let request = PinRequest(inode: inode, ranges: [ByteRange(offset: block * 4096, length: 4096)], kind: .longTerm)
        guard case .pinned(let grant) = self.send(.pin(request), session: session) else { fatalError() }
        return grant.pin
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .peakMemoryResident, .mallocCountTotal],
        timeUnits: .milliseconds,
        warmupIterations: 1,
        maxDuration: .seconds(60),
        maxIterations: 5
    )

    Benchmark("FreeSpace: allocate then free 1M random extents") { benchmark in
        var free = FreeSpace(restoring: [BlockRange(start: 0, end: 1 << 28)])
        var random = SplitMix(state: 42)
        var taken: [BlockRange] = []
        taken.reserveCapacity(1_100_000)
        benchmark.startMeasurement()
        for _ in 0..<1_000_000 {
            taken.append(contentsOf: free.allocate(UInt64.random(in: 1...64, using: &random), near: UInt64.random(in: 0..<(1 << 28), using: &random))!)
        }
        taken.shuffle(using: &random)
        for range in taken { free.free(range) }
        benchmark.stopMeasurement()
        precondition(free.extentCount == 1)
        blackHole(free)
    }

    Benchmark("Coordinator: truncate an inode of 100k extents to 0", configuration: .init(maxIterations: 5)) { benchmark in
        var driver = Driver()
        let inode = driver.fragmentedInode(extents: 100_000)
        benchmark.startMeasurement()
        guard case .mappingChanged(let change) = driver.send(.truncate(inode, size: 0, policy: .busy, expectedGeneration: nil), session: driver.sessions[1]) else { fatalError() }
        benchmark.stopMeasurement()
        precondition(change.freedBlocks == 100_000)
    }

    Benchmark(
        "Coordinator: 1M pin+unpin pairs with 100k live pins",
        configuration: .init(metrics: [.wallClock, .throughput, .peakMemoryResident], maxIterations: 3)
    ) { benchmark in
        var driver = Driver()
        let inode = driver.createInode()
        _ = driver.send(.allocate(inode, ByteRange(offset: 0, length: 400_000 * 4096), waitForBusy: nil, expectedGeneration: nil), session: driver.sessions[0])
        for index in 0..<100_000 {
            _ = driver.pin(inode, block: UInt64(index) * 2, session: driver.sessions[index % driver.sessions.count])
        }
        var random = SplitMix(state: 7)
        benchmark.startMeasurement()
        for index in 0..<1_000_000 {
            let session = driver.sessions[index % driver.sessions.count]
            let pin = driver.pin(inode, block: UInt64.random(in: 0..<400_000, using: &random), session: session)
            _ = driver.send(.unpin(pin), session: session)
        }
        benchmark.stopMeasurement()
        precondition(driver.coordinator.persistentStatePinCount == 100_000)
    }

    // Memory: live bytes the measured region leaves allocated (requested sizes, without
    // malloc's own per-allocation overhead), for 1M of each. Divide by 1M for per item.
    Benchmark(
        "Memory: 1M live pins",
        configuration: .init(metrics: [.memoryLeakedBytes, .mallocFreeDelta], maxIterations: 1)
    ) { benchmark in
        var driver = Driver()
        let inode = driver.createInode()
        _ = driver.send(.allocate(inode, ByteRange(offset: 0, length: 2_000_000 * 4096), waitForBusy: nil, expectedGeneration: nil), session: driver.sessions[0])
        benchmark.startMeasurement()
        for index in 0..<1_000_000 {
            _ = driver.pin(inode, block: UInt64(index) * 2, session: driver.sessions[index % driver.sessions.count])
        }
        benchmark.stopMeasurement()
        precondition(driver.coordinator.persistentStatePinCount == 1_000_000)
        blackHole(driver)
    }

    Benchmark(
        "Memory: extent map of 1M extents",
        configuration: .init(metrics: [.memoryLeakedBytes, .mallocFreeDelta], maxIterations: 1)
    ) { benchmark in
        benchmark.startMeasurement()
        // Runs that cannot coalesce: every other physical block.
        var map = ExtentMap()
        for index in 0..<UInt64(1_000_000) {
            map.insert(MappedExtent(fileBlock: index, physicalBlock: index * 2, count: 1, written: false))
        }
        _ = map.drainChanges()
        benchmark.stopMeasurement()
        precondition(map.extentCount == 1_000_000)
        blackHole(map)
    }
}

extension Coordinator {
    var persistentStatePinCount: Int {
        guard case .status(let status)? = {
            var copy = self
            return copy.handle(Request(caller: Caller(identity: "admin", isAdmin: true), command: .status), at: copy.currentInstant).reply?.response
        }() else { return -1 }
        return status.pins
    }
}
