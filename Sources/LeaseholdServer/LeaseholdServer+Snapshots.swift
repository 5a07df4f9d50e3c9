import Crypto
import Foundation
import LeaseholdCore
import LeaseholdJournal
import LeaseholdMessages
import LeaseholdWire
import Logging

// MARK: - Online snapshots
//
// `CreateSnapshot` asks the journal sink for a copy of its durable state in
// `<data-dir>/snapshots/` (the SQLite file: its backup API, a consistent image while
// writes go on); `ReadSnapshot` hands it out in chunks of at most 1 MiB and removes it
// after the last one. A snapshot file opens as a sink of the same kind (the SQLite one as
// a normal data directory's database).
//
// A cluster's standby answers both too (docs/cluster.md, "Joining"): its snapshot is an
// image file (`ImageFile`) of the committed log it applied, at the position it names, so
// a node joining, or one behind the checkpoint, copies it from a peer instead of from
// etcd. Admins and the cluster's node identities may copy snapshots.

extension LeaseholdServer {
    var snapshotDirectory: String { (self.configuration.dataDirectory as NSString).appendingPathComponent("snapshots") }

    /// Removes what an earlier process left in `DATA/snapshots` (a snapshot nobody read to
    /// its end, a peer's copy cut short): no reader of those survives a restart.
    static func removeSnapshots(in dataDirectory: String, logger: Logger) {
        let directory = (dataDirectory as NSString).appendingPathComponent("snapshots")
        let removed = Self.removeFiles(in: directory, prefixes: ["snapshot-", "peer-"], before: nil)
        if removed > 0 { logger.info("removed snapshot files of an earlier run", metadata: ["snapshot.files": "\(removed)"]) }
    }

    /// Removes snapshot files older than `age` (a reader that gave up, a peer's copy that
    /// timed out): none is read that long after it was made.
    func removeSnapshots(olderThan age: TimeInterval = 900) {
        _ = Self.removeFiles(in: self.snapshotDirectory, prefixes: ["snapshot-"], before: Date().addingTimeInterval(-age))
    }

