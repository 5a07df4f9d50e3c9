import LeaseholdTestSupport
import Testing

@testable import LeaseholdCore

/// Free space and extent maps against a naive per-block array model, block by block.
@Suite("Free space and extent maps against a per-block model")
struct SpaceModelTests {
    struct Model {
        enum Owner: Equatable { case free, file(inode: Int, fileBlock: UInt64) }
        var owners: [Owner]
        var files: [[UInt64: (physical: UInt64, written: Bool)]]
    }

    @Test("random allocate, remove and markWritten agree with the model", arguments: TestSeed.seeds(default: [11, 12, 13, 14]))
    func randomOperations(seed: UInt64) async throws {
        print(TestSeed.replayHint(seed: seed, test: "SpaceModelTests"))
        // CPU-bound (a full rebuild of the model each step): on a low-priority thread of its
        // own, not on the two cooperative threads the timing tests beside it need.
        let failures = try await onOwnThread { () -> [String] in
            var checks = OffContextChecks()
            var random = SeededGenerator(seed: seed)
            let volume: UInt64 = 1_500
            let fileSpan: UInt64 = 600
            var free = FreeSpace(restoring: [BlockRange(start: 0, end: volume)])
            var maps = [ExtentMap](repeating: ExtentMap(), count: 4)
            var model = Model(owners: Array(repeating: .free, count: Int(volume)), files: Array(repeating: [:], count: 4))

            for step in 0..<3_000 {
                let inode = random.int(0...3)
                let start = random.uint(0...(fileSpan - 1))
                let range = BlockRange(start: start, end: min(fileSpan, start + random.uint(1...80)))
                switch random.int(0...9) {
                case 0...4:
                    // Fill the holes of `range`, each near its left neighbour.
                    let holes = maps[inode].holes(in: range)
                    let needed = holes.reduce(0) { $0 + $1.count }
                    guard needed <= free.blockCount else {
                        let refused = free.allocate(needed)
                        checks.check(refused == nil)
                        continue
                    }
                    for hole in holes {
                        let pieces = free.allocate(hole.count, near: maps[inode].localityHint(for: hole.start))!
                        checks.check(pieces.reduce(0) { $0 + $1.count } == hole.count)
                        var fileBlock = hole.start
                        for piece in pieces {
                            maps[inode].insert(MappedExtent(fileBlock: fileBlock, physicalBlock: piece.start, count: piece.count, written: false))
                            for offset in 0..<piece.count {
                                checks.check(model.owners[Int(piece.start + offset)] == .free, "allocated a block that was not free")
                                model.owners[Int(piece.start + offset)] = .file(inode: inode, fileBlock: fileBlock + offset)
                                model.files[inode][fileBlock + offset] = (piece.start + offset, false)
                            }
                            fileBlock += piece.count
                        }
                    }
                case 5...7:
                    for extent in maps[inode].remove(range) {
                        free.free(extent.physicalRange)
                        for offset in 0..<extent.count {
                            checks.check(model.files[inode][extent.fileBlock + offset]?.physical == extent.physicalBlock + offset)
                            model.files[inode][extent.fileBlock + offset] = nil
                            model.owners[Int(extent.physicalBlock + offset)] = .free
                        }
                    }
                default:
                    let changed = maps[inode].markWritten(range)
                    var expected: UInt64 = 0
                    for block in range.start..<range.end {
                        if let entry = model.files[inode][block], !entry.written {
                            expected += 1
                            model.files[inode][block] = (entry.physical, true)
                        }
                    }
                    checks.check(changed == expected, "markWritten changed \(changed) blocks, the model \(expected) at step \(step)")
                }

                // Block by block: rebuild per-block arrays from the structures and compare.
                checks.check(free.structuralProblems() == [])
                var owners = [Model.Owner?](repeating: nil, count: Int(volume))
                for extent in free.extents {
                    for block in extent.start..<extent.end { owners[Int(block)] = .free }
                }
                for (index, map) in maps.enumerated() {
                    checks.check(map.structuralProblems() == [])
                    var blocks: [UInt64: (physical: UInt64, written: Bool)] = [:]
                    for extent in map.extents {
                        for offset in 0..<extent.count {
                            blocks[extent.fileBlock + offset] = (extent.physicalBlock + offset, extent.written)
                            checks.check(owners[Int(extent.physicalBlock + offset)] == nil, "block mapped twice")
                            owners[Int(extent.physicalBlock + offset)] = .file(inode: index, fileBlock: extent.fileBlock + offset)
                        }
                    }
                    let same = blocks.count == model.files[index].count
                        && blocks.allSatisfy { entry in
                            guard let expected = model.files[index][entry.key] else { return false }
                            return expected.physical == entry.value.physical && expected.written == entry.value.written
                        }
                    checks.check(same, "inode \(index) differs from the model at step \(step)")
                }
                checks.check(owners == model.owners, "block owners differ from the model at step \(step)")
            }
            return checks.failures
        }
        #expect(failures.isEmpty, "seed \(seed): \(failures)")
    }

