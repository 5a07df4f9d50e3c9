import Foundation
import LeaseholdClient
import Synchronization

/// One step of a worker: runs one operation (or one phase of a pair) and returns.
typealias Operation = @Sendable () async throws -> Void

/// A value one worker (a sequential loop) keeps between its operations.
final class Slot<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
    func get() -> Value { self.value.withLock { $0 } }
    func set(_ value: Value) { self.value.withLock { $0 = value } }
}

/// The workloads of leasehold-bench.
enum Workload: String, CaseIterable, Sendable {
    /// pin (long-term, one block) then unpin, alternately.
    case pinUnpin = "pin-unpin"
    /// allocate 16 blocks, then truncate to 0.
    case allocateTruncate = "allocate-truncate"
    /// layoutGet of 16 blocks, then return it.
    case layoutGetReturn = "layout-get-return"
    /// keepAlive.
    case keepaliveFlood = "keepalive-flood"
    /// One truncater; every other session holds a layout on its file and answers recalls.
    case recallStorm = "recall-storm"
    /// pin-unpin while a burst of sessions is left to expire at once.
    case expiryStorm = "expiry-storm"
    /// A random mix of pins, unpins, allocations, truncates, layouts and keepalives.
    case mixed
    /// Many sessions renewed only by the client library's keepalives, checked for spurious
    /// expiries.
    case sessionHold = "session-hold"

    static let block: UInt64 = 4_096

    /// The operation a worker repeats in `session`.
    func worker(_ session: LeaseholdSession) async throws -> Operation {
        let block = Self.block
        switch self {
        case .pinUnpin, .expiryStorm:
            let inode = try await session.createInode()
            _ = try await session.allocate(inode, ByteRange(offset: 0, length: block))
            let held = Slot<PinID?>(nil)
            return {
                if let pin = held.get() {
                    try await session.unpin(pin)
                    held.set(nil)
                } else {
                    held.set(try await session.pin(inode, ranges: [ByteRange(offset: 0, length: block)], kind: .longTerm).pin)
                }
            }
        case .allocateTruncate:
            let inode = try await session.createInode()
            let allocated = Slot(false)
            return {
                if allocated.get() {
                    _ = try await session.truncate(inode, size: 0)
                    allocated.set(false)
                } else {
                    _ = try await session.allocate(inode, ByteRange(offset: 0, length: 16 * block))
                    allocated.set(true)
                }
            }
        case .layoutGetReturn:
            let inode = try await session.createInode()
            _ = try await session.allocate(inode, ByteRange(offset: 0, length: 16 * block))
            let held = Slot<LayoutStateID?>(nil)
            return {
                if let stateID = held.get() {
                    try await session.layoutReturn(stateID)
                    held.set(nil)
                } else {
                    held.set(try await session.layoutGet(inode, ranges: [ByteRange(offset: 0, length: 16 * block)], iomode: .readWrite).stateID)
                }
            }
        case .keepaliveFlood:
            return { _ = try await session.keepAlive() }
        case .mixed:
            let inode = try await session.createInode()
            _ = try await session.allocate(inode, ByteRange(offset: 0, length: 16 * block))
            let pins = Slot<[PinID]>([])
            return {
                switch Int.random(in: 0..<10) {
                case 0..<3:
                    let start = UInt64.random(in: 0..<16)
                    var held = pins.get()
                    held.append(try await session.pin(inode, ranges: [ByteRange(offset: start * block, length: block)], kind: .longTerm).pin)
                    pins.set(held)
                case 3..<6:
                    var held = pins.get()
                    if let pin = held.popLast() {
                        try await session.unpin(pin)
                        pins.set(held)
                    } else {
                        _ = try await session.keepAlive()
                    }
                case 6:
                    _ = try await session.punchHole(inode, ByteRange(offset: 15 * block, length: block))
                case 7:
                    _ = try await session.allocate(inode, ByteRange(offset: 0, length: 16 * block))
                case 8:
                    let grant = try await session.layoutGet(inode, ranges: [ByteRange(offset: 0, length: block)], iomode: .read)
                    try await session.layoutReturn(grant.stateID)
                default:
                    _ = try await session.keepAlive()
                }
            }
        case .recallStorm, .sessionHold:
            preconditionFailure("\(self.rawValue) has its own driver")
        }
    }
}