    /// Removes the files of `directory` whose names start with one of `prefixes` (and, given
    /// `cutoff`, were last modified before it). - Returns: how many.
    private static func removeFiles(in directory: String, prefixes: [String], before cutoff: Date?) -> Int {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return 0 }
        var removed = 0
        for name in names where prefixes.contains(where: name.hasPrefix) {
            let path = (directory as NSString).appendingPathComponent(name)
            if let cutoff {
                guard let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date, modified < cutoff else { continue }
            }
            if (try? FileManager.default.removeItem(atPath: path)) != nil { removed += 1 }
        }
        return removed
    }

    /// What `snapshotCreated` says of the file at `path`: its size, SHA-256 and volume.
    func created(_ name: String, at path: String) throws -> WireResponse {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw LeaseholdError.notFound("snapshot '\(name)' is gone") }
        defer { try? handle.close() }
        var hash = SHA256()
        var size: UInt64 = 0
        while let data = try handle.read(upToCount: 1 << 20), !data.isEmpty {
            hash.update(data: data)
            size += UInt64(data.count)
        }
        var response = WireResponse()
        response.snapshotCreated.name = name
        response.snapshotCreated.size = size
        response.snapshotCreated.sha256 = Data(hash.finalize())
        if let uuid = self.configuration.volumeUUID { response.snapshotCreated.volumeUuid = withUnsafeBytes(of: uuid.uuid) { Data($0) } }
        return response
    }

    /// Admins, and a cluster's node identities (a peer copying this node's snapshot).
    func maySnapshot(_ caller: Caller, _ request: String, id: UInt64, _ connection: Connection) -> Bool {
        guard caller.isAdmin || self.configuration.nodeIdentities.contains(caller.identity) else {
            connection.reply(id, .failure(.permissionDenied("\(request) needs the admin role (in a cluster, the node role will do); '\(caller.identity)' has neither")))
            return false
        }
        return true
    }

    func createSnapshot(id: UInt64, _ connection: Connection) async {
        guard self.maySnapshot(connection.caller, "createSnapshot", id: id, connection) else { return }
        guard let serving = self.serving else {
            connection.reply(id, .failure(self.notLeader))
            return
        }
        self.removeSnapshots()
        let serial = self.snapshotCounter.add(1, ordering: .relaxed).newValue
        let name = "snapshot-\(serving.owner.epoch)-\(serial)-\(UInt32.random(in: .min ... .max)).db"
        let directory = self.snapshotDirectory
        let path = (directory as NSString).appendingPathComponent(name)
        let result: Result<(WireResponse, LogPosition), any Error>
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let position = try await serving.sink.snapshot(to: path)
            result = .success((try self.created(name, at: path), position))
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            result = .failure(error)
        }
        switch result {
        case .success(let (response, position)):
            connection.logger.notice(
                "snapshot created",
                metadata: ["snapshot.name": "\(name)", "snapshot.bytes": "\(response.snapshotCreated.size)", "snapshot.position": "\(position)"]
            )
            // Through the gate: a leader whose lease ran out during the copy answers nothing.
            serving.owner.deliver(.response(id: id, response), to: connection)
        case .failure(let error):
            connection.reply(id, .failure(LeaseholdError(code: .unavailable, message: "the snapshot failed: \(error)")))
        }
    }

    /// A standby's snapshot: an image file of the committed log it applied.
    func createStandbySnapshot(id: UInt64, _ connection: Connection) async {
        guard self.maySnapshot(connection.caller, "createSnapshot", id: id, connection) else { return }
        guard let image = self.standbyReads.withLock({ $0 })?.source() else {
            connection.reply(id, .failure(self.notLeader))
            return
        }
        self.removeSnapshots()
        let name = "snapshot-standby-\(image.position.term)-\(image.position.index)-\(UInt32.random(in: .min ... .max)).image"
        let path = (self.snapshotDirectory as NSString).appendingPathComponent(name)
        do {
            try FileManager.default.createDirectory(atPath: self.snapshotDirectory, withIntermediateDirectories: true)
            try ImageFile.write(image.state, at: image.position, to: path)
            let response = try self.created(name, at: path)
            connection.logger.notice(
                "snapshot created",
                metadata: ["snapshot.name": "\(name)", "snapshot.bytes": "\(response.snapshotCreated.size)", "snapshot.position": "\(image.position)"]
            )
            connection.send(.response(id: id, response))
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            connection.reply(id, .failure(LeaseholdError(code: .unavailable, message: "the snapshot failed: \(error)")))
        }
    }

    func readSnapshot(id: UInt64, _ connection: Connection, name: String, offset: UInt64, length: UInt32) {
        guard self.maySnapshot(connection.caller, "readSnapshot", id: id, connection) else { return }
        guard name.hasPrefix("snapshot-"), name.hasSuffix(".db") || name.hasSuffix(".image"), !name.contains("/"), !name.contains("..") else {
            connection.reply(id, .failure(.invalidArgument("'\(name)' is not a snapshot name made by createSnapshot")))
            return
        }
        let path = (self.snapshotDirectory as NSString).appendingPathComponent(name)
        guard let handle = FileHandle(forReadingAtPath: path) else {
            connection.reply(id, .failure(.notFound("snapshot '\(name)' does not exist (it is removed after its last chunk is read)")))
            return
        }
        defer { try? handle.close() }
        let chunk = Int(Swift.min(UInt32(1 << 20), Swift.max(1, length), UInt32(clamping: self.configuration.maxFrameBytes - 4_096)))
        do {
            try handle.seek(toOffset: offset)
            let data = try handle.read(upToCount: chunk) ?? Data()
            let size = try handle.seekToEnd()
            let last = offset + UInt64(data.count) >= size
            var response = WireResponse()
            response.snapshotChunk.data = data
            response.snapshotChunk.last = last
            if last { try? FileManager.default.removeItem(atPath: path) }
            // A leader's answer passes its gate; a standby's is what it already applied.
            if let serving = self.serving {
                serving.owner.deliver(.response(id: id, response), to: connection)
            } else {
                connection.send(.response(id: id, response))
            }
        } catch {
            connection.reply(id, .failure(.invalidArgument("cannot read snapshot '\(name)' at offset \(offset): \(error)")))
        }
    }
}
