import DequeModule

/// Every persisted row of a Coordinator, keyed as in ``ChangeSet``: what the journal
/// holds. Applying each step's change set to the image of the state before it gives
/// the image of the state after it, which the tests check after every step.
public struct PersistentState: Hashable, Sendable {
    public var volume: VolumeRecord?
    public var counters = Counters()
    public var inodes: [InodeID: InodeRecord] = [:]
    public var extents: [ExtentKey: MappedExtent] = [:]
    public var freeExtents: [UInt64: UInt64] = [:]
    public var busy: [UInt64: BusyRecord] = [:]
    public var sessions: [SessionID: SessionRecord] = [:]
    public var slots: [SlotKey: SlotRecord] = [:]
    public var pins: [PinID: PinRecord] = [:]
    public var layouts: [LayoutID: LayoutRecord] = [:]
    public var recalls: [RecallID: RecallRecord] = [:]
    public var fences: [FenceRevision: Fence] = [:]
    public var targets: [String: StorageTarget] = [:]
    /// The event history, oldest first.
    public var events = Deque<Event>()

    public init() {}

    /// Applies a change set: upserts rows, deletes `nil` ones.
    public mutating func apply(_ changes: ChangeSet) {
        for row in changes.rows {
            switch row {
            case .volume(let volume): self.volume = volume
            case .counters(let counters): self.counters = counters
            case .inode(let key, let value): self.inodes[key] = value
            case .extent(let key, let value): self.extents[key] = value
            case .freeExtent(let key, let count): self.freeExtents[key] = count
            case .busy(let key, let value): self.busy[key] = value
            case .session(let key, let value): self.sessions[key] = value
            case .slot(let key, let value): self.slots[key] = value
            case .pin(let key, let value): self.pins[key] = value
            case .layout(let key, let value): self.layouts[key] = value
            case .recall(let key, let value): self.recalls[key] = value
            case .fence(let key, let value): self.fences[key] = value
            case .target(let key, let value): self.targets[key] = value
            case .event(let event): self.insert(event)
            case .eventsDropped(let before):
                while let first = self.events.first, first.revision < before { self.events.removeFirst() }
            }
        }
    }

    /// Appends an event, or puts it in its place (rows of a whole image come in any order).
    private mutating func insert(_ event: Event) {
        guard let last = self.events.last, last.revision >= event.revision else {
            self.events.append(event)
            return
        }
        var index = self.events.endIndex
        while index > self.events.startIndex, self.events[index - 1].revision >= event.revision { index -= 1 }
        if index < self.events.endIndex, self.events[index].revision == event.revision {
            self.events[index] = event
        } else {
            self.events.insert(event, at: index)
        }
    }

    /// Every row as an upsert: writing it into an empty journal reproduces this image.
    public var changeSet: ChangeSet {
        var rows: [ChangeSet.Row] = []
        if let volume = self.volume { rows.append(.volume(volume)) }
        rows.append(.counters(self.counters))
        rows += self.inodes.map { .inode($0.key, $0.value) }
        rows += self.extents.map { .extent($0.key, $0.value) }
        rows += self.freeExtents.map { .freeExtent($0.key, count: $0.value) }
        rows += self.busy.map { .busy($0.key, $0.value) }
        rows += self.sessions.map { .session($0.key, $0.value) }
        rows += self.slots.map { .slot($0.key, $0.value) }
        rows += self.pins.map { .pin($0.key, $0.value) }
        rows += self.layouts.map { .layout($0.key, $0.value) }
        rows += self.recalls.map { .recall($0.key, $0.value) }
        rows += self.fences.map { .fence($0.key, $0.value) }
        rows += self.targets.map { .target($0.key, $0.value) }
        rows += self.events.map { .event($0) }
        return ChangeSet(rows: rows)
    }

    /// Describes every row that differs from `other`, table by table (for tests).
    public func differences(from other: PersistentState) -> [String] {
        var result: [String] = []
        if self.volume != other.volume { result.append("volume \(String(describing: self.volume)) vs \(String(describing: other.volume))") }
        if self.counters != other.counters { result.append("counters \(self.counters) vs \(other.counters)") }
        Self.compare("inode", self.inodes, other.inodes, &result)
        Self.compare("extent", self.extents, other.extents, &result)
        Self.compare("free extent", self.freeExtents, other.freeExtents, &result)
        Self.compare("busy run", self.busy, other.busy, &result)
        Self.compare("session", self.sessions, other.sessions, &result)
        Self.compare("slot", self.slots, other.slots, &result)
        Self.compare("pin", self.pins, other.pins, &result)
        Self.compare("layout", self.layouts, other.layouts, &result)
        Self.compare("recall", self.recalls, other.recalls, &result)
        Self.compare("fence", self.fences, other.fences, &result)
        Self.compare("target", self.targets, other.targets, &result)
        if self.events != other.events {
            result.append("events \(self.events.first?.revision.rawValue ?? 0)...\(self.events.last?.revision.rawValue ?? 0) (\(self.events.count)) vs \(other.events.first?.revision.rawValue ?? 0)...\(other.events.last?.revision.rawValue ?? 0) (\(other.events.count))")
        }
        return result
    }

    private static func compare<K: Hashable, V: Equatable>(_ name: String, _ lhs: [K: V], _ rhs: [K: V], _ result: inout [String]) {
        for key in Set(lhs.keys).union(rhs.keys) where lhs[key] != rhs[key] {
            result.append("\(name) \(key): \(lhs[key].map { "\($0)" } ?? "absent") vs \(rhs[key].map { "\($0)" } ?? "absent")")
        }
    }
}
