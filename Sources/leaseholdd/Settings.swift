import ArgumentParser
import Foundation
import LeaseholdCluster
import LeaseholdCore
import LeaseholdEtcd

/// Where a setting comes from: the flag, then `LEASEHOLD_<KEY>`, then the config file
/// (docs/configuration.md).
struct Lookup {
    let environment: [String: String]
    let file: ConfigFile

    init(config: String?) throws {
        self.environment = ProcessInfo.processInfo.environment
        self.file = try (config ?? self.environment["LEASEHOLD_CONFIG"]).map(ConfigFile.init(path:)) ?? ConfigFile()
    }

    func value(_ flag: String?, _ key: String) -> String? {
        flag ?? self.environment["LEASEHOLD_" + key.uppercased().replacingOccurrences(of: "-", with: "_")] ?? self.file.values[key]
    }

    func list(_ flag: [String], _ key: String) -> [String]? {
        if !flag.isEmpty { return flag }
        return self.value(nil, key).map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
    }

    func duration(_ flag: String?, _ key: String) throws -> Duration? {
        guard let text = self.value(flag, key) else { return nil }
        guard let parsed = Duration(text: text) else { throw ValidationError("\(key): '\(text)' is not a duration (e.g. 250ms, 10s, 5m)") }
        return parsed
    }

    func address(_ flag: String?, _ key: String) throws -> HostPort? {
        guard let text = self.value(flag, key) else { return nil }
        guard let address = HostPort(text: text) else { throw ValidationError("\(key): '\(text)' is not host:port") }
        return address
    }

    func number<T: LosslessStringConvertible>(_ flag: T?, _ key: String) throws -> T? {
        if let flag { return flag }
        guard let text = self.value(nil, key) else { return nil }
        guard let parsed = T(text) else { throw ValidationError("\(key): '\(text)' is not a number") }
        return parsed
    }
}

/// The volume's geometry, the Coordinator's TTL bounds and timers, and the roles: a
/// single node's own settings, and in cluster mode what `cluster init` writes into etcd
/// for every node (a node's own values are then ignored).
struct VolumeOptions: ParsableArguments {
    @Option(help: "Block size in bytes, first start only (default 4096).") var blockSize: UInt64?
    @Option(help: "Blocks in the volume, first start only (default 268435456).") var blockCount: UInt64?
    @Option(help: "Shortest session TTL (default 1s).") var minTtl: String?
    @Option(help: "Session TTL when a client asks for none (default 10s).") var defaultTtl: String?
    @Option(help: "Longest session TTL (default 300s).") var maxTtl: String?
    @Option(help: "Longest own expiry of a short-term pin (default 30s).") var maxShortTermPin: String?
    @Option(help: "Time a holder has to answer a recall (default 10s).") var recallTimeout: String?
    @Option(help: "Time busy blocks stay busy after their last holder is gone (default 5s; 0 allowed).") var releaseDelay: String?
    @Option(help: "Cap of every wait (default 60s).") var maxWait: String?
    @Option(help: "Admin events the durable history keeps, 0...1000000 (default 10000; 0: none, watchers get live events only).") var eventHistory: Int?
    @Option(help: "An identity with the admin role; repeatable (default: admin).") var admin: [String] = []
    @Option(help: "An identity with the storage-target role; repeatable.") var target: [String] = []
    @Option(help: "Cluster mode: an identity with the node role (nodes present it to copy a peer's snapshot); repeatable.")
    var nodeIdentity: [String] = []

    /// The keys of these options that were given (by flag, environment or file).
    func given(_ lookup: Lookup) -> [String] {
        let single: [(String?, String)] = [
            (self.blockSize.map { "\($0)" }, "block-size"), (self.blockCount.map { "\($0)" }, "block-count"), (self.minTtl, "min-ttl"),
            (self.defaultTtl, "default-ttl"), (self.maxTtl, "max-ttl"), (self.maxShortTermPin, "max-short-term-pin"),
            (self.recallTimeout, "recall-timeout"), (self.releaseDelay, "release-delay"), (self.maxWait, "max-wait"),
            (self.eventHistory.map { "\($0)" }, "event-history"),
        ]
        return single.filter { lookup.value($0.0, $0.1) != nil }.map(\.1) + [(self.admin, "admin"), (self.target, "target"), (self.nodeIdentity, "node-identity")].filter {
            lookup.list($0.0, $0.1) != nil
        }.map(\.1)
    }

