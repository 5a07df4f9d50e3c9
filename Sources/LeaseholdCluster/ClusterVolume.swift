import Foundation
import LeaseholdCore
import LeaseholdEtcd
import LeaseholdJournal
import LeaseholdMessages

/// What a cluster knows of itself (SEMANTICS.md, "Identity of a cluster"): the volume's
/// UUID and geometry, and the settings every node must agree on, in the `volume` key.
///
/// Lifecycle: ``create(client:keys:importing:)`` writes it once (`leaseholdd cluster
/// init`), with an empty log or with an imported single-node state as the first
/// checkpoint; it never changes after. Every node reads it before serving
/// (``read(client:keys:)``), serves with its geometry and settings whatever its own flags
/// say, and refuses a data directory that names another UUID (``ClusterMark``).
public struct ClusterVolume: Sendable, Hashable {
    public var uuid: UUID
    public var geometry: VolumeGeometry
    public var settings: ClusterSettings

    public init(uuid: UUID = UUID(), geometry: VolumeGeometry, settings: ClusterSettings) {
        self.uuid = uuid
        self.geometry = geometry
        self.settings = settings
    }

    /// The volume of the cluster `keys` name; `nil` before `cluster init`.
    /// - Throws: an ``EtcdError``, or a ``ClusterVolumeError`` for a value this version
    ///   does not read.
    public static func read(client: EtcdClient, keys: ClusterKeys) async throws -> ClusterVolume? {
        guard let kv = try await client.range(keys.volume).kvs.first else { return nil }
        return try ClusterVolume(message: try Leasehold_Cluster_V1_Volume(serializedBytes: kv.value))
    }

    /// Writes the volume, once. With `importing`, that state becomes the log's first
    /// checkpoint (at its position, index 1 at least), so the first leader serves it.
    /// - Throws: ``ClusterVolumeError`` when the cluster already has a volume or a log
    ///   (nothing is written then), or an ``EtcdError``.
    public func create(client: EtcdClient, keys: ClusterKeys, importing: LoadedState? = nil) async throws {
        let absent = EtcdCompare.createRevision(keys.volume, equals: 0)
        let headAbsent = EtcdCompare.createRevision(keys.head, equals: 0)
        let checkpointAbsent = EtcdCompare.createRevision(keys.checkpoint, equals: 0)
        var operations: [EtcdOperation] = [.put(keys.volume, try self.message.serializedBytes())]
        // The parts this attempt wrote, under its own writer token: removed again when
        // another init won (a racing import's parts are never the ones read).
        var written: String?
        if let importing {
            guard importing.state.volume?.geometry == self.geometry else {
                throw ClusterVolumeError("the imported volume's geometry \(importing.state.volume.map { "\($0.geometry)" } ?? "(none)") is not \(self.geometry)")
            }
            var image = importing
            image.position = LogPosition(term: 0, index: max(1, importing.position.index))
            let checkpoint = try await LogCompactor.writeParts(
                of: image, client: client, keys: keys, guard: absent, partBytes: 512 << 10
            ) { ClusterVolumeError("cluster '\(keys.prefix)' has a volume already: nothing imported") }
            written = keys.checkpointParts(image.position.index, writer: checkpoint.writer)
            var head = Leasehold_Cluster_V1_LogHead()
            head.term = image.position.term
            head.index = image.position.index
            operations.append(.put(keys.checkpoint, try checkpoint.serializedBytes()))
            operations.append(.put(keys.head, try head.serializedBytes()))
        }
        let result = try await client.txn([absent, headAbsent, checkpointAbsent], success: operations, failure: [.range(keys.volume)])
        guard result.succeeded else {
            if let written { _ = try? await client.delete(written, end: etcdPrefixEnd(written)) }
            let existing = try? await Self.read(client: client, keys: keys)
            throw ClusterVolumeError(
                existing.map { "the cluster under \(keys.prefix) was initialized already (volume \($0.uuid))" }
                    ?? "the cluster under \(keys.prefix) has a log but no volume key: it is not this version's to initialize"
            )
        }
    }

    var message: Leasehold_Cluster_V1_Volume {
        var message = Leasehold_Cluster_V1_Volume()
        message.format = 1
        message.uuid = withUnsafeBytes(of: self.uuid.uuid) { Data($0) }
        message.blockSize = self.geometry.blockSize
        message.blockCount = self.geometry.blockCount
        message.settings = self.settings.message
        return message
    }

    init(message: Leasehold_Cluster_V1_Volume) throws {
        guard message.format == 1 else {
            throw ClusterVolumeError("the volume key has format \(message.format), which this version does not read (1)")
        }
        guard message.uuid.count == 16 else { throw ClusterVolumeError("the volume's UUID is \(message.uuid.count) bytes, not 16") }
        let bytes = Array(message.uuid)
        self.uuid = UUID(
            uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15])
        )
        do {
            self.geometry = try VolumeGeometry(blockSize: message.blockSize, blockCount: message.blockCount)
        } catch {
            throw ClusterVolumeError("the volume's geometry is invalid: \(error)")
        }
        self.settings = try ClusterSettings(message: message.settings)
    }
}

