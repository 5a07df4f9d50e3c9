/// A sorted map from keys to values on an in-memory B-tree, with value semantics.
///
/// Every index of the Core (free space by start and by length, extent maps, busy and
/// reference runs, pins, layouts, timers) is built on this one type, as XFS builds its
/// free-space trees on one btree library. Lookups, inserts, removals and the neighbour
/// queries (`floor`, `ceiling`, `lower`, `higher`) are O(log n); iteration from a key
/// is O(log n + k).
///
/// Copy-on-write: nodes are shared between copies and copied on the path from the root
/// to the changed leaf (path copying), so copying a map is O(1) and a mutation after a
/// copy costs O(log n) nodes, never the whole tree. An iterator keeps reading the
/// version it started on.
public struct OrderedMap<Key: Comparable, Value> {
    final class Node {
        // Nodes are reached only through the map that owns them (copied on write when
        // shared), so no two accesses to one node's arrays ever overlap; the dynamic
        // exclusivity checks of class properties would cost more than the search itself.
        @exclusivity(unchecked) var keys: [Key]
        @exclusivity(unchecked) var values: [Value]
        /// Empty for a leaf; otherwise `keys.count + 1` children.
        @exclusivity(unchecked) var children: [Node]

        init(keys: [Key] = [], values: [Value] = [], children: [Node] = []) {
            self.keys = keys
            self.values = values
            self.children = children
        }

        var isLeaf: Bool { self.children.isEmpty }

        func copy() -> Node {
            Node(keys: self.keys, values: self.values, children: self.children)
        }
    }

    /// Most keys a node holds before it splits.
    static var maxKeys: Int { 63 }
    /// Fewest keys a non-root node holds before a removal makes it borrow or merge. Nodes
    /// split off by ascending inserts may hold fewer until they fill up.
    static var minKeys: Int { 31 }

    var root: Node
    /// Number of entries.
    public private(set) var count: Int

    /// Creates an empty map.
    public init() {
        self.root = Node()
        self.count = 0
    }

    public var isEmpty: Bool { self.count == 0 }
}

extension OrderedMap: @unchecked Sendable where Key: Sendable, Value: Sendable {}
// Nodes are mutated only through `isKnownUniquelyReferenced` paths owned by one map
// value, so sharing nodes between copies on different threads is safe.

// MARK: - Node search

