/// The keys one step touched, for the change set: usually a handful, so an array with a
/// linear membership test, switching to a hash set past 16 keys.
struct DirtyKeys<Key: Hashable & Sendable>: Sendable {
    private var small: [Key] = []
    private var large: Set<Key>?

    init() {}

    var isEmpty: Bool { self.small.isEmpty && (self.large?.isEmpty ?? true) }

    mutating func insert(_ key: Key) {
        if self.large != nil {
            self.large!.insert(key)
            return
        }
        if self.small.contains(key) { return }
        self.small.append(key)
        if self.small.count > 16 {
            self.large = Set(self.small)
            self.small.removeAll()
        }
    }

    /// Every key, each once, in no particular order.
    var elements: [Key] { self.large.map(Array.init) ?? self.small }

    mutating func removeAll() {
        if !self.small.isEmpty { self.small.removeAll(keepingCapacity: true) }
        if self.large != nil { self.large = nil }
    }
}