/// The settings every node of a cluster serves with: the Coordinator's TTL bounds and
/// timers, and who has the admin, target and node roles.
public struct ClusterSettings: Sendable, Hashable {
    public var minimumTTL: Duration
    public var defaultTTL: Duration
    public var maximumTTL: Duration
    public var maxShortTermPin: Duration
    public var recallTimeout: Duration
    public var releaseDelay: Duration
    public var maxWait: Duration
    public var eventHistory: Int
    public var admins: Set<String>
    public var targets: Set<String>
    /// Identities with the node role: they may copy a node's snapshot (peers joining).
    public var nodes: Set<String>

    public init(coordinator: CoordinatorConfiguration, admins: Set<String>, targets: Set<String>, nodes: Set<String> = []) {
        self.minimumTTL = coordinator.minimumTTL
        self.defaultTTL = coordinator.defaultTTL
        self.maximumTTL = coordinator.maximumTTL
        self.maxShortTermPin = coordinator.maxShortTermPin
        self.recallTimeout = coordinator.recallTimeout
        self.releaseDelay = coordinator.releaseDelay
        self.maxWait = coordinator.maxWait
        self.eventHistory = coordinator.eventHistory
        self.admins = admins
        self.targets = targets
        self.nodes = nodes
    }

    /// `coordinator` with these settings and `geometry`.
    public func applied(to coordinator: CoordinatorConfiguration, geometry: VolumeGeometry) -> CoordinatorConfiguration {
        var coordinator = coordinator
        coordinator.geometry = geometry
        coordinator.minimumTTL = self.minimumTTL
        coordinator.defaultTTL = self.defaultTTL
        coordinator.maximumTTL = self.maximumTTL
        coordinator.maxShortTermPin = self.maxShortTermPin
        coordinator.recallTimeout = self.recallTimeout
        coordinator.releaseDelay = self.releaseDelay
        coordinator.maxWait = self.maxWait
        coordinator.eventHistory = self.eventHistory
        return coordinator
    }

    var message: Leasehold_Cluster_V1_Settings {
        var message = Leasehold_Cluster_V1_Settings()
        message.minTtlNanos = self.minimumTTL.nanosecondsClamped
        message.defaultTtlNanos = self.defaultTTL.nanosecondsClamped
        message.maxTtlNanos = self.maximumTTL.nanosecondsClamped
        message.maxShortTermPinNanos = self.maxShortTermPin.nanosecondsClamped
        message.recallTimeoutNanos = self.recallTimeout.nanosecondsClamped
        message.releaseDelayNanos = self.releaseDelay.nanosecondsClamped
        message.maxWaitNanos = self.maxWait.nanosecondsClamped
        message.eventHistory = UInt64(Swift.max(0, self.eventHistory))
        message.admins = self.admins.sorted()
        message.targets = self.targets.sorted()
        message.nodes = self.nodes.sorted()
        return message
    }

    init(message: Leasehold_Cluster_V1_Settings) throws {
        func duration(_ nanos: UInt64) -> Duration { .nanoseconds(Int64(clamping: nanos)) }
        self.minimumTTL = duration(message.minTtlNanos)
        self.defaultTTL = duration(message.defaultTtlNanos)
        self.maximumTTL = duration(message.maxTtlNanos)
        self.maxShortTermPin = duration(message.maxShortTermPinNanos)
        self.recallTimeout = duration(message.recallTimeoutNanos)
        self.releaseDelay = duration(message.releaseDelayNanos)
        self.maxWait = duration(message.maxWaitNanos)
        // Unset: a volume initialized before the setting existed.
        self.eventHistory = message.hasEventHistory ? Int(clamping: message.eventHistory) : CoordinatorConfiguration().eventHistory
        guard (0...CoordinatorConfiguration.maxEventHistory).contains(self.eventHistory) else {
            throw ClusterVolumeError("the cluster's event history \(message.eventHistory) is not between 0 and \(CoordinatorConfiguration.maxEventHistory)")
        }
        self.admins = Set(message.admins)
        self.targets = Set(message.targets)
        self.nodes = Set(message.nodes)
        guard self.minimumTTL > .zero, self.minimumTTL <= self.defaultTTL, self.defaultTTL <= self.maximumTTL else {
            throw ClusterVolumeError("the cluster's TTLs do not satisfy 0 < min <= default <= max")
        }
    }
}

/// A cluster's volume cannot be created or read as asked.
public struct ClusterVolumeError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
