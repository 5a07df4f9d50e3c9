import Foundation
import LeaseholdClient
import LeaseholdTestSupport
import Testing

/// Every leaseholdctl command against a running daemon: output, JSON and exit codes.
@Suite("leaseholdctl commands", .serialized, .timeLimit(.minutes(3)))
struct LeaseholdctlTests {
    func json(_ text: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
    }

    @Test("scripting commands: inode create/show, allocate, pin and unpin in a named session, truncate, punch")
    func scripting() async throws {
        let daemon = try await Daemon()
        do {
            let created = try await daemon.ctlJSON(["inode", "create"], as: "scripter") as! [String: Any]
            let inode = created.int("inode")
            #expect(inode == 1)
            let allocated = try await daemon.ctlJSON(["allocate", "\(inode)", "0+65536"], as: "scripter") as! [String: Any]
            #expect(allocated.int("size") == 65_536)

            // pin without --hold leaves its session open: unpin it from another process.
            let pinned = try await daemon.ctlJSON(["pin", "\(inode)", "0+8192", "--long-term", "--ttl", "10s"], as: "scripter") as! [String: Any]
            let session = pinned.int("session")
            let secret = pinned["secret"] as! String
            #expect((try await daemon.ctlJSON(["pins"]) as! [Any]).count == 1)
            let wrong = try await daemon.ctl(["unpin", "\(pinned.int("pin"))", "--session", "\(session)", "--secret", String(repeating: "0", count: 32)], as: "scripter")
            #expect(wrong.status == 23, "permissionDenied: \(wrong.errors)")
            #expect(wrong.errors.contains("error: permissionDenied(13)"))
            let unpinned = try await daemon.ctl(["unpin", "\(pinned.int("pin"))", "--session", "\(session)", "--secret", secret], as: "scripter")
            #expect(unpinned.status == 0, "\(unpinned.errors)")
            #expect((try await daemon.ctlJSON(["pins"]) as! [Any]).isEmpty)

            let show = try await daemon.ctl(["inode", "show", "\(inode)"])
            #expect(show.output.contains("unwritten"))
            let detail = try await daemon.ctlJSON(["inode", "show", "\(inode)"]) as! [String: Any]
            #expect((detail["extents"] as! [Any]).count == 1)

            let punched = try await daemon.ctlJSON(["punch", "\(inode)", "0+4096"], as: "scripter") as! [String: Any]
            #expect(punched.int("freedBlocks") == 1)
            let truncated = try await daemon.ctlJSON(["truncate", "\(inode)", "5000", "--policy", "wait", "--timeout", "1s"], as: "scripter") as! [String: Any]
            #expect(truncated.int("size") == 5_000)
            #expect(truncated.int("freedBlocks") == 14)
            let stale = try await daemon.ctl(["truncate", "\(inode)", "0", "--generation", "1"], as: "scripter")
            #expect(stale.status == 13, "staleGeneration: \(stale.errors)")
            let missing = try await daemon.ctl(["inode", "show", "999"])
            #expect(missing.status == 12)
            let usage = try await daemon.ctl(["truncate", "\(inode)", "0", "--policy", "sometimes"])
            #expect(usage.status == 64)
            #expect((try await daemon.ctl(["check"])).status == 0)

            // An endpoint list: a dead one first, then the daemon; a malformed list is a usage error.
            let listed = try await daemon.ctl(["status", "--endpoint", "127.0.0.1:1,\(daemon.endpoint)"])
            #expect(listed.status == 0, "\(listed.errors)")
            #expect((try await daemon.ctl(["status", "--endpoint", "127.0.0.1:1,nowhere"])).status == 64)
            // A single node's ClusterStatus is itself.
            let overview = try await daemon.ctlJSON(["cluster"]) as! [String: Any]
            let nodes = overview["nodes"] as! [[String: Any]]
            #expect(overview["cluster"] as? String == "" && nodes.count == 1 && nodes.first?["role"] as? String == "single", "\(overview)")
            #expect((nodes.first?["connectedClients"] as? Int ?? 0) >= 1)
            #expect((overview["etcdMembers"] as! [Any]).isEmpty)
        } catch {
            await daemon.stop()
            throw error
        }
        await daemon.stop()
    }

