import Foundation
import LeaseholdCore
import LeaseholdJournal
import LeaseholdMessages
import LeaseholdWire

// MARK: - Online snapshots
//
// `CreateSnapshot` asks the journal sink for a copy of its durable state in
// `<data-dir>/snapshots/` (the SQLite file: its backup API, a consistent image while
// writes go on); `ReadSnapshot` hands it out in chunks of at most 1 MiB and removes it
// after the last one. A snapshot file opens as a sink of the same kind (the SQLite one as
// a normal data directory's database).

extension LeaseholdServer {
    var snapshotDirectory: String { (self.configuration.dataDirectory as NSString).appendingPathComponent("snapshots") }

    func createSnapshot(id: UInt64, _ connection: Connection) async {
        guard connection.caller.isAdmin else {
            connection.reply(id, .failure(.permissionDenied("createSnapshot needs the admin role; '\(connection.caller.identity)' does not have it")))
            return
        }
        guard let serving = self.serving else {
            connection.reply(id, .failure(self.notLeader))
            return
        }
        let serial = self.snapshotCounter.add(1, ordering: .relaxed).newValue
        let name = "snapshot-\(serving.owner.epoch)-\(serial)-\(UInt32.random(in: .min ... .max)).db"
        let directory = self.snapshotDirectory
        let path = (directory as NSString).appendingPathComponent(name)
        let result: Result<(UInt64, LogPosition), any Error>
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let position = try await serving.sink.snapshot(to: path)
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber
            result = .success((size?.uint64Value ?? 0, position))
        } catch {
            result = .failure(error)
        }
        switch result {
        case .success(let (size, position)):
            connection.logger.notice(
                "snapshot created",
                metadata: ["snapshot.name": "\(name)", "snapshot.bytes": "\(size)", "snapshot.position": "\(position)"]
            )
            var response = WireResponse()
            response.snapshotCreated.name = name
            response.snapshotCreated.size = size
            // Through the gate: a leader whose lease ran out during the copy answers nothing.
            serving.owner.deliver(.response(id: id, response), to: connection)
        case .failure(let error):
            connection.reply(id, .failure(LeaseholdError(code: .unavailable, message: "the snapshot failed: \(error)")))
        }
    }

    func readSnapshot(id: UInt64, _ connection: Connection, name: String, offset: UInt64, length: UInt32) {
        guard let serving = self.serving else {
            connection.reply(id, .failure(self.notLeader))
            return
        }
        guard connection.caller.isAdmin else {
            connection.reply(id, .failure(.permissionDenied("readSnapshot needs the admin role; '\(connection.caller.identity)' does not have it")))
            return
        }
        guard name.hasPrefix("snapshot-"), name.hasSuffix(".db"), !name.contains("/"), !name.contains("..") else {
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
            serving.owner.deliver(.response(id: id, response), to: connection)
        } catch {
            connection.reply(id, .failure(.invalidArgument("cannot read snapshot '\(name)' at offset \(offset): \(error)")))
        }
    }
}
