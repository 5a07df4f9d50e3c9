import Foundation

/// What a cluster node's data directory says about the cluster it belongs to: the file
/// `DATA/cluster`, lines of `key value`.
///
/// Lifecycle: written when a node first starts on the directory (cluster name, volume
/// UUID), then rewritten with the highest log index the node applied, about once a second
/// and when it stops. A start checks it against etcd: another cluster or another volume
/// UUID (etcd wiped and initialized again, or the wrong endpoints) is refused, and so is
/// an etcd whose log ends below the index recorded here (etcd restored from an older
/// backup): serving that would forget acknowledged mutations. `leaseholdd` without
/// `--etcd-endpoints` refuses a directory that has the file at all, and so does `cluster
/// init --import` (it writes the file into the directory it imported). A file of an
/// earlier version holds the cluster name alone and still reads; its cluster has no
/// `volume` key, so its nodes refuse to start until a new cluster is initialized.
public struct ClusterMark: Sendable, Hashable {
    public var cluster: String
    public var volume: UUID?
    /// The highest log index this node applied.
    public var applied: UInt64

    public init(cluster: String, volume: UUID?, applied: UInt64 = 0) {
        self.cluster = cluster
        self.volume = volume
        self.applied = applied
    }

    public static func path(in directory: String) -> String {
        (directory as NSString).appendingPathComponent("cluster")
    }

    /// The directory's mark; `nil` when it has none.
    /// - Throws: a file error other than a missing file, or ``ClusterNodeError`` for a file
    ///   that does not read.
    public static func read(in directory: String) throws -> ClusterMark? {
        let path = Self.path(in: directory)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if lines.count == 1, !lines[0].contains(" ") { return ClusterMark(cluster: lines[0], volume: nil) }
        var values: [String: String] = [:]
        for line in lines {
            let pair = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard pair.count == 2 else { throw ClusterNodeError("\(path): '\(line)' is not 'key value'") }
            values[pair[0]] = pair[1]
        }
        guard let cluster = values["cluster"] else { throw ClusterNodeError("\(path) names no cluster") }
        let volume = try values["volume"].map { text -> UUID in
            guard let uuid = UUID(uuidString: text) else { throw ClusterNodeError("\(path): '\(text)' is not a UUID") }
            return uuid
        }
        guard let applied = UInt64(values["applied"] ?? "0") else { throw ClusterNodeError("\(path): applied '\(values["applied"]!)' is not a number") }
        return ClusterMark(cluster: cluster, volume: volume, applied: applied)
    }

    /// Writes the mark durably and atomically: a new file, synced, renamed over the old
    /// one, so a crash leaves the old mark or the new one, never an empty file.
    public func write(in directory: String) throws {
        var text = "cluster \(self.cluster)\n"
        if let volume { text += "volume \(volume.uuidString.lowercased())\n" }
        text += "applied \(self.applied)\n"
        let path = Self.path(in: directory)
        let temporary = path + ".new"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8)) else {
            throw ClusterNodeError("cannot write \(temporary)")
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
        try handle.synchronize()
        try handle.close()
        guard rename(temporary, path) == 0 else { throw ClusterNodeError("cannot rename \(temporary) to \(path): errno \(errno)") }
    }
}

/// A cluster node cannot start as asked; the message says why and what to do.
public struct ClusterNodeError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