    @Test("allocation prefers the block after the neighbouring extent, then best fit, then largest fragments")
    func allocationPolicy() {
        var free = FreeSpace(restoring: [
            BlockRange(start: 0, count: 10), BlockRange(start: 100, count: 4), BlockRange(start: 200, count: 50),
            BlockRange(start: 300, count: 5),
        ])
        // Locality: the hint sits inside a free extent with room.
        let near = free.allocate(3, near: 204)
        #expect(near == [BlockRange(start: 204, count: 3)])
        // Best fit: the 5-block extent is the smallest that holds 5.
        let bestFit = free.allocate(5)
        #expect(bestFit == [BlockRange(start: 300, count: 5)])
        // Among equal best fits, the one at or after the hint.
        var twins = FreeSpace(restoring: [BlockRange(start: 10, count: 4), BlockRange(start: 50, count: 4)])
        let twin = twins.allocate(4, near: 40)
        #expect(twin == [BlockRange(start: 50, count: 4)])
        // No single extent fits 55: largest first, then the best fit for the rest.
        // Free now: [0,10) [100,104) [200,204) [207,250).
        let pieces = free.allocate(55)
        #expect(pieces == [BlockRange(start: 207, count: 43), BlockRange(start: 0, count: 10), BlockRange(start: 100, count: 2)])
        #expect(free.structuralProblems() == [])
        // Not enough: nothing changes.
        let before = free
        let tooMuch = free.allocate(1_000)
        #expect(tooMuch == nil)
        #expect(free == before)
    }

    @Test("freeing coalesces with both neighbours and partial removal splits")
    func freeingCoalesces() {
        var free = FreeSpace(restoring: [BlockRange(start: 0, count: 10), BlockRange(start: 20, count: 10)])
        free.free(BlockRange(start: 10, count: 10))
        #expect(free.extents == [BlockRange(start: 0, count: 30)])
        #expect(free.largestExtent == BlockRange(start: 0, count: 30))
        let removedMiddle = free.remove(BlockRange(start: 5, count: 5))
        #expect(removedMiddle)
        #expect(free.extents == [BlockRange(start: 0, count: 5), BlockRange(start: 10, count: 20)])
        let removedPartlyFree = free.remove(BlockRange(start: 3, count: 5))
        #expect(!removedPartlyFree)
        #expect(free.freeCount(in: BlockRange(start: 0, end: 15)) == 10)
    }

    @Test("extent maps coalesce physically contiguous runs and split on partial removal")
    func extentMapCoalescing() {
        var map = ExtentMap()
        map.insert(MappedExtent(fileBlock: 0, physicalBlock: 100, count: 4, written: false))
        map.insert(MappedExtent(fileBlock: 4, physicalBlock: 104, count: 4, written: false))
        #expect(map.extentCount == 1)
        map.insert(MappedExtent(fileBlock: 8, physicalBlock: 500, count: 2, written: false))
        #expect(map.extentCount == 2)
        let firstMark = map.markWritten(BlockRange(start: 2, end: 5))
        #expect(firstMark == 3)
        #expect(map.extentCount == 4)
        let secondMark = map.markWritten(BlockRange(start: 0, end: 8))
        #expect(secondMark == 5)
        #expect(map.extentCount == 2)
        let removed = map.remove(BlockRange(start: 3, end: 9))
        #expect(removed == [
            MappedExtent(fileBlock: 3, physicalBlock: 103, count: 5, written: true),
            MappedExtent(fileBlock: 8, physicalBlock: 500, count: 1, written: false),
        ])
        #expect(map.holes(in: BlockRange(start: 0, end: 12)) == [BlockRange(start: 3, end: 9), BlockRange(start: 10, end: 12)])
        #expect(map.localityHint(for: 3) == 103)
        #expect(map.structuralProblems() == [])
    }
}
