// A tour of the client library against a running `swift run leaseholdd`: one client
// pins a range for DMA and holds a layout of the file, a second client truncates the
// file under both. The truncate waits for the layout to come back, and this one program
// simply awaits it: the first session's recall responder answers on its own (it stops
// the imaginary I/O and DMA; the library returns the layout range and unpins), so nobody
// is evicted, and the blocks go free.
//
//   swift run leaseholdd            # terminal 1
//   swift run leasehold-example     # terminal 2
//
// It uses the development certificates auto-TLS wrote into ./leasehold-data; pass a
// data directory as the first argument to use another one.
import LeaseholdClient

let dataDirectory = CommandLine.arguments.dropFirst().first ?? "./leasehold-data"
let configuration = ClientConfiguration.development(dataDirectory: dataDirectory)

let dmaHost = try await LeaseholdClient.connect(configuration)
let truncater = try await LeaseholdClient.connect(configuration)
print("connected to \(dmaHost.server.serverVersion), epoch \(dmaHost.server.epoch)")

// Recalls are answered as they come, on the library's own task (and slot), whatever this
// program is waiting for (docs/protocol.md, "Recalls"). Answering only between our own
// calls would stall the truncate below until the layout is revoked and the session
// evicted.
let responder = RecallResponder(
    layouts: { recall in print("recall of layout blocks \(recall.range): stopping I/O, then returning it") },
    pins: { recall in print("recall of pin \(recall.pin): stopping DMA, then unpinning") }
)
let pinning = try await dmaHost.openSession(name: "example-dma-host", ttl: .seconds(10), recalls: responder)
let inode = try await pinning.createInode()
_ = try await pinning.allocate(inode, ByteRange(offset: 0, length: 1 << 20))
let grant = try await pinning.pin(inode, ranges: [ByteRange(offset: 0, length: 65_536)], kind: .longTerm)
let layout = try await pinning.layoutGet(inode, ranges: [ByteRange(offset: 0, length: 1 << 20)], iomode: .readWrite)
print("pinned \(grant.extents.map { "blocks \($0.physicalBlock)+\($0.count)" }) with fencing token \(grant.token); layout \(layout.stateID.id)")

// The lease, and any recall the responder hands back (its closure threw).
let watching = Task {
    for await event in pinning.events {
        switch event {
        case .jeopardy: print("lease in jeopardy: stop all DMA now")
        case .layoutRecall(let recall): _ = try? await recall.returnLayout()
        case .pinRecall(let recall): try? await recall.unpin()
        default: continue
        }
    }
}

let breaking = try await truncater.openSession(name: "example-truncater", ttl: .seconds(10))
let change = try await breaking.truncate(inode, size: 0, policy: .busy)
print(
    "truncated: \(change.freedBlocks) blocks free, \(change.busyBlocks) busy until the pin is gone; "
        + "layouts returned \(change.returnedLayouts), revoked \(change.revokedLayouts); recalled pins \(change.recalledPins)"
)
guard change.revokedLayouts.isEmpty, change.evictedSessions.isEmpty, pinning.leaseState == .active else {
    fatalError("a recall went unanswered: revoked \(change.revokedLayouts), evicted \(change.evictedSessions)")
}

// The pin recall did not hold the truncate up (policy busy): wait for its answer.
let admin = try await LeaseholdClient.connect(configuration)
while try await admin.pins().contains(where: { $0.pin == grant.pin }) {
    guard pinning.leaseState == .active else { fatalError("the session ended before it unpinned") }
    try await Task.sleep(for: .milliseconds(20))
}
print("pin \(grant.pin) is gone: the responder answered its recall")
admin.close()
watching.cancel()
try await pinning.close()
try await breaking.close()
dmaHost.close()
truncater.close()
print("done: the busy blocks go free after the release delay (`swift run leaseholdctl busy` shows them until then)")
