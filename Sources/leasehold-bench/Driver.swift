import Foundation
import Histogram
import LeaseholdClient
import Synchronization

/// Runs a workload: sessions on every connection, `inFlight` sequential workers per
/// session, a warm-up, then the measured period; prints a progress line every second.
struct Driver: Sendable {
    let clients: [LeaseholdClient]
    let sessionsPerConnection: Int
    let inFlight: Int
    let warmUp: Duration
    let measured: Duration
    let limit: Int?
    /// The TTL sessions are opened with.
    var ttl: Duration = .seconds(30)

    func openSessions() async throws -> [LeaseholdSession] {
        try await withThrowingTaskGroup(of: [LeaseholdSession].self) { group in
            for client in self.clients {
                group.addTask {
                    var sessions: [LeaseholdSession] = []
                    for index in 0..<self.sessionsPerConnection {
                        sessions.append(try await client.openSession(name: "bench-\(index)", ttl: self.ttl, slots: Swift.max(self.inFlight, 1)))
                    }
                    return sessions
                }
            }
            var all: [LeaseholdSession] = []
            for try await sessions in group { all += sessions }
            return all
        }
    }

    /// Runs `operations` (one per worker) until the measured period ends; returns the
    /// merged latencies.
    func drive(_ operations: [Operation], progress: Progress) async -> (Recorder, Duration) {
        let start = ContinuousClock.now
        let end = start + self.warmUp + self.measured
        let limit = self.limit
        let printer = Task {
            var last = 0
            var second = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                second += 1
                let total = progress.operations.load(ordering: .relaxed)
                let phase = ContinuousClock.now < start + self.warmUp ? "warm-up" : "measuring"
                FileHandle.standardError.write(Data("\rt=\(second)s \(phase): \(total - last) ops/s, \(total) ops, \(progress.errors.load(ordering: .relaxed)) errors   ".utf8))
                last = total
            }
        }
        let recorders = await withTaskGroup(of: Recorder.self) { group in
            for operation in operations {
                group.addTask {
                    var recorder = Recorder(start: start, warmUp: self.warmUp)
                    while ContinuousClock.now < end {
                        if let limit, Int(recorder.total.totalCount) >= limit / Swift.max(operations.count, 1) { break }
                        let began = ContinuousClock.now
                        do {
                            try await operation()
                            recorder.record(since: began)
                            progress.operations.add(1, ordering: .relaxed)
                        } catch {
                            progress.failed(error)
                            // A session that ended fails every call at once: stop its worker.
                            if let error = error as? LeaseholdError, error.code == .fenced || error.code == .sessionExpired { break }
                        }
                    }
                    return recorder
                }
            }
            var all: [Recorder] = []
            for await recorder in group { all.append(recorder) }
            return all
        }
        printer.cancel()
        FileHandle.standardError.write(Data("\n".utf8))
        var merged = Recorder(start: start, warmUp: self.warmUp)
        for recorder in recorders { merged.merge(recorder) }
        let elapsed = Swift.min(ContinuousClock.now, end) - (start + self.warmUp)
        return (merged, elapsed)
    }

    func run(_ workload: Workload, into report: inout Report) async throws {
        let sessions = try await self.openSessions()
        var operations: [Operation] = []
        for session in sessions {
            for _ in 0..<self.inFlight { operations.append(try await workload.worker(session)) }
        }
        // Holders answer recalls, as a real client must (mixed punches holes where the
        // session's own long-term pins and layouts are).
        let listeners = sessions.map { session in
            Task {
                for await event in session.events {
                    switch event {
                    case .pinRecall(let recall): _ = try? await recall.unpin()
                    case .layoutRecall(let recall): _ = try? await recall.returnLayout()
                    default: break
                    }
                }
            }
        }
        defer { for listener in listeners { listener.cancel() } }
        let progress = Progress()
        let (recorder, elapsed) = await self.drive(operations, progress: progress)
        report.record(recorder, elapsed: elapsed, errors: progress.errors.load(ordering: .relaxed))
        if progress.errors.load(ordering: .relaxed) > 0 { report.notes.append("errors: \(progress.errorSummary)") }
        for session in sessions { _ = try? await session.close() }
    }

    // MARK: - recall-storm

    /// One truncater allocates and truncates a file whose range every other session
    /// holds a layout of; holders return on recall and get the layout again. Measures the
    /// break latency (allocate or truncate until committed) and the recall latency (break
    /// sent until the holder has the push).
    func recallStorm(into report: inout Report) async throws {
        let sessions = try await self.openSessions()
        guard sessions.count >= 2 else { throw BenchError("recall-storm needs at least two sessions (one truncater, holders)") }
        let truncater = sessions[0]
        let holders = Array(sessions.dropFirst())
        let inode = try await truncater.createInode()
        let range = ByteRange(offset: 0, length: 16 * Workload.block)
        _ = try await truncater.allocate(inode, range)
        let origin = ContinuousClock.now
        let breakStarted = Counter()
        let recalls = RecallLog()
        var listeners: [Task<Void, Never>] = []
        for holder in holders {
            _ = try await holder.layoutGet(inode, ranges: [range], iomode: .read)
            listeners.append(Task {
                for await event in holder.events {
                    guard case .layoutRecall(let recall) = event else { continue }
                    let latency = (ContinuousClock.now - origin).nanosecondsValue - Int64(breakStarted.value.load(ordering: .relaxed))
                    recalls.record(UInt64(Swift.max(0, latency)))
                    _ = try? await recall.returnLayout()
                    // Get it again once the break is over.
                    while (try? await holder.layoutGet(inode, ranges: [range], iomode: .read)) == nil {
                        try? await Task.sleep(for: .milliseconds(1))
                    }
                }
            })
        }
        let allocated = Slot(true)
        let operation: Operation = {
            breakStarted.value.store(Int((ContinuousClock.now - origin).nanosecondsValue), ordering: .relaxed)
            if allocated.get() {
                _ = try await truncater.truncate(inode, size: 0)
                allocated.set(false)
            } else {
                _ = try await truncater.allocate(inode, range)
                allocated.set(true)
            }
        }
        let progress = Progress()
        let (recorder, elapsed) = await self.drive([operation], progress: progress)
        for listener in listeners { listener.cancel() }
        report.record(recorder, elapsed: elapsed, errors: progress.errors.load(ordering: .relaxed))
        report.recall = recalls.histogram
        report.notes.append("\(holders.count) layout holders; latency = a break (allocate or truncate) until committed, all holders having returned")
        for session in sessions { _ = try? await session.close() }
    }

    // MARK: - expiry-storm

    /// pin-unpin on every connection while `count` sessions expire together a third of
    /// the way into the measured period. They are opened on another connection before the
    /// run, each with the TTL that makes its deadline that one instant, and never renewed
    /// (their connection is closed), so the storm is expirations alone, not the opening.
    /// Reports how fast they went (as `status` sees it) and the pin-unpin p99 of the
    /// seconds before the storm against the seconds it lasted.
    func expiryStorm(sessions count: Int, on expiring: LeaseholdClient, admin: LeaseholdClient, into report: inout Report) async throws {
        let sessions = try await self.openSessions()
        var operations: [Operation] = []
        for session in sessions {
            for _ in 0..<self.inFlight { operations.append(try await Workload.pinUnpin.worker(session)) }
        }
        let limits = admin.server.limits
        // Opening may take a while; the run starts once it is done, at `runStart`.
        let openBudget = Duration.seconds(Swift.max(5, count / 1_000))
        let runStart = ContinuousClock.now + openBudget
        let expireAt = runStart + self.warmUp + self.measured / 3
        guard expireAt - ContinuousClock.now <= limits.maximumTTL else {
            throw BenchError("expiry-storm: the storm is \(expireAt - ContinuousClock.now) away, beyond the server's max TTL \(limits.maximumTTL)")
        }
        let before = try await admin.status().volume.sessions
        let opened = Counter()
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<64 {
                group.addTask {
                    var index = worker
                    while index < count, ContinuousClock.now < runStart {
                        let ttl = Swift.max(expireAt - ContinuousClock.now, limits.minimumTTL)
                        if (try? await expiring.openSession(name: "expiring", ttl: ttl, slots: 1)) != nil { opened.value.add(1, ordering: .relaxed) }
                        index += 64
                    }
                }
            }
        }
        expiring.close()
        let n = opened.value.load(ordering: .relaxed)
        guard n == count else { throw BenchError("expiry-storm: opened \(n) of \(count) sessions within \(openBudget)") }
        try await Task.sleep(until: runStart, clock: .continuous)
        let storm = Task { () -> (first: ContinuousClock.Instant?, last: ContinuousClock.Instant?) in
            try? await Task.sleep(until: expireAt - .milliseconds(200), clock: .continuous)
            var first: ContinuousClock.Instant?
            while ContinuousClock.now < expireAt + .seconds(30) {
                let live = (try? await admin.status().volume.sessions) ?? Int.max
                if live < before + n, first == nil { first = ContinuousClock.now }
                if live <= before { return (first, ContinuousClock.now) }
                try? await Task.sleep(for: .milliseconds(10))
            }
            return (first, nil)
        }
        let progress = Progress()
        let (recorder, elapsed) = await self.drive(operations, progress: progress)
        report.record(recorder, elapsed: elapsed, errors: progress.errors.load(ordering: .relaxed))
        let (first, last) = await storm.value
        report.notes.append("\(n) sessions opened before the run, each with the TTL that ends it \(Self.seconds(expireAt - runStart - self.warmUp)) s into the measured period; not renewed (connection closed)")
        if let first, let last {
            let spread = last - first
            report.notes.append(
                "status saw the first gone \(Self.millis(first - expireAt)) ms and the last \(Self.millis(last - expireAt)) ms after the deadline (polled every 10 ms): \(spread > .milliseconds(10) ? String(format: "%.0f", Double(n) / (Double(spread.nanosecondsValue) / 1e9)) : "all within one poll,") expirations/s"
            )
            // Seconds of the measured period, as the recorder numbers them.
            let measuredStart = runStart + self.warmUp
            let stormSeconds = Set(Int((first - measuredStart).nanosecondsValue / 1_000_000_000)...Int((last - measuredStart).nanosecondsValue / 1_000_000_000))
            var quiet = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .two)
            var stormy = quiet
            for (second, histogram) in report.perSecond where second < (stormSeconds.min() ?? 0) { quiet.add(histogram) }
            for (second, histogram) in report.perSecond where stormSeconds.contains(second) { stormy.add(histogram) }
            if quiet.totalCount > 0, stormy.totalCount > 0 {
                report.notes.append(
                    "pin-unpin p99 in the seconds before the storm \(Self.millis(quiet.valueAtPercentile(99))) ms, in the seconds of the storm (\(stormSeconds.sorted().map(String.init).joined(separator: ", "))) \(Self.millis(stormy.valueAtPercentile(99))) ms"
                )
            }
        } else {
            report.notes.append("the sessions were not all gone within 30 s of their deadline")
        }
        for session in sessions { _ = try? await session.close() }
    }

    static func seconds(_ duration: Duration) -> String { String(format: "%.1f", Double(duration.nanosecondsValue) / 1e9) }
    static func millis(_ duration: Duration) -> String { String(format: "%.0f", Double(duration.nanosecondsValue) / 1e6) }
    static func millis(_ nanoseconds: UInt64) -> String { String(format: "%.1f", Double(nanoseconds) / 1e6) }
}

