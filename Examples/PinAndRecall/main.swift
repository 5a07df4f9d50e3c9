// A tour of the client library against a running `swift run leaseholdd`: one client
// pins a range for DMA, a second client truncates the file under it, the first answers
// the pin recall with its responder (stops its imaginary DMA; the library unpins), and
// the blocks go free. One program drives both, and simply awaits the truncate: the
// responder answers independently of it.
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

let pinning = try await dmaHost.openSession(name: "example-dma-host", ttl: .seconds(10))
// Answer recalls as they come, on the library's own task and slot, whatever this program
// is waiting for (docs/protocol.md, "Recalls"): stop DMA, then the library unpins. Set up
// before the first pin or layout.
pinning.answerRecalls(
    layouts: { recall in print("recall of layout range \(recall.range): stopping I/O") },
    pins: { recall in print("recall of pin \(recall.pin): stopping DMA, then unpinning") }
)
let inode = try await pinning.createInode()
_ = try await pinning.allocate(inode, ByteRange(offset: 0, length: 1 << 20))
let grant = try await pinning.pin(inode, ranges: [ByteRange(offset: 0, length: 65_536)], kind: .longTerm)
print("pinned \(grant.extents.map { "blocks \($0.physicalBlock)+\($0.count)" }) with fencing token \(grant.token)")

// Watch the lease: jeopardy means stop all DMA now.
let watching = Task {
    for await event in pinning.events {
        if case .jeopardy = event { print("lease in jeopardy: stop all DMA now") }
    }
}

let breaking = try await truncater.openSession(name: "example-truncater", ttl: .seconds(10))
let change = try await breaking.truncate(inode, size: 0, policy: .busy)
print("truncated: \(change.freedBlocks) blocks free, \(change.busyBlocks) busy until the pin is gone; recalled pins \(change.recalledPins)")

let admin = try await LeaseholdClient.connect(configuration)
let deadline = ContinuousClock.now + .seconds(15)
while try await admin.pins().contains(where: { $0.pin == grant.pin }) {
    guard ContinuousClock.now < deadline else { fatalError("pin \(grant.pin) is still there after 15 s: its recall was not answered") }
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
