import ArgumentParser
import Foundation
import LeaseholdCluster
import LeaseholdCore
import LeaseholdEtcd
import LeaseholdJournal
import LeaseholdNode
import LeaseholdStore

/// `leaseholdd cluster ...`: what a cluster keeps in etcd about itself.
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Cluster mode: create a cluster's volume in etcd.",
        subcommands: [Init.self]
    )

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the cluster's volume (a new UUID, the geometry) and the settings every node serves with into etcd, once.",
            discussion: """
                Run once per cluster, before its nodes start; it refuses a cluster that has a volume or a log already. \
                The nodes then serve this volume with these settings, whatever their own flags say. With --import, \
                the state of a single node's data directory (stopped) becomes the cluster's first checkpoint: sessions, \
                pins, layouts, busy extents, fences and the event history carry over, and its geometry is the volume's.
                """
        )

        @Option(help: "A config file of 'key = value' lines (LEASEHOLD_CONFIG).") var config: String?
        @OptionGroup(title: "etcd") var etcd: EtcdOptions
        @OptionGroup(title: "Volume and settings") var volume: VolumeOptions
        @Option(help: "Import the state of this single-node data directory (the server must be stopped).") var `import`: String?

        func run() async throws {
            let lookup = try Lookup(config: self.config)
            guard let endpoints = self.etcd.endpoints(lookup) else { throw ValidationError("etcd-endpoints: required") }
            let etcd = try self.etcd.etcd(endpoints, lookup)
            let name = try self.etcd.clusterName(lookup)
            var coordinator = try self.volume.coordinator(lookup)
            var imported: LoadedState?
            if let directory = self.import {
                let path = (directory as NSString).appendingPathComponent("leasehold.db")
                guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("import: \(path) does not exist") }
                if let mark = try ClusterMark.read(in: directory) {
                    throw ValidationError("import: \(directory) belongs to cluster '\(mark.cluster)' already, not to a single node")
                }
                // Held until this process ends: a running server holds it too, so its state
                // cannot change under the import, and none can start on it meanwhile.
                _ = try DataDirectoryLock(directory: directory)
                let store = try Store(path: path)
                defer { try? store.close() }
                guard let loaded = try await store.load(), let volume = loaded.state.volume else {
                    throw ValidationError("import: \(path) holds no volume")
                }
                if self.volume.blockSize != nil || self.volume.blockCount != nil,
                    try self.volume.coordinator(lookup).geometry != volume.geometry
                {
                    throw ValidationError("import: the data directory's volume has geometry \(volume.geometry); the flags ask for another")
                }
                coordinator.geometry = volume.geometry
                imported = loaded
            }
            let cluster = ClusterVolume(
                geometry: coordinator.geometry,
                settings: ClusterSettings(
                    coordinator: coordinator, admins: self.volume.admins(lookup), targets: self.volume.targets(lookup), nodes: self.volume.nodeIdentities(lookup)
                )
            )
            let client = EtcdClient(etcd)
            do {
                try await cluster.create(client: client, keys: ClusterKeys(cluster: name), importing: imported)
            } catch {
                try? await client.shutdown()
                throw error
            }
            try? await client.shutdown()
            if let directory = self.import, let imported {
                // The directory's volume now belongs to the cluster: alone it would be a
                // second authority over the same blocks, so `serve` without etcd refuses it.
                try ClusterMark(cluster: name, volume: cluster.uuid, applied: max(1, imported.position.index)).write(in: directory)
            }
            var report = "cluster '\(name)': volume \(cluster.uuid.uuidString.lowercased()), \(cluster.geometry.blockCount) blocks of \(cluster.geometry.blockSize) bytes"
            if let imported { report += ", imported from \(self.import!) at log index \(max(1, imported.position.index))" }
            print(report)
        }
    }
}