    @Test("admin commands: watch, snapshot save, release --force, target deregister, non-admin refusals")
    func admin() async throws {
        let daemon = try await Daemon()
        do {
            let watch = try daemon.ctlProcess(["watch", "--json"])
            let target = try daemon.ctlProcess(["target", "run", "--json"], as: "target-1")
            try await eventually("the target is registered") { (try await daemon.ctlJSON(["targets"]) as! [Any]).count == 1 }

            let client = try await daemon.client("gpu-0")
            let session = try await client.openSession(ttl: .seconds(5))
            let inode = try await session.createInode()
            _ = try await session.pin(inode, ranges: [ByteRange(offset: 0, length: 8_192)], kind: .shortTerm(ttl: .seconds(30)), allocate: true)
            let breaker = try await client.openSession(ttl: .seconds(5))
            #expect(try await breaker.truncate(inode, size: 0).busyBlocks == 2)
            try await watch.waitForOutput("mappingChanged")
            try await watch.waitForOutput("targetRegistered")

            let refused = try await daemon.ctl(["busy"], as: "gpu-0")
            #expect(refused.status == 23)
            let busy = try await daemon.ctlJSON(["busy"]) as! [[String: Any]]
            let extent = "\(busy[0].int("start"))+\(busy[0].int("count"))"
            let noForce = try await daemon.ctl(["release", extent, "--yes"])
            #expect(noForce.status == 64)
            let released = try await daemon.ctlJSON(["release", "--force", extent, "--yes"]) as! [String: Any]
            #expect(released.int("released") == 2)
            try await watch.waitForOutput("forceReleased")

            let path = daemon.directory + "/backup.db"
            let saved = try await daemon.ctlJSON(["snapshot", "save", path]) as! [String: Any]
            #expect(saved.int("bytes") > 0)
            #expect(FileManager.default.fileExists(atPath: path))

            let evicted = try await daemon.ctlJSON(["evict", "\(session.id)", "--yes"]) as! [String: Any]
            try await target.waitForOutput("\"revision\":\(evicted.int("fenceRevision"))")
            target.signal(SIGTERM)
            await target.wait()
            let deregistered = try await daemon.ctl(["target", "deregister", "target-1", "--yes"])
            #expect(deregistered.status == 0, "\(deregistered.errors)")
            #expect((try await daemon.ctlJSON(["targets"]) as! [Any]).isEmpty)
            watch.signal(SIGTERM)
            try await watch.waitForEnd()
            let events = watch.stdout.split(separator: "\n").compactMap { try? self.json(String($0)) }
            let revisions = events.map { $0.int("revision") }
            #expect(revisions == revisions.sorted() && Set(revisions).count == revisions.count && !revisions.isEmpty)
            #expect((try await daemon.ctl(["check"])).status == 0)
            client.close()
        } catch {
            await daemon.stop()
            throw error
        }
        await daemon.stop()
    }

    @Test("certs init and issue write a CA and client certificates a server accepts")
    func certs() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("leasehold-certs-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let initialised = try Child("leaseholdctl", ["certs", "init", "--data-dir", directory])
        #expect(await initialised.wait() == 0)
        let issued = try Child("leaseholdctl", ["certs", "issue", "ops-alice", "--data-dir", directory, "--admin"])
        #expect(try await issued.waitForEnd() == 0)
        #expect(issued.stdout.contains("--admin ops-alice"))
        let bad = try Child("leaseholdctl", ["certs", "issue", "../etc", "--data-dir", directory])
        #expect(await bad.wait() != 0)
        // A daemon on that directory uses the CA it finds there (auto-TLS keeps it).
        let daemon = try await Daemon(["--admin", "ops-alice"], directory: directory)
        do {
            let status = try await daemon.ctl(["status"], as: "ops-alice")
            #expect(status.status == 0, "\(status.errors)")
        } catch {
            await daemon.stop()
            throw error
        }
        await daemon.stop()
    }
}
