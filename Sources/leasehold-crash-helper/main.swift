// A workload for the journal's crash test (Tests/LeaseholdStoreTests/CrashTests.swift):
// it opens (or recovers) a data directory, runs random mutations through a Coordinator
// and the group-commit Journal with many requests in flight, and prints one JSON line per
// acknowledged request, only once its change set is durable. The test kills it with
// SIGKILL at random moments and checks the database against what was acknowledged.
//
// Usage: leasehold-crash-helper DATABASE SEED [--ack-before-commit]
// `--ack-before-commit` is the negative control: it acknowledges before the commit, as a
// broken server would, so the checker has something to find.
import Foundation
import LeaseholdCore
import LeaseholdJournal
import LeaseholdStore

/// One acknowledged request: what the test retransmits after the restart.
struct Acknowledgement: Codable {
    var request: Request
    var reply: Reply
    var counters: Counters
}

struct Generator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Prints whole lines and flushes each, from any thread.
final class Output: Sendable {
    private let lock = NSLock()
    func line(_ text: String) {
        self.lock.lock()
        defer { self.lock.unlock() }
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }
}

let arguments = CommandLine.arguments
guard arguments.count >= 3, let seed = UInt64(arguments[2]) else {
    FileHandle.standardError.write(Data("usage: leasehold-crash-helper DATABASE SEED [--ack-before-commit]\n".utf8))
    exit(2)
}
let ackBeforeCommit = arguments.contains("--ack-before-commit")
var configuration = CoordinatorConfiguration()
configuration.geometry = try VolumeGeometry(blockSize: 4096, blockCount: 1 << 16)
configuration.maximumTTL = .seconds(300)

let store = try Store(path: arguments[1])
let boot = try await Boot.open(sink: store, configuration: configuration, at: .zero)
var coordinator = boot.coordinator
let journal = boot.journal
let output = Output()
let encoder = JSONEncoder()
var random = Generator(state: seed)
let now = Instant.zero  // time never advances: nothing expires, every reply is immediate

/// Sessions of this run (each works on its own inodes, so nothing waits on a recall).
var sessions: [(id: SessionID, caller: Caller, inodes: [InodeID], pins: [PinID], layouts: [LayoutStateID], sequence: UInt64)] = []
for index in 0..<8 {
    let caller = Caller(identity: "client-\(index)")
    let result = coordinator.handle(
        Request(caller: caller, command: .openSession(name: "crash", ttl: .seconds(300), slots: 4, secret: SessionSecret(high: seed, low: UInt64(index)))),
        at: now
    )
    guard case .success(.sessionOpened(let grant))? = result.reply else { fatalError("open failed") }
    await journal.commit(result.effects.changes)
    sessions.append((grant.session, caller, [], [], [], 0))
}
output.line("READY")

var outstanding = 0
await withTaskGroup(of: Void.self) { group in
    while true {
        let index = Int.random(in: 0..<sessions.count, using: &random)
        var session = sessions[index]
        let blocks = { (start: UInt64, count: UInt64) in ByteRange(offset: start * 4096, length: count * 4096) }
        let command: Command
        let roll = Int.random(in: 0..<100, using: &random)
        switch roll {
        case _ where session.inodes.isEmpty || (roll < 8 && session.inodes.count < 4):
            command = .createInode
        case 0..<25:
            command = .allocate(session.inodes.randomElement(using: &random)!, blocks(UInt64.random(in: 0..<64, using: &random), UInt64.random(in: 1...8, using: &random)), waitForBusy: nil, expectedGeneration: nil)
        case 25..<50:
            let kind: PinKind = Bool.random(using: &random) ? .longTerm : .shortTerm(ttl: .seconds(20))
            command = .pin(PinRequest(inode: session.inodes.randomElement(using: &random)!, ranges: [blocks(UInt64.random(in: 0..<64, using: &random), 2)], kind: kind, allocate: Bool.random(using: &random)))
        case 50..<68 where !session.pins.isEmpty:
            command = .unpin(session.pins.remove(at: Int.random(in: 0..<session.pins.count, using: &random)))
        case 68..<78:
            let policies: [TruncatePolicy] = [.busy, .fail, .quarantine(keep: false)]
            command = .truncate(session.inodes.randomElement(using: &random)!, size: UInt64.random(in: 0..<(64 * 4096), using: &random), policy: policies.randomElement(using: &random)!, expectedGeneration: nil)
        case 78..<86:
            command = .punchHole(session.inodes.randomElement(using: &random)!, blocks(UInt64.random(in: 0..<64, using: &random), 4), policy: .busy, expectedGeneration: nil)
        case 86..<94:
            command = .layoutGet(session.inodes.randomElement(using: &random)!, ranges: [blocks(UInt64.random(in: 0..<64, using: &random), 4)], iomode: .readWrite)
        case 94..<100 where !session.layouts.isEmpty:
            command = .layoutReturn(session.layouts.removeLast(), ranges: nil)
        default:
            command = .markWritten(session.inodes.randomElement(using: &random)!, blocks(0, 8))
        }
        session.sequence += 1
        let request = Request(caller: session.caller, session: session.id, tag: SlotTag(slot: UInt32(session.sequence % 4), sequence: session.sequence), command: command)
        let result = coordinator.handle(request, at: now)
        guard let reply = result.reply else { fatalError("a request waited: \(command.name)") }
        switch reply {
        case .success(.inodeCreated(let inode)): session.inodes.append(inode)
        case .success(.pinned(let grant)): session.pins.append(grant.pin)
        case .success(.layout(let grant)): session.layouts.append(grant.stateID)
        default: break
        }
        sessions[index] = session
        let line = String(decoding: try! encoder.encode(Acknowledgement(request: request, reply: reply, counters: coordinator.currentCounters)), as: UTF8.self)
        let sequence = journal.enqueue(result.effects.changes)
        if ackBeforeCommit {
            output.line(line)
        } else {
            outstanding += 1
            group.addTask {
                await journal.waitUntilDurable(sequence)
                output.line(line)
            }
            // At most 64 requests in flight, like 64 clients.
            if outstanding >= 64 {
                await group.next()
                outstanding -= 1
            }
        }
    }
}