extension OrderedMap.Node {
    /// First index whose key is `>= key`.
    func lowerBound(_ key: Key) -> Int {
        // One read of the class property, then a search on the local array: every access
        // to `self.keys` inside the loop would pay a dynamic exclusivity check.
        let keys = self.keys
        var low = 0
        var high = keys.count
        while low < high {
            let mid = (low + high) >> 1
            if keys[mid] < key { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// First index whose key is `> key`.
    func upperBound(_ key: Key) -> Int {
        let keys = self.keys
        var low = 0
        var high = keys.count
        while low < high {
            let mid = (low + high) >> 1
            if key < keys[mid] { high = mid } else { low = mid + 1 }
        }
        return low
    }

    /// The child at `index`, copied first if another map shares it.
    func uniqueChild(_ index: Int) -> OrderedMap.Node {
        if !isKnownUniquelyReferenced(&self.children[index]) {
            self.children[index] = self.children[index].copy()
        }
        return self.children[index]
    }
}

// MARK: - Lookup

extension OrderedMap {
    /// The value for `key`; setting `nil` removes the entry.
    public subscript(key: Key) -> Value? {
        get {
            var node = self.root
            while true {
                let index = node.lowerBound(key)
                if index < node.keys.count && node.keys[index] == key { return node.values[index] }
                if node.isLeaf { return nil }
                node = node.children[index]
            }
        }
        set {
            if let newValue {
                self.updateValue(newValue, forKey: key)
            } else {
                self.removeValue(forKey: key)
            }
        }
    }

    /// Reads the value for `key` in place, without copying it.
    /// - Returns: the closure's result, or `nil` when `key` is absent.
    public func withValue<R>(forKey key: Key, _ body: (borrowing Value) throws -> R) rethrows -> R? {
        var node = self.root
        while true {
            let index = node.lowerBound(key)
            if index < node.keys.count && node.keys[index] == key { return try body(node.values[index]) }
            if node.isLeaf { return nil }
            node = node.children[index]
        }
    }

    /// Whether `key` has an entry.
    public func contains(_ key: Key) -> Bool {
        self.withValue(forKey: key) { _ in true } ?? false
    }

    /// The entry with the smallest key.
    public var first: (key: Key, value: Value)? {
        guard self.count > 0 else { return nil }
        var node = self.root
        while !node.isLeaf { node = node.children[0] }
        return (node.keys[0], node.values[0])
    }

    /// The entry with the largest key.
    public var last: (key: Key, value: Value)? {
        guard self.count > 0 else { return nil }
        var node = self.root
        while !node.isLeaf { node = node.children[node.children.count - 1] }
        return (node.keys[node.keys.count - 1], node.values[node.values.count - 1])
    }

    /// The entry with the largest key `<= key`.
    public func floor(_ key: Key) -> (key: Key, value: Value)? {
        var node = self.root
        var best: (key: Key, value: Value)?
        while true {
            let index = node.upperBound(key)
            if index > 0 {
                best = (node.keys[index - 1], node.values[index - 1])
                if node.keys[index - 1] == key { return best }
            }
            if node.isLeaf { return best }
            node = node.children[index]
        }
    }

    /// The entry with the largest key `< key`.
    public func lower(_ key: Key) -> (key: Key, value: Value)? {
        var node = self.root
        var best: (key: Key, value: Value)?
        while true {
            let index = node.lowerBound(key)
            if index > 0 { best = (node.keys[index - 1], node.values[index - 1]) }
            if node.isLeaf { return best }
            node = node.children[index]
        }
    }

    /// The entry with the smallest key `>= key`.
    public func ceiling(_ key: Key) -> (key: Key, value: Value)? {
        var node = self.root
        var best: (key: Key, value: Value)?
        while true {
            let index = node.lowerBound(key)
            if index < node.keys.count {
                best = (node.keys[index], node.values[index])
                if node.keys[index] == key { return best }
            }
            if node.isLeaf { return best }
            node = node.children[index]
        }
    }

    /// The entry with the smallest key `> key`.
    public func higher(_ key: Key) -> (key: Key, value: Value)? {
        var node = self.root
        var best: (key: Key, value: Value)?
        while true {
            let index = node.upperBound(key)
            if index < node.keys.count { best = (node.keys[index], node.values[index]) }
            if node.isLeaf { return best }
            node = node.children[index]
        }
    }
}

// MARK: - Mutation

extension OrderedMap {
    struct Split {
        var key: Key
        var value: Value
        var right: Node
    }

    mutating func makeRootUnique() {
        if !isKnownUniquelyReferenced(&self.root) {
            self.root = self.root.copy()
        }
    }

    /// Inserts or replaces the value for `key`.
    /// - Returns: the previous value, if any.
    @discardableResult
    public mutating func updateValue(_ value: Value, forKey key: Key) -> Value? {
        self.makeRootUnique()
        let (old, split) = Self.insert(key, value, into: self.root)
        if let split {
            self.root = Node(keys: [split.key], values: [split.value], children: [self.root, split.right])
        }
        if old == nil { self.count += 1 }
        return old
    }

    /// Removes the entry for `key`.
    /// - Returns: the removed value, if there was one.
    @discardableResult
    public mutating func removeValue(forKey key: Key) -> Value? {
        guard self.count > 0 else { return nil }
        self.makeRootUnique()
        let old = Self.remove(key, from: self.root)
        if old != nil {
            self.count -= 1
            if self.root.keys.isEmpty && !self.root.isLeaf {
                self.root = self.root.children[0]
            }
        }
        return old
    }

    /// Changes the value for `key` in place, without copying it.
    /// - Returns: the closure's result, or `nil` when `key` is absent.
    @discardableResult
    public mutating func modifyValue<R>(forKey key: Key, _ body: (inout Value) throws -> R) rethrows -> R? {
        guard self.count > 0 else { return nil }
        self.makeRootUnique()
        var node = self.root
        while true {
            let index = node.lowerBound(key)
            if index < node.keys.count && node.keys[index] == key { return try body(&node.values[index]) }
            if node.isLeaf { return nil }
            node = node.uniqueChild(index)
        }
    }

    /// Removes every entry.
    public mutating func removeAll() {
        self.root = Node()
        self.count = 0
    }

    static func insert(_ key: Key, _ value: Value, into node: Node) -> (Value?, Split?) {
        let index = node.lowerBound(key)
        if index < node.keys.count && node.keys[index] == key {
            let old = node.values[index]
            node.values[index] = value
            return (old, nil)
        }
        if node.isLeaf {
            node.keys.insert(key, at: index)
            node.values.insert(value, at: index)
        } else {
            let (old, split) = Self.insert(key, value, into: node.uniqueChild(index))
            guard let split else { return (old, nil) }
            node.keys.insert(split.key, at: index)
            node.values.insert(split.value, at: index)
            node.children.insert(split.right, at: index + 1)
        }
        guard node.keys.count > Self.maxKeys else { return (nil, nil) }
        // Ascending inserts (ids, revisions, instants) append at the end of a node: split
        // off only the last key so the left node stays full instead of half empty. Any
        // other insert splits in the middle.
        let appended = index == node.keys.count - 1
        return (nil, Self.split(node, at: appended ? node.keys.count - 2 : node.keys.count / 2))
    }

    static func split(_ node: Node, at middle: Int) -> Split {
        let right = Node(
            keys: Array(node.keys[(middle + 1)...]),
            values: Array(node.values[(middle + 1)...]),
            children: node.isLeaf ? [] : Array(node.children[(middle + 1)...])
        )
        let split = Split(key: node.keys[middle], value: node.values[middle], right: right)
        node.keys.removeSubrange(middle...)
        node.values.removeSubrange(middle...)
        if !node.isLeaf { node.children.removeSubrange((middle + 1)...) }
        return split
    }

    static func remove(_ key: Key, from node: Node) -> Value? {
        let index = node.lowerBound(key)
        let found = index < node.keys.count && node.keys[index] == key
        if node.isLeaf {
            guard found else { return nil }
            node.keys.remove(at: index)
            return node.values.remove(at: index)
        }
        if found {
            let old = node.values[index]
            let (maxKey, maxValue) = Self.removeMax(from: node.uniqueChild(index))
            node.keys[index] = maxKey
            node.values[index] = maxValue
            Self.rebalance(node, child: index)
            return old
        }
        guard let old = Self.remove(key, from: node.uniqueChild(index)) else { return nil }
        Self.rebalance(node, child: index)
        return old
    }

    static func removeMax(from node: Node) -> (Key, Value) {
        if node.isLeaf {
            return (node.keys.removeLast(), node.values.removeLast())
        }
        let last = node.children.count - 1
        let result = Self.removeMax(from: node.uniqueChild(last))
        Self.rebalance(node, child: last)
        return result
    }

    /// Restores the minimum fill of `node.children[index]` (already unique) by borrowing
    /// from a sibling or merging with one.
    static func rebalance(_ node: Node, child index: Int) {
        guard node.children[index].keys.count < Self.minKeys else { return }
        if index > 0 && node.children[index - 1].keys.count > Self.minKeys {
            let left = node.uniqueChild(index - 1)
            let child = node.children[index]
            child.keys.insert(node.keys[index - 1], at: 0)
            child.values.insert(node.values[index - 1], at: 0)
            node.keys[index - 1] = left.keys.removeLast()
            node.values[index - 1] = left.values.removeLast()
            if !left.isLeaf { child.children.insert(left.children.removeLast(), at: 0) }
            return
        }
        if index + 1 < node.children.count && node.children[index + 1].keys.count > Self.minKeys {
            let right = node.uniqueChild(index + 1)
            let child = node.children[index]
            child.keys.append(node.keys[index])
            child.values.append(node.values[index])
            node.keys[index] = right.keys.removeFirst()
            node.values[index] = right.values.removeFirst()
            if !right.isLeaf { child.children.append(right.children.removeFirst()) }
            return
        }
        Self.merge(node, at: index > 0 ? index - 1 : index)
    }

    /// Merges `children[index]`, `keys[index]` and `children[index + 1]` into one child.
    static func merge(_ node: Node, at index: Int) {
        let left = node.uniqueChild(index)
        let right = node.children[index + 1]
        left.keys.append(node.keys[index])
        left.values.append(node.values[index])
        left.keys.append(contentsOf: right.keys)
        left.values.append(contentsOf: right.values)
        left.children.append(contentsOf: right.children)
        node.keys.remove(at: index)
        node.values.remove(at: index)
        node.children.remove(at: index + 1)
    }
}

// MARK: - Iteration

extension OrderedMap: Sequence {
    /// Iterates entries in key order, from a starting key on.
    public struct Iterator: IteratorProtocol {
        /// Each entry: a node and the index of its next key to emit, after its child at
        /// that index has been emitted.
        var stack: [(node: Node, index: Int)]

        init(root: Node, from key: Key?) {
            self.stack = []
            var node = root
            while true {
                let index = key.map { node.lowerBound($0) } ?? 0
                self.stack.append((node, index))
                if node.isLeaf { break }
                node = node.children[index]
            }
        }

        public mutating func next() -> (key: Key, value: Value)? {
            while let (node, index) = self.stack.last {
                guard index < node.keys.count else {
                    self.stack.removeLast()
                    continue
                }
                self.stack[self.stack.count - 1].index = index + 1
                if !node.isLeaf {
                    var child = node.children[index + 1]
                    while true {
                        self.stack.append((child, 0))
                        if child.isLeaf { break }
                        child = child.children[0]
                    }
                }
                return (node.keys[index], node.values[index])
            }
            return nil
        }
    }

    public func makeIterator() -> Iterator {
        Iterator(root: self.root, from: nil)
    }

    public var underestimatedCount: Int { self.count }

    /// Entries with keys `>= key`, in order.
    public func elements(from key: Key) -> IteratorSequence<Iterator> {
        IteratorSequence(Iterator(root: self.root, from: key))
    }

    /// All keys in order.
    public var keys: [Key] { self.map(\.key) }
}

// MARK: - Structure check (tests and invariants)

extension OrderedMap {
    /// Describes every structural defect of the tree: unsorted keys, wrong fill, uneven
    /// depth, or a count that does not match. Empty when the tree is well formed.
    public func structuralProblems() -> [String] {
        var problems: [String] = []
        var leafDepth: Int?
        var total = 0
        func walk(_ node: Node, depth: Int, lower: Key?, upper: Key?, isRoot: Bool) {
            total += node.keys.count
            if node.keys.count != node.values.count {
                problems.append("node has \(node.keys.count) keys but \(node.values.count) values")
            }
            if node.keys.count > Self.maxKeys { problems.append("node overfull: \(node.keys.count) keys") }
            if !isRoot && node.keys.isEmpty { problems.append("empty non-root node") }
            for i in node.keys.indices {
                if i > 0 && !(node.keys[i - 1] < node.keys[i]) { problems.append("keys out of order in a node") }
                if let lower, !(lower < node.keys[i]) { problems.append("key below its subtree bound") }
                if let upper, !(node.keys[i] < upper) { problems.append("key above its subtree bound") }
            }
            if node.isLeaf {
                if let leafDepth, leafDepth != depth { problems.append("leaves at depths \(leafDepth) and \(depth)") }
                leafDepth = depth
                return
            }
            if node.children.count != node.keys.count + 1 {
                problems.append("node has \(node.keys.count) keys but \(node.children.count) children")
                return
            }
            for (i, child) in node.children.enumerated() {
                walk(
                    child,
                    depth: depth + 1,
                    lower: i == 0 ? lower : node.keys[i - 1],
                    upper: i == node.keys.count ? upper : node.keys[i],
                    isRoot: false
                )
            }
        }
        walk(self.root, depth: 0, lower: nil, upper: nil, isRoot: true)
        if total != self.count { problems.append("count is \(self.count) but the tree holds \(total)") }
        return problems
    }
}

extension OrderedMap: Equatable where Value: Equatable {
    public static func == (lhs: OrderedMap, rhs: OrderedMap) -> Bool {
        guard lhs.count == rhs.count else { return false }
        if lhs.root === rhs.root { return true }
        return lhs.elementsEqual(rhs) { $0.key == $1.key && $0.value == $1.value }
    }
}

extension OrderedMap: CustomStringConvertible {
    public var description: String {
        "[" + self.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "]"
    }
}
