// A tour of the client library against a running `swift run leaseholdd`: one client
// pins a range for DMA, a second client truncates the file under it, the first gets the
// pin recall, stops its (imaginary) DMA and unpins, and the blocks go free.
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
let inode = try await pinning.createInode()
_ = try await pinning.allocate(inode, ByteRange(offset: 0, length: 1 << 20))
let grant = try await pinning.pin(inode, ranges: [ByteRange(offset: 0, length: 65_536)], kind: .longTerm)
print("pinned \(grant.extents.map { "blocks \($0.physicalBlock)+\($0.count)" }) with fencing token \(grant.token)")

// Answer recalls as they come: stop DMA, then unpin.
let answering = Task {
    for await event in pinning.events {
        switch event {
        case .pinRecall(let recall):
            print("recall of pin \(recall.notice.pin): stopping DMA and unpinning")
            try await recall.unpin()
            return
        case .jeopardy:
            print("lease in jeopardy: stop all DMA now")
        default:
            continue
        }
    }
}

let breaking = try await truncater.openSession(name: "example-truncater", ttl: .seconds(10))
let change = try await breaking.truncate(inode, size: 0, policy: .busy)
print("truncated: \(change.freedBlocks) blocks free, \(change.busyBlocks) busy until the pin is gone; recalled pins \(change.recalledPins)")

try await answering.value
try await pinning.close()
try await breaking.close()
dmaHost.close()
truncater.close()
print("done: the busy blocks go free after the release delay (`swift run leaseholdctl busy` shows them until then)")
