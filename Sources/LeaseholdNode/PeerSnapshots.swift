import Foundation
import LeaseholdClient
import LeaseholdCluster
import LeaseholdCore
import LeaseholdJournal
import Logging

/// Copying a peer's snapshot (docs/cluster.md, "Joining"): a node whose image is behind
/// the checkpoint (a new node, or one that was down past a compaction) copies the state
/// from another node instead of reading the checkpoint out of etcd.
///
/// Lifecycle of one ``copy(from:atLeast:geometry:into:)``: the peers are the nodes'
/// reports in etcd (``NodeDirectory``), standbys first and the most applied first, then
/// the leader. Each in turn is asked, with this node's node-role certificate, for a
/// snapshot (`createSnapshot`, then `readSnapshot` chunks into `DATA/snapshots/`); the
/// file is loaded and removed. A snapshot counts only when it holds a volume of the
/// cluster's geometry at an index at or past the checkpoint, so the entries after it are
/// still in etcd's log; the node then applies those entries as after any image, and a
/// snapshot the log was compacted past in the meantime gives way to etcd's checkpoint in
/// that catch-up. A peer only ever hands out committed state (a standby applies committed
/// entries only; a leader's snapshot is read from the log), so nothing here decides
/// anything: a failure moves on to the next peer, and after the last to etcd's checkpoint.
public struct PeerSnapshots: Sendable {
    /// The certificate a node presents to its peers (an identity with the cluster's node
    /// role, `cluster init --node-identity`) and the CA their server certificates chain to.
    public struct Identity: Sendable, Hashable {
        public var certificatePath: String
        public var keyPath: String
        public var caPath: String

        public init(certificatePath: String, keyPath: String, caPath: String) {
            self.certificatePath = certificatePath
            self.keyPath = keyPath
            self.caPath = caPath
        }
    }

    let identity: Identity
    /// This node's name: it does not copy from itself.
    let node: String
    let logger: Logger
    /// How long one peer may take to answer the connection.
    var connectTimeout: Duration = .seconds(5)

    /// The order peers are asked in: standbys before the leader (it serves clients, and
    /// its snapshot is read from etcd), the most applied first; never this node.
    static func order(_ peers: [NodeDirectory.Entry], excluding node: String) -> [NodeDirectory.Entry] {
        peers.filter { $0.name != node && $0.role != .single }.sorted {
            ($0.role == .standby ? 0 : 1, -Int64(clamping: $0.appliedIndex), $0.name) < ($1.role == .standby ? 0 : 1, -Int64(clamping: $1.appliedIndex), $1.name)
        }
    }

    /// The first snapshot a peer hands out that is at or past `index` and of `geometry`.
    /// - Returns: it and the peer's name; `nil` when no peer gave one.
    func copy(from peers: [NodeDirectory.Entry], atLeast index: UInt64, geometry: VolumeGeometry, into directory: String) async -> (LoadedState, peer: String)? {
        for peer in Self.order(peers, excluding: self.node) where peer.appliedIndex >= index {
            guard let endpoint = HostPort(text: peer.endpoint) else { continue }
            do {
                let image = try await self.copy(from: endpoint, into: directory)
                guard image.position.index >= index else {
                    self.logger.info(
                        "a peer's snapshot is behind the checkpoint; trying the next",
                        metadata: ["peer": "\(peer.name)", "snapshot.position": "\(image.position)", "log.checkpoint": "\(index)"]
                    )
                    continue
                }
                guard image.state.volume?.geometry == geometry else {
                    self.logger.warning("a peer's snapshot holds a volume of another geometry; ignored", metadata: ["peer": "\(peer.name)"])
                    continue
                }
                return (image, peer.name)
            } catch {
                self.logger.info("could not copy a peer's snapshot; trying the next", metadata: ["peer": "\(peer.name)", "error": "\(error)"])
            }
        }
        return nil
    }

    /// One peer's snapshot, read into a file of `directory` that is removed afterwards.
    private func copy(from endpoint: HostPort, into directory: String) async throws -> LoadedState {
        var configuration = ClientConfiguration(
            endpoints: [endpoint], certificatePath: self.identity.certificatePath, keyPath: self.identity.keyPath, caPath: self.identity.caPath
        )
        configuration.clientName = "leaseholdd node \(self.node)"
        configuration.acceptsStandby = true
        configuration.reconnectTimeout = self.connectTimeout
        let client = try await LeaseholdClient.connect(configuration, logger: self.logger)
        defer { client.close() }
        let folder = (directory as NSString).appendingPathComponent("snapshots")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = (folder as NSString).appendingPathComponent("peer-\(UInt32.random(in: .min ... .max)).image")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let bytes = try await client.snapshot(to: path)
        let image = try ImageFile.read(path)
        self.logger.notice("copied a peer's snapshot", metadata: ["peer": "\(endpoint)", "snapshot.bytes": "\(bytes)", "snapshot.position": "\(image.position)"])
        return image
    }
}
