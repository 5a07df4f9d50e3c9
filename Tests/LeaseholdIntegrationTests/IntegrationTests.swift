import Foundation
import LeaseholdClient
import LeaseholdTestSupport
import Testing

/// The whole system: the real `leaseholdd` as a child process on loopback, library
/// clients and `leaseholdctl` processes at the same time. One daemon per test; every
/// process a test starts is stopped before it ends (and killed at exit if a test fails).
@Suite("Integration: leaseholdd with library and leaseholdctl clients", .serialized, .timeLimit(.minutes(3)))
struct IntegrationTests {
    let block: UInt64 = 4_096

    func bytes(_ start: UInt64, _ count: UInt64) -> ByteRange { ByteRange(offset: start * self.block, length: count * self.block) }

    func withDaemon(_ arguments: [String] = [], _ body: (Daemon) async throws -> Void) async throws {
        let daemon = try await Daemon(arguments)
        do {
            try await body(daemon)
        } catch {
            await daemon.stop()
            throw error
        }
        await daemon.stop()
    }

    /// Block conservation: every block is free, mapped, busy or quarantined, once.
    func expectConservation(_ daemon: Daemon, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let status = try await daemon.status()
        let total = status.int("freeBlocks") + status.int("mappedBlocks") + status.int("busyBlocks") + status.int("quarantinedBlocks")
        #expect(total == status.int("blockCount"), "blocks do not add up: \(status)", sourceLocation: sourceLocation)
        let check = try await daemon.ctl(["check"])
        #expect(check.status == 0, "leaseholdctl check: \(check.output)", sourceLocation: sourceLocation)
        #expect(check.output.contains("clean"), sourceLocation: sourceLocation)
    }

