// MARK: - Change sets

extension Coordinator {
    /// Changes `inode` in place and marks its row (and extent map) for persistence.
    @discardableResult
    mutating func modifyInode<R, E: Error>(_ id: InodeID, _ body: (inout Inode) throws(E) -> R) throws(E) -> R {
        self.dirty.inodes.insert(id)
        var result: Result<R, E>?
        self.inodes.modifyValue(forKey: id) { inode in
            do throws(E) {
                result = .success(try body(&inode))
            } catch {
                result = .failure(error)
            }
        }
        guard let result else { preconditionFailure("modifyInode of missing inode \(id)") }
        return try result.get()
    }

    /// Removes an inode and every row of its extent map: the rows on disk are the
    /// current runs plus any the step already changed, so all of them are deleted.
    mutating func removeInode(_ id: InodeID) {
        guard var inode = self.inodes.removeValue(forKey: id) else { return }
        let starts = Array(inode.map.drainChanges().keys) + inode.map.extents.map(\.fileBlock)
        for start in starts {
            self.dirty.removedExtents.updateValue(nil, forKey: ExtentKey(inode: id, fileBlock: start))
        }
        self.dirty.inodes.insert(id)
    }

    /// Collects the rows changed by the current step and resets the records.
    mutating func drainChanges() -> ChangeSet {
        var changes = ChangeSet()
        if self.dirty.volume { changes.volume = self.volume }
        if self.dirty.counters { changes.counters = self.counters }
        changes.extents = self.dirty.removedExtents
        for id in self.dirty.inodes.elements {
            guard let inode = self.inodes[id] else {
                changes.inodes.updateValue(nil, forKey: id)
                continue
            }
            changes.inodes.updateValue(inode.record, forKey: id)
            guard inode.map.hasChanges else { continue }
            let extentChanges = self.inodes.modifyValue(forKey: id) { $0.map.drainChanges() } ?? [:]
            for (fileBlock, extent) in extentChanges {
                changes.extents.updateValue(extent, forKey: ExtentKey(inode: id, fileBlock: fileBlock))
            }
        }
        changes.freeExtents = self.free.drainChanges()
        for (start, run) in self.busy.drainChanges() {
            changes.busy.updateValue(run.map { BusyRecord(count: $0.count, quarantine: $0.payload.quarantine) }, forKey: start)
        }
        for id in self.dirty.sessions.elements {
            changes.sessions.updateValue(self.sessions[id]?.record, forKey: id)
        }
        for key in self.dirty.slots.elements {
            changes.slots.updateValue(self.sessions.withValue(forKey: key.session) { $0.slot(Int(key.slot)).stored } ?? nil, forKey: key)
        }
        changes.busy.merge(self.dirty.busyRows) { current, _ in current }
        for id in self.dirty.pins.elements { changes.pins.updateValue(self.pins[id]?.record, forKey: id) }
        for id in self.dirty.layouts.elements { changes.layouts.updateValue(self.layouts[id]?.record, forKey: id) }
        for id in self.dirty.recalls.elements { changes.recalls.updateValue(self.recalls[id]?.record, forKey: id) }
        for revision in self.dirty.fences.elements { changes.fences.updateValue(self.fences[revision], forKey: revision) }
        for name in self.dirty.targets.elements { changes.targets.updateValue(self.targets[name], forKey: name) }
        self.dirty.reset()
        return changes
    }
}
