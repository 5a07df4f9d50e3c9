// MARK: - Inodes

extension Coordinator {
    /// The regular inode `id`, or `notFound` / `permissionDenied` for a quarantine inode.
    func regularInode(_ id: InodeID) throws(LeaseholdError) -> Inode {
        try self.checkRegularInode(id)
        return self.inodes[id]!
    }

    /// Checks that `id` is a regular inode without copying it.
    func checkRegularInode(_ id: InodeID) throws(LeaseholdError) {
        guard let quarantine = self.inodes.withValue(forKey: id, { $0.isQuarantine }) else {
            throw .notFound("inode \(id) does not exist")
        }
        guard !quarantine else {
            throw .permissionDenied("inode \(id) is a quarantine inode: it refuses pins, layouts and mapping changes")
        }
    }

    mutating func createInode() -> Response {
        let id = InodeID(rawValue: self.nextID(\.lastInode))
        self.inodes[id] = Inode(id: id)
        self.dirty.inodes.insert(id)
        self.emit(.inodeCreated(id))
        return .inodeCreated(id)
    }

    /// Clears the unwritten flag of the mapped blocks of `range` (outward). Holes are skipped.
    mutating func markWritten(_ id: InodeID, _ range: ByteRange) throws(LeaseholdError) -> Response {
        try self.checkRegularInode(id)
        let blocks = try self.geometry.outward(range)
        let (generation, changed) = self.modifyInode(id) { inode in
            let changed = inode.map.markWritten(blocks)
            if changed > 0 { inode.generation += 1 }
            return (inode.generation, changed)
        }
        return .markedWritten(generation: generation, blocks: changed)
    }

    /// Validates a list of byte ranges and returns their outward block ranges, coalesced.
    func outwardRanges(_ ranges: [ByteRange]) throws(LeaseholdError) -> [BlockRange] {
        guard !ranges.isEmpty else { throw .invalidArgument("at least one range is required") }
        if ranges.count == 1 { return [try self.geometry.outward(ranges[0])] }
        guard ranges.count <= self.configuration.maxRangesPerRequest else {
            throw .invalidArgument("\(ranges.count) ranges in one request; at most \(self.configuration.maxRangesPerRequest) are allowed")
        }
        var blocks: [BlockRange] = []
        for range in ranges { blocks.append(try self.geometry.outward(range)) }
        return blocks.coalesced()
    }

    /// Byte offset of a file block, saturating (for messages).
    func byteOffset(_ fileBlock: UInt64) -> UInt64 {
        self.geometry.byteOffset(ofBlock: fileBlock) ?? .max
    }
}
