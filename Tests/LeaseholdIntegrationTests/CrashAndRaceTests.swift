import Foundation
import LeaseholdClient
import LeaseholdTestSupport
import Synchronization
import Testing

/// What one workload client knows the server acknowledged.
final class Ledger: Sendable {
    struct State {
        var livePins: Set<UInt64> = []
        var inodes: Set<UInt64> = []
        var operations = 0
    }

    let state = Mutex(State())
}

/// A flag shared with workload tasks.
final class StopFlag: Sendable {
    let value = Atomic<Bool>(false)
    var isSet: Bool { self.value.load(ordering: .relaxed) }
    func set() { self.value.store(true, ordering: .relaxed) }
}

/// Outcome counts shared by the racers.
final class Tally: Sendable {
    let counts = Mutex<[String: Int]>([:])
    func add(_ key: String) { self.counts.withLock { $0[key, default: 0] += 1 } }
}

@Suite("Integration: crashes and races", .serialized, .timeLimit(.minutes(3)))
struct CrashAndRaceTests {
    let block: UInt64 = 4_096

    func bytes(_ start: UInt64, _ count: UInt64) -> ByteRange { ByteRange(offset: start * self.block, length: count * self.block) }

    @Test("the daemon killed with SIGKILL mid-workload and restarted: acknowledged state is there, sessions resume, check is clean")
    func daemonCrash() async throws {
        let daemon = try await Daemon()
        do {
            let clients = try await [daemon.client("host-a"), daemon.client("host-b"), daemon.client("host-c")]
            var sessions: [LeaseholdSession] = []
            var logs: [Task<Bool, Never>] = []
            for client in clients {
                let session = try await client.openSession(ttl: .seconds(3))
                sessions.append(session)
                // Each session reports whether it resumed after the restart.
                logs.append(Task {
                    for await event in session.events {
                        if case .resumed(let epoch) = event, epoch == 2 { return true }
                    }
                    return false
                })
            }
            let ledgers = sessions.map { _ in Ledger() }
            let stop = StopFlag()
            let block = self.block
            let workloads = zip(sessions, ledgers).enumerated().map { index, pair in
                let (session, ledger) = pair
                return Task {
                    var random = SystemRandomNumberGenerator()
                    let inode = try await session.createInode()
                    ledger.state.withLock { _ = $0.inodes.insert(inode.rawValue) }
                    _ = try await session.allocate(inode, ByteRange(offset: 0, length: 64 * block))
                    var pins: [PinID] = []
                    while !stop.isSet {
                        if pins.count < 8, Bool.random(using: &random) {
                            let start = UInt64.random(in: 0..<64, using: &random)
                            let grant = try await session.pin(inode, ranges: [ByteRange(offset: start * block, length: block)], kind: .longTerm)
                            pins.append(grant.pin)
                            ledger.state.withLock { _ = $0.livePins.insert(grant.pin.rawValue) }
                        } else if let pin = pins.popLast() {
                            try await session.unpin(pin)
                            ledger.state.withLock { _ = $0.livePins.remove(pin.rawValue) }
                        } else {
                            let extra = try await session.createInode()
                            ledger.state.withLock { _ = $0.inodes.insert(extra.rawValue) }
                        }
                        ledger.state.withLock { $0.operations += 1 }
                        _ = index
                    }
                }
            }
            // Slack for a loaded 2-core machine: the clients run on the test process's
            // cooperative pool beside every other suite.
            try await eventually("the workload is under way", timeout: .seconds(60)) {
                ledgers.allSatisfy { $0.state.withLock { $0.operations } > 20 }
            }
            await daemon.kill()
            let before = ledgers.map { $0.state.withLock { $0.operations } }
            try await Task.sleep(for: .milliseconds(300))
            try await daemon.start(port: daemon.port)
            try await eventually("every workload goes on after the restart") {
                zip(ledgers, before).allSatisfy { ledger, count in ledger.state.withLock { $0.operations } > count + 20 }
            }
            stop.set()
            for workload in workloads { try await workload.value }
            for log in logs { #expect(await log.value, "a session did not resume in epoch 2") }

            let status = try await daemon.status()
            #expect(status.int("epoch") == 2)
            let pins = try await daemon.ctlJSON(["pins"]) as! [[String: Any]]
            let expected = ledgers.reduce(into: Set<UInt64>()) { $0.formUnion($1.state.withLock { $0.livePins }) }
            #expect(Set(pins.map { UInt64(($0["pin"] as! NSNumber).intValue) }) == expected)
            let inodes = try await daemon.ctlJSON(["inodes"]) as! [[String: Any]]
            let created = ledgers.reduce(into: Set<UInt64>()) { $0.formUnion($1.state.withLock { $0.inodes }) }
            #expect(Set(inodes.map { UInt64(($0["inode"] as! NSNumber).intValue) }) == created)
            let check = try await daemon.ctl(["check"])
            #expect(check.status == 0, "\(check.output)")
            for session in sessions { try await session.close() }
            for client in clients { client.close() }
        } catch {
            await daemon.stop()
            throw error
        }
        await daemon.stop()
    }

    @Test("the daemon killed with SIGKILL as soon as a holder has a recall: after the restart the next recall reaches the holder and is answered")
    func recallAcrossKill() async throws {
        // Recall deadlines of 10 s: the holder must answer after the restart on a loaded machine.
        let daemon = try await Daemon(["--recall-timeout", "10s"])
        do {
            let holder = try await daemon.client("nic-1")
            let breaker = try await daemon.client("truncater")
            let held = try await holder.openSession(name: "holder", ttl: .seconds(20))
            let breaking = try await breaker.openSession(name: "breaker", ttl: .seconds(20))
            let recalls = Mutex<[LayoutRecall]>([])
            let listening = Task {
                for await event in held.events {
                    if case .layoutRecall(let recall) = event { recalls.withLock { $0.append(recall) } }
                }
            }
            let inode = try await breaking.createInode()
            _ = try await breaking.allocate(inode, self.bytes(0, 8))
            let layout = try await held.layoutGet(inode, ranges: [self.bytes(0, 8)], iomode: .readWrite)

            let first = Task { try await breaking.truncate(inode, size: 6 * self.block) }
            try await eventually("the first recall", timeout: .seconds(30)) { recalls.withLock { $0.count } == 1 }
            await daemon.kill()
            try await daemon.start(port: daemon.port)
            // The holder answers the recall it got before the kill (its session resumes); the
            // truncate, retried with its slot and sequence, then commits.
            try await recalls.withLock { $0[0] }.returnLayout()
            _ = try await first.value

            // (The restart pushed the outstanding recall again, under a new push number; the
            // next recall is the first with another recall id.)
            let before = recalls.withLock { $0[0] }
            let second = Task { try await breaking.truncate(inode, size: 4 * self.block) }
            var found: LayoutRecall?
            try await eventually("the next recall reaches the holder", timeout: .seconds(30)) {
                found = recalls.withLock { $0.first { $0.notice.recall != before.notice.recall } }
                return found != nil
            }
            let next = try #require(found)
            #expect(next.notice.recall > before.notice.recall)
            #expect(next.notice.range == BlockRange(start: 4, end: 6))
            try await next.returnLayout()
            let change = try await second.value
            #expect(change.returnedLayouts == [layout.stateID.id])
            #expect(change.evictedSessions.isEmpty)
            #expect(held.leaseState == .active)
            listening.cancel()
            holder.close()
            breaker.close()
        } catch {
            await daemon.stop()
            throw error
        }
        await daemon.stop()
    }

    @Test("a race: clients truncating, punching, allocating and pinning overlapping ranges; then check is clean and blocks add up")
    func race() async throws {
        let daemon = try await Daemon()
        do {
            let clients = try await [daemon.client("racer-0"), daemon.client("racer-1"), daemon.client("racer-2")]
            let setup = try await clients[0].openSession(ttl: .seconds(5))
            var inodes: [InodeID] = []
            for _ in 0..<3 {
                let inode = try await setup.createInode()
                _ = try await setup.allocate(inode, self.bytes(0, 32))
                inodes.append(inode)
            }
            let deadline = ContinuousClock.now + .seconds(4)
            let block = self.block
            let files = inodes
            let outcomes = Tally()
            let racers = (0..<6).map { index in
                Task {
                    let client = clients[index % clients.count]
                    let session = try await client.openSession(name: "racer \(index)", ttl: .seconds(5))
                    let answering = Task {
                        for await event in session.events {
                            switch event {
                            case .pinRecall(let recall): try? await recall.unpin()
                            case .layoutRecall(let recall): _ = try? await recall.returnLayout()
                            default: continue
                            }
                        }
                    }
                    var random = SystemRandomNumberGenerator()
                    var pins: [PinID] = []
                    while ContinuousClock.now < deadline {
                        let inode = files.randomElement(using: &random)!
                        let start = UInt64.random(in: 0..<40, using: &random)
                        let count = UInt64.random(in: 1...8, using: &random)
                        let range = ByteRange(offset: start * block, length: count * block)
                        let policies: [TruncatePolicy] = [.busy, .fail, .quarantine(keep: false), .wait(timeout: .milliseconds(100))]
                        let operation: String
                        do {
                            switch Int.random(in: 0..<6, using: &random) {
                            case 0:
                                operation = "allocate"
                                _ = try await session.allocate(inode, range)
                            case 1:
                                operation = "pin"
                                let kind: PinKind = Bool.random(using: &random) ? .longTerm : .shortTerm(ttl: .milliseconds(500))
                                pins.append(try await session.pin(inode, ranges: [range], kind: kind).pin)
                            case 2:
                                operation = "unpin"
                                if let pin = pins.popLast() { try await session.unpin(pin) }
                            case 3:
                                operation = "punch"
                                _ = try await session.punchHole(inode, range, policy: policies.randomElement(using: &random)!)
                            case 4:
                                operation = "truncate"
                                _ = try await session.truncate(inode, size: UInt64.random(in: 0...(48 * block), using: &random), policy: policies.randomElement(using: &random)!)
                            default:
                                operation = "layout"
                                let grant = try await session.layoutGet(inode, ranges: [range], iomode: .readWrite)
                                try await session.layoutReturn(grant.stateID)
                            }
                            outcomes.add(operation + " ok")
                        } catch let error as LeaseholdError {
                            outcomes.add(error.code.name)
                        }
                    }
                    answering.cancel()
                    if session.leaseState != .ended { try await session.close() }
                }
            }
            for racer in racers { try await racer.value }
            let counts = outcomes.counts.withLock { $0 }
            print("race outcomes: \(counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
            #expect(counts.filter { $0.key.hasSuffix(" ok") }.values.reduce(0, +) > 50)
            // Only the errors a race may cause; never an invariant breach or a crash.
            let allowed: Set<String> = ["rangeBreaking", "tryLater", "recallConflict", "busy", "timedOut", "notMapped", "noSpace", "notFound", "invalidArgument"]
            #expect(counts.keys.filter { !$0.hasSuffix(" ok") && !allowed.contains($0) }.isEmpty, "\(counts)")
            let check = try await daemon.ctl(["check"])
            #expect(check.status == 0, "\(check.output)")
            try await eventually("busy blocks drain once every pin is gone") { try await daemon.status().int("busyBlocks") == 0 }
            let status = try await daemon.status()
            let total = status.int("freeBlocks") + status.int("mappedBlocks") + status.int("busyBlocks") + status.int("quarantinedBlocks")
            #expect(total == 65_536, "\(status)")
            try await setup.close()
            for client in clients { client.close() }
        } catch {
            await daemon.stop()
            throw error
        }
        await daemon.stop()
    }
}