    func coordinator(_ lookup: Lookup) throws -> CoordinatorConfiguration {
        var coordinator = CoordinatorConfiguration()
        let blockSize = try lookup.number(self.blockSize, "block-size") ?? VolumeGeometry.default.blockSize
        let blockCount = try lookup.number(self.blockCount, "block-count") ?? VolumeGeometry.default.blockCount
        do {
            coordinator.geometry = try VolumeGeometry(blockSize: blockSize, blockCount: blockCount)
        } catch {
            throw ValidationError("volume geometry: \(error)")
        }
        if let ttl = try lookup.duration(self.minTtl, "min-ttl") { coordinator.minimumTTL = ttl }
        if let ttl = try lookup.duration(self.defaultTtl, "default-ttl") { coordinator.defaultTTL = ttl }
        if let ttl = try lookup.duration(self.maxTtl, "max-ttl") { coordinator.maximumTTL = ttl }
        guard coordinator.minimumTTL > .zero, coordinator.minimumTTL <= coordinator.defaultTTL, coordinator.defaultTTL <= coordinator.maximumTTL else {
            throw ValidationError("TTLs must satisfy 0 < min-ttl <= default-ttl <= max-ttl")
        }
        if let limit = try lookup.duration(self.maxShortTermPin, "max-short-term-pin") { coordinator.maxShortTermPin = limit }
        if let timeout = try lookup.duration(self.recallTimeout, "recall-timeout") { coordinator.recallTimeout = timeout }
        if let delay = try lookup.duration(self.releaseDelay, "release-delay") { coordinator.releaseDelay = delay }
        if let wait = try lookup.duration(self.maxWait, "max-wait") { coordinator.maxWait = wait }
        if let history: Int = try lookup.number(self.eventHistory, "event-history") {
            guard (0...CoordinatorConfiguration.maxEventHistory).contains(history) else {
                throw ValidationError("event-history must be between 0 and \(CoordinatorConfiguration.maxEventHistory), not \(history)")
            }
            coordinator.eventHistory = history
        }
        return coordinator
    }

    func admins(_ lookup: Lookup) -> Set<String> { lookup.list(self.admin, "admin").map(Set.init) ?? ["admin"] }
    func targets(_ lookup: Lookup) -> Set<String> { lookup.list(self.target, "target").map(Set.init) ?? [] }
    func nodeIdentities(_ lookup: Lookup) -> Set<String> { lookup.list(self.nodeIdentity, "node-identity").map(Set.init) ?? [] }
}

/// How a node reaches etcd, and which cluster it is.
struct EtcdOptions: ParsableArguments {
    @Option(help: "Cluster mode: etcd client URLs, comma-separated (http://127.0.0.1:2379,...). Without it the node serves alone.")
    var etcdEndpoints: String?
    @Option(help: "CA that signs the etcd members' certificates (PEM); with --etcd-cert and --etcd-key: mutual TLS to etcd.")
    var etcdCa: String?
    @Option(help: "This node's client certificate for etcd (PEM).") var etcdCert: String?
    @Option(help: "This node's client key for etcd (PEM).") var etcdKey: String?
    @Option(help: "Cluster mode: the cluster's name; its keys live under /leasehold/NAME/ (default leasehold).") var cluster: String?

    func endpoints(_ lookup: Lookup) -> [String]? {
        lookup.value(self.etcdEndpoints, "etcd-endpoints").map {
            $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
    }

    func etcd(_ endpoints: [String], _ lookup: Lookup) throws -> EtcdConfiguration {
        guard !endpoints.isEmpty else { throw ValidationError("etcd-endpoints: give at least one URL") }
        for endpoint in endpoints where !(endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://")) {
            throw ValidationError("etcd-endpoints: '\(endpoint)' is not an http:// or https:// URL")
        }
        var etcd = EtcdConfiguration(endpoints: endpoints)
        switch (lookup.value(self.etcdCa, "etcd-ca"), lookup.value(self.etcdCert, "etcd-cert"), lookup.value(self.etcdKey, "etcd-key")) {
        case (nil, nil, nil):
            break
        case (let ca?, let cert?, let key?):
            etcd.tls = try EtcdConfiguration.mutualTLS(ca: ca, certificate: cert, key: key)
        default:
            throw ValidationError("etcd-ca, etcd-cert and etcd-key go together: give all three, or none for plain HTTP")
        }
        return etcd
    }

    func clusterName(_ lookup: Lookup) throws -> String {
        let cluster = lookup.value(self.cluster, "cluster") ?? "leasehold"
        guard ClusterKeys.isValidName(cluster) else { throw ValidationError("cluster: '\(cluster)' is not a name of letters, digits, '-', '_' and '.'") }
        return cluster
    }
}