    @Test("seed scenario: A pins, B truncates under each policy, busy blocks name A and are never allocated, then go free")
    func seedScenario() async throws {
        try await self.withDaemon { daemon in
            let b = try await daemon.client("host-b")
            let c = try await daemon.client("host-c")
            let truncater = try await b.openSession(name: "B", ttl: .seconds(5))
            let allocator = try await c.openSession(name: "C", ttl: .seconds(5))
            let inode = try await truncater.createInode()
            _ = try await truncater.allocate(inode, self.bytes(0, 64))

            // A: a leaseholdctl process holding a short-term pin on the first 4 blocks.
            let a = try daemon.ctlProcess(["pin", "\(inode)", "0+16384", "--expiry", "30s", "--hold", "forever", "--ttl", "5s"], as: "host-a")
            try await a.waitForOutput("token")

            let failed = await #expect(throws: LeaseholdError.self) { _ = try await truncater.truncate(inode, size: 0, policy: .fail) }
            #expect(failed?.code == .busy)
            #expect(failed?.details.pins.count == 1)
            let waited = await #expect(throws: LeaseholdError.self) {
                _ = try await truncater.truncate(inode, size: 0, policy: .wait(timeout: .milliseconds(300)))
            }
            #expect(waited?.code == .timedOut)

            let change = try await truncater.truncate(inode, size: 0, policy: .busy)
            #expect(change.busyBlocks == 4)
            #expect(change.freedBlocks == 60)
            let busy = try await daemon.ctlJSON(["busy"]) as! [[String: Any]]
            #expect(busy.count == 1)
            let holders = busy.first?["pins"] as? [[String: Any]]
            #expect(holders?.first?["identity"] as? String == "host-a")
            let start = UInt64((busy.first?["start"] as? NSNumber)?.intValue ?? -1)
            let busyRange = start..<(start + 4)

            // C takes every free block: none of them is busy; one more is noSpace.
            let free = UInt64(try await daemon.status().int("freeBlocks"))
            let big = try await allocator.createInode()
            let allocation = try await allocator.allocate(big, self.bytes(0, free))
            #expect(allocation.extents.reduce(0) { $0 + $1.count } == free)
            for extent in allocation.extents {
                #expect(!(extent.physicalBlock..<(extent.physicalBlock + extent.count)).overlaps(busyRange))
            }
            let full = await #expect(throws: LeaseholdError.self) { _ = try await allocator.allocate(big, self.bytes(free, 1)) }
            #expect(full?.code == .noSpace)
            #expect(full?.details.busyBlocks == 4)
            _ = try await allocator.truncate(big, size: 0)

            // A stops: its session closes, the pin goes, the blocks free after the delay.
            a.signal(SIGTERM)
            #expect(await a.wait() == 0)
            try await eventually("the busy blocks return to free space") {
                try await daemon.status().int("busyBlocks") == 0
            }
            #expect(try await daemon.status().int("freeBlocks") == 65_536)

            // quarantine: a second pin, punched under quarantine-keep by leaseholdctl.
            let second = try await truncater.createInode()
            _ = try await truncater.allocate(second, self.bytes(0, 8))
            let a2 = try daemon.ctlProcess(["pin", "\(second)", "0+4096", "--expiry", "30s", "--hold", "forever"], as: "host-a")
            try await a2.waitForOutput("token")
            let punched = try await daemon.ctlJSON(["punch", "\(second)", "0+8192", "--policy", "quarantine-keep"], as: "host-b") as! [String: Any]
            #expect(punched.int("quarantinedBlocks") == 1)
            #expect(punched.int("freedBlocks") == 1)
            let quarantine = punched.int("quarantineInode")
            a2.signal(SIGTERM)
            await a2.wait()
            #expect(try await daemon.status().int("quarantinedBlocks") == 1)
            let deleted = try await daemon.ctl(["quarantine", "delete", "\(quarantine)", "--yes"])
            #expect(deleted.status == 0, "\(deleted.errors)")
            try await eventually("the quarantined block goes free") { try await daemon.status().int("quarantinedBlocks") == 0 }
            try await self.expectConservation(daemon)
            b.close()
            c.close()
        }
    }

    @Test("layout recalls across processes: returned, prolonged once, ignored until revoked and the holder fenced")
    func layoutRecalls() async throws {
        try await self.withDaemon { daemon in
            let b = try await daemon.client("host-b")
            let truncater = try await b.openSession(ttl: .seconds(5))
            var inodes: [InodeID] = []
            for _ in 0..<3 {
                let inode = try await truncater.createInode()
                _ = try await truncater.allocate(inode, self.bytes(0, 8))
                inodes.append(inode)
            }
            let modes = ["--answer-recalls", "--prolong-recalls", "--ignore-recalls"]
            var holders: [Child] = []
            for (inode, mode) in zip(inodes, modes) {
                let holder = try daemon.ctlProcess(["layout", "get", "\(inode)", "0+32768", "--read-write", "--hold", "forever", "--ttl", "5s", mode], as: "nic-\(holders.count)")
                try await holder.waitForOutput("token")
                holders.append(holder)
            }
            #expect((try await daemon.ctlJSON(["layouts"]) as! [Any]).count == 3)

            let answered = try await truncater.truncate(inodes[0], size: 0)
            #expect(answered.returnedLayouts.count == 1)
            #expect(answered.evictedSessions.isEmpty)
            try await holders[0].waitForOutput("returning")

            let started = ContinuousClock.now
            let prolonged = try await truncater.truncate(inodes[1], size: 0)
            #expect(ContinuousClock.now - started > .seconds(1), "the prolonged recall outlived its first deadline")
            #expect(prolonged.returnedLayouts.count == 1)
            #expect(prolonged.revokedLayouts.isEmpty)
            try await holders[1].waitForOutput("prolonging")  // printed before it returned; maybe not yet read

            let ignored = try await truncater.truncate(inodes[2], size: 0)
            #expect(ignored.revokedLayouts.count == 1)
            #expect(ignored.evictedSessions.count == 1)
            try await holders[2].waitForOutput("fenced: session evicted (missedRecall)")
            #expect(await holders[2].wait() == 22, "exit 10 + fenced(12): \(holders[2].stdout)")

            for holder in holders.prefix(2) {
                holder.signal(SIGTERM)
                #expect(await holder.wait() == 0)
            }
            try await self.expectConservation(daemon)
            b.close()
        }
    }

    @Test("a stopped storage target keeps an evicted session's blocks busy until it continues and acknowledges")
    func stoppedTarget() async throws {
        try await self.withDaemon { daemon in
            let target = try daemon.ctlProcess(["target", "run"], as: "target-1")
            try await target.waitForOutput("following the fence feed")
            try await eventually("the target is registered") {
                (try await daemon.ctlJSON(["targets"]) as! [[String: Any]]).count == 1
            }
            let a = try await daemon.client("host-a")
            let b = try await daemon.client("host-b")
            let holder = try await a.openSession(ttl: .seconds(5))
            let inode = try await holder.createInode()
            _ = try await holder.pin(inode, ranges: [self.bytes(0, 2)], kind: .shortTerm(ttl: .seconds(30)), allocate: true)
            let truncater = try await b.openSession(ttl: .seconds(5))
            #expect(try await truncater.truncate(inode, size: 0).busyBlocks == 2)

            target.signal(SIGSTOP)
            let evicted = try await daemon.ctl(["evict", "\(holder.id)", "--yes"])
            #expect(evicted.status == 0, "\(evicted.errors)")
            let busy = try await daemon.ctl(["busy"])
            #expect(busy.output.contains("waits for target-1"), "\(busy.output)")
            let json = try await daemon.ctlJSON(["busy"]) as! [[String: Any]]
            let fences = json.first?["fences"] as? [[String: Any]]
            #expect(fences?.first?["waitingForTargets"] as? [String] == ["target-1"])
            try await Task.sleep(for: .seconds(1))  // more than three release delays
            #expect(try await daemon.status().int("busyBlocks") == 2)

            target.signal(SIGCONT)
            try await target.waitForOutput("acknowledged 1")
            try await eventually("the blocks go free after the release delay") {
                try await daemon.status().int("busyBlocks") == 0
            }
            target.signal(SIGTERM)
            await target.wait()
            try await self.expectConservation(daemon)
            a.close()
            b.close()
        }
    }

    @Test("a client killed with SIGKILL expires and its busy blocks free; one stopped past its TTL is told it is expired and fenced")
    func deadAndStoppedClients() async throws {
        try await self.withDaemon { daemon in
            let b = try await daemon.client("host-b")
            let truncater = try await b.openSession(ttl: .seconds(5))
            let inode = try await truncater.createInode()
            _ = try await truncater.allocate(inode, self.bytes(0, 8))

            let killed = try daemon.ctlProcess(["pin", "\(inode)", "0+8192", "--expiry", "30s", "--hold", "forever", "--ttl", "1s"], as: "host-a")
            try await killed.waitForOutput("token")
            #expect(try await truncater.truncate(inode, size: 0).busyBlocks == 2)
            killed.signal(SIGKILL)
            await killed.wait()
            try await eventually("the session expires and its pin drops") {
                (try await daemon.ctlJSON(["pins"]) as! [Any]).isEmpty
            }
            try await eventually("its busy blocks free after the release delay") {
                try await daemon.status().int("busyBlocks") == 0
            }

            _ = try await truncater.allocate(inode, self.bytes(0, 8))
            let stopped = try daemon.ctlProcess(["pin", "\(inode)", "0+8192", "--expiry", "30s", "--hold", "forever", "--ttl", "1s"], as: "host-c")
            try await stopped.waitForOutput("token")
            stopped.signal(SIGSTOP)
            try await eventually("the stopped client's session expires") {
                (try await daemon.ctlJSON(["sessions"]) as! [[String: Any]]).allSatisfy { $0["identity"] as? String != "host-c" }
            }
            stopped.signal(SIGCONT)
            let status = try await stopped.waitForEnd()
            #expect(status == 21, "exit 10 + sessionExpired(11): \(stopped.stdout)")
            #expect(stopped.stdout.contains("session ended: sessionExpired"))
            #expect(stopped.stdout.contains("fenced"))
            try await self.expectConservation(daemon)
            b.close()
        }
    }
}