extension Driver {
    // MARK: - session-hold

    /// Opens every session (connections × sessions) with TTL `ttl` and leaves their
    /// renewal to the client library (a keepalive every TTL/3) through the warm-up and the
    /// measured period. At most once a second (slower when the samples themselves take
    /// longer) it counts the sessions the client sees in jeopardy or ended, and the
    /// sessions the server holds. A session that ends, or that the server
    /// drops, while its client kept renewing it is a spurious expiry.
    func sessionHold(admin: LeaseholdClient, into report: inout Report) async throws {
        let opening = ContinuousClock.now
        let sessions = try await self.openSessions()
        let openTime = ContinuousClock.now - opening
        let expected = try await admin.status().volume.sessions
        let start = ContinuousClock.now
        let end = start + self.warmUp + self.measured
        var peakJeopardy = 0
        var ended = 0
        var fewestOnServer = Int.max
        var second = 0
        while ContinuousClock.now < end {
            try await Task.sleep(until: start + .seconds(second + 1), clock: .continuous)
            second += 1
            var jeopardy = 0
            ended = 0
            for session in sessions {
                switch session.leaseState {
                case .jeopardy: jeopardy += 1
                case .ended: ended += 1
                case .active: break
                }
            }
            let onServer = try await admin.status().volume.sessions
            peakJeopardy = Swift.max(peakJeopardy, jeopardy)
            fewestOnServer = Swift.min(fewestOnServer, onServer)
            let elapsed = (ContinuousClock.now - start).components.seconds
            FileHandle.standardError.write(
                Data("\rt=\(elapsed)s, sample \(second): \(onServer) sessions on the server, \(jeopardy) in jeopardy, \(ended) ended   ".utf8)
            )
        }
        FileHandle.standardError.write(Data("\n".utf8))
        let held = Double((end - start).nanosecondsValue) / 1e9
        report.seconds = held
        report.errors = ended
        report.notes += [
            "\(sessions.count) sessions with TTL \(self.ttl) opened in \(String(format: "%.1f", Double(openTime.nanosecondsValue) / 1e9)) s, held \(String(format: "%.0f", held)) s; the client library renews each every TTL/3: \(String(format: "%.0f", Double(sessions.count) * 3 / (Double(self.ttl.nanosecondsValue) / 1e9))) keepalives/s",
            "spurious expiries: \(ended) sessions ended on the client; the server held \(fewestOnServer) of \(expected) at its lowest",
            "peak sessions in jeopardy (no successful renewal for TTL minus the jeopardy margin, as the client sees it) over \(second) samples: \(peakJeopardy)",
        ]
        for session in sessions { _ = try? await session.close() }
    }
}

/// A number shared between tasks.
final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

/// Recall latencies recorded by the holders' event tasks.
final class RecallLog: Sendable {
    let state = Mutex(Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three))
    func record(_ nanoseconds: UInt64) { self.state.withLock { _ = $0.record(nanoseconds) } }
    var histogram: Histogram<UInt64> { self.state.withLock { $0 } }
}
