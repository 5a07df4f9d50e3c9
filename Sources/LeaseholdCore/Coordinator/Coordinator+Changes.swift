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
        let starts = inode.map.drainChanges().map(\.fileBlock) + inode.map.extents.map(\.fileBlock)
        for start in starts {
            self.dirty.removedExtents.updateValue(nil, forKey: ExtentKey(inode: id, fileBlock: start))
        }
        self.dirty.inodes.insert(id)
    }

    /// Collects the rows changed by the current step and resets the records; `events` are
    /// the step's events (its effects), each a row of the history.
    mutating func drainChanges(events: [Event]) -> ChangeSet {
        var rows: [ChangeSet.Row] = []
        if self.dirty.volume { rows.append(.volume(self.volume)) }
        if self.dirty.counters { rows.append(.counters(self.counters)) }
        for (key, extent) in self.dirty.removedExtents { rows.append(.extent(key, extent)) }
        for id in self.dirty.inodes.elements {
            guard let inode = self.inodes[id] else {
                rows.append(.inode(id, nil))
                continue
            }
            rows.append(.inode(id, inode.record))
            guard inode.map.hasChanges else { continue }
            let extentChanges = self.inodes.modifyValue(forKey: id) { $0.map.drainChanges() } ?? []
            for (fileBlock, extent) in extentChanges {
                rows.append(.extent(ExtentKey(inode: id, fileBlock: fileBlock), extent))
            }
        }
        for (start, count) in self.free.drainChanges() { rows.append(.freeExtent(start, count: count)) }
        for (start, record) in self.dirty.busyRows { rows.append(.busy(start, record)) }
        for (start, run) in self.busy.drainChanges() {
            rows.append(.busy(start, run.map { BusyRecord(count: $0.count, quarantine: $0.payload.quarantine) }))
        }
        for id in self.dirty.sessions.elements { rows.append(.session(id, self.sessions[id]?.record)) }
        for key in self.dirty.slots.elements {
            rows.append(.slot(key, self.sessions.withValue(forKey: key.session) { $0.slot(Int(key.slot)).stored } ?? nil))
        }
        for id in self.dirty.pins.elements { rows.append(.pin(id, self.pins.withValue(forKey: id) { $0.record })) }
        for id in self.dirty.layouts.elements { rows.append(.layout(id, self.layouts[id]?.record)) }
        for id in self.dirty.recalls.elements { rows.append(.recall(id, self.recalls[id]?.record)) }
        for revision in self.dirty.fences.elements { rows.append(.fence(revision, self.fences[revision])) }
        for name in self.dirty.targets.elements { rows.append(.target(name, self.targets[name])) }
        for event in events { rows.append(.event(event)) }
        if let before = self.dirty.eventsDroppedBefore { rows.append(.eventsDropped(before: before)) }
        self.dirty.reset()
        return ChangeSet(rows: rows)
    }
}
