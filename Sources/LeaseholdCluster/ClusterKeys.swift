import LeaseholdEtcd

/// The etcd keys of one cluster (docs/cluster.md, "Keys"), all under `/leasehold/NAME/`.
public struct ClusterKeys: Sendable, Hashable {
    /// `/leasehold/NAME/`.
    public let prefix: String

    /// - Precondition: `name` is a valid cluster name (``ClusterKeys/isValidName(_:)``).
    public init(cluster name: String) {
        precondition(Self.isValidName(name), "invalid cluster name \(name)")
        self.prefix = "/leasehold/\(name)/"
    }

    /// Letters, digits, `-`, `_` and `.`, 1 to 64 of them: a name that cannot reach out of
    /// its prefix.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64 && name != "." && name != ".."
            && name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) }
    }

    /// Every key of the cluster: the prefix range.
    public var all: (start: String, end: String) { (self.prefix, etcdPrefixEnd(self.prefix)) }

    /// The election keys, one per node under its own lease.
    public var leaderPrefix: String { self.prefix + "leader/" }

    public func leader(lease: Int64) -> String {
        self.leaderPrefix + Self.hex(UInt64(bitPattern: lease))
    }

    /// What each node last published of itself (``NodeDirectory``).
    public var nodesPrefix: String { self.prefix + "nodes/" }

    public func node(_ name: String) -> String { self.nodesPrefix + name }

    /// The volume: its UUID, geometry and the settings every node serves with
    /// (``ClusterVolume``), written once by `leaseholdd cluster init`.
    public var volume: String { self.prefix + "volume" }

    /// The position of the last committed entry.
    public var head: String { self.prefix + "head" }

    /// The entry at `index`; entries sort by index.
    public func log(_ index: UInt64) -> String { self.prefix + "log/" + Self.padded(index) }

    /// The end of the log's key range.
    public var logEnd: String { etcdPrefixEnd(self.prefix + "log/") }

    /// The parts of the entry at `index` written in `term`.
    public func parts(_ index: UInt64, term: UInt64) -> String {
        self.prefix + "part/" + Self.padded(index) + "/" + Self.padded(term) + "/"
    }

    public func part(_ index: UInt64, term: UInt64, _ k: Int) -> String {
        self.parts(index, term: term) + Self.padded(UInt64(k), digits: 6)
    }

    /// The entries (and their parts) at or below `index`: what a checkpoint at `index`
    /// replaces.
    public func logRange(through index: UInt64) -> (start: String, end: String) { (self.log(0), self.log(index + 1)) }
    public func partsRange(through index: UInt64) -> (start: String, end: String) {
        (self.prefix + "part/" + Self.padded(0), self.prefix + "part/" + Self.padded(index + 1))
    }

    /// The latest checkpoint.
    public var checkpoint: String { self.prefix + "checkpoint" }

    /// The pieces of the checkpoint at `index` that `writer` wrote (the attempt's random
    /// token; empty: the first builds' layout without one).
    public func checkpointParts(_ index: UInt64, writer: String) -> String {
        self.prefix + "cpart/" + Self.padded(index) + "/" + (writer.isEmpty ? "" : writer + "/")
    }

    public func checkpointPart(_ index: UInt64, writer: String, _ k: Int) -> String {
        self.checkpointParts(index, writer: writer) + Self.padded(UInt64(k), digits: 6)
    }

    /// A new writer token for ``checkpointParts(_:writer:)``.
    public static func newWriter() -> String { Self.hex(UInt64.random(in: .min ... .max)) }

    /// Every checkpoint piece.
    public var checkpointPartsAll: (start: String, end: String) { (self.prefix + "cpart/", etcdPrefixEnd(self.prefix + "cpart/")) }

    /// The index of a `log/` key, if it is one.
    public func index(ofLogKey key: String) -> UInt64? {
        let start = self.prefix + "log/"
        guard key.hasPrefix(start) else { return nil }
        return UInt64(key.dropFirst(start.count))
    }

    static func padded(_ value: UInt64, digits: Int = 20) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }

    static func hex(_ value: UInt64) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: 16 - text.count) + text
    }
}
