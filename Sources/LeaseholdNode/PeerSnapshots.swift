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
/// Lifecycle of one ``copy(from:atLeast:volume:geometry:into:)``: the peers are the
/// standbys among the nodes' reports in etcd (``NodeDirectory``), the most applied first
/// (not the leader: it serves clients, and its snapshot would be read from etcd anyway).
/// Each in turn is asked, with this node's node-role certificate, for a snapshot
/// (`createSnapshot`, then `readSnapshot` chunks into `DATA/snapshots/`, checked against
/// the size and SHA-256 the peer gave), within ``copyTimeout``; the file is loaded and
/// removed. A snapshot counts only when it names this cluster's volume UUID and holds a
/// volume of its geometry at an index at or past the checkpoint, so the entries after it
/// are still in etcd's log; the node then applies those entries as after any image, and a
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
    /// How long one peer's copy may take in all; then the next peer is asked.
    var copyTimeout: Duration = .seconds(300)

    /// The peers asked, in order: the standbys, the most applied first; never this node.
    static func order(_ peers: [NodeDirectory.Entry], excluding node: String) -> [NodeDirectory.Entry] {
        peers.filter { $0.name != node && $0.role == .standby }.sorted {
            ($0.appliedIndex, $1.name) > ($1.appliedIndex, $0.name)
        }
    }

    /// The first snapshot a peer hands out that is of `volume`, at or past `index` and of
    /// `geometry`.
    /// - Returns: it and the peer's name; `nil` when no peer gave one.
    func copy(
        from peers: [NodeDirectory.Entry], atLeast index: UInt64, volume: UUID, geometry: VolumeGeometry, into directory: String
    ) async -> (LoadedState, peer: String)? {
        for peer in Self.order(peers, excluding: self.node) where peer.appliedIndex >= index {
            guard let endpoint = HostPort(text: peer.endpoint) else { continue }
            do {
                let (image, named) = try await self.copy(from: endpoint, into: directory)
                guard named == volume else {
                    self.logger.warning(
                        "a peer's snapshot is of another volume; ignored",
                        metadata: ["peer": "\(peer.name)", "snapshot.volume": "\(named?.uuidString.lowercased() ?? "none")"]
                    )
                    continue
                }
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
            } catch is CancellationError {
                return nil
            } catch {
                self.logger.info("could not copy a peer's snapshot; trying the next", metadata: ["peer": "\(peer.name)", "error": "\(error)"])
            }
        }
        return nil
    }

    /// One peer's snapshot and the volume it names, read into a file of `directory` that is
    /// removed afterwards, within ``copyTimeout`` (then the connection is closed, which
    /// fails the copy's requests).
    private func copy(from endpoint: HostPort, into directory: String) async throws -> (LoadedState, UUID?) {
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
        let timeout = self.copyTimeout
        let copy = try await withThrowingTaskGroup(of: LeaseholdClient.SnapshotCopy?.self) { group in
            group.addTask { try await client.copySnapshot(to: path) }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            do {
                guard let copy = try await group.next() ?? nil else { throw PeerSnapshotError("the copy took longer than \(timeout)") }
                group.cancelAll()
                return copy
            } catch {
                // Ends the copy's requests, so the group does not wait on them.
                client.close()
                group.cancelAll()
                throw error
            }
        }
        let image = try ImageFile.read(path)
        self.logger.notice("copied a peer's snapshot", metadata: ["peer": "\(endpoint)", "snapshot.bytes": "\(copy.bytes)", "snapshot.position": "\(image.position)"])
        return (image, copy.volume)
    }
}

/// A peer's snapshot could not be copied.
struct PeerSnapshotError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
