/// One change set with the net effect of several consecutive ones (a group-commit batch
/// written to the replicated log as one entry): applying it to any image gives what
/// applying them in order gives.
///
/// Keyed rows keep only the last write of each key (an upsert or a deletion), in the order
/// of those last writes; the counters and the volume, one row each. Events are appended in
/// order, and the history's drops become one `eventsDropped` row with the highest bound,
/// last: drops only ever raise the bound and every event appended after a drop has a
/// higher revision than what that drop removed, so one drop at the end removes exactly
/// what the drops in between did (events the final drop removes are left out).
extension ChangeSet {
    /// The key a row writes; `nil` for events and drops, which are not keyed.
    private enum Key: Hashable {
        case volume
        case counters
        case inode(InodeID)
        case extent(ExtentKey)
        case freeExtent(UInt64)
        case busy(UInt64)
        case session(SessionID)
        case slot(SlotKey)
        case pin(PinID)
        case layout(LayoutID)
        case recall(RecallID)
        case fence(FenceRevision)
        case target(String)
    }

    private static func key(of row: Row) -> Key? {
        switch row {
        case .volume: .volume
        case .counters: .counters
        case .inode(let key, _): .inode(key)
        case .extent(let key, _): .extent(key)
        case .freeExtent(let key, _): .freeExtent(key)
        case .busy(let key, _): .busy(key)
        case .session(let key, _): .session(key)
        case .slot(let key, _): .slot(key)
        case .pin(let key, _): .pin(key)
        case .layout(let key, _): .layout(key)
        case .recall(let key, _): .recall(key)
        case .fence(let key, _): .fence(key)
        case .target(let key, _): .target(key)
        case .event, .eventsDropped: nil
        }
    }

    /// The net effect of `sets`, applied in order.
    public static func coalescing(_ sets: [ChangeSet]) -> ChangeSet {
        guard sets.count > 1 else { return sets.first ?? ChangeSet() }
        var keyed: [Row?] = []
        var last: [Key: Int] = [:]
        var events: [Event] = []
        var dropBefore: EventRevision?
        for set in sets {
            for row in set.rows {
                switch row {
                case .event(let event):
                    events.append(event)
                case .eventsDropped(let before):
                    dropBefore = Swift.max(dropBefore ?? before, before)
                default:
                    let key = Self.key(of: row)!
                    if let earlier = last[key] { keyed[earlier] = nil }
                    last[key] = keyed.count
                    keyed.append(row)
                }
            }
        }
        var rows = keyed.compactMap { $0 }
        rows.reserveCapacity(rows.count + events.count + 1)
        for event in events where dropBefore.map({ event.revision >= $0 }) ?? true { rows.append(.event(event)) }
        if let dropBefore { rows.append(.eventsDropped(before: dropBefore)) }
        return ChangeSet(rows: rows)
    }
}
