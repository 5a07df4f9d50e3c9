import Crypto
import Foundation
import LeaseholdCore
import LeaseholdMessages
import LeaseholdWire

// MARK: - Admin (needs the admin role)

extension LeaseholdClient {
    /// Volume figures and uptime.
    public func status() async throws -> ServerStatus {
        let response = try await self.raw(.core(.status), retry: true)
        guard case .status(let volume) = try Reply(wire: response).response else { throw LeaseholdSession.unexpected("status") }
        return ServerStatus(
            volume: volume, uptime: .nanoseconds(Int64(clamping: response.volumeStatus.uptimeNanos)),
            reflects: response.hasReflects ? ServerStatus.LogPosition(term: response.reflects.term, index: response.reflects.index) : nil
        )
    }

    /// Busy extents with what holds them and what they wait for.
    public func busyExtents(_ page: Page = Page()) async throws -> [BusyExtentInfo] {
        guard case .busyExtents(let extents) = try await self.call(.core(.listBusyExtents(page)), retry: true) else { throw LeaseholdSession.unexpected("listBusyExtents") }
        return extents
    }

    /// Free extents in block order, those starting at or after `page.after` (a block
    /// number: the next page starts at the last extent's end).
    public func freeExtents(_ page: Page = Page()) async throws -> [BlockRange] {
        guard case .freeExtents(let extents) = try await self.call(.core(.listFreeExtents(page)), retry: true) else { throw LeaseholdSession.unexpected("listFreeExtents") }
        return extents
    }

    /// Live pins, by id, a page at a time.
    public func pins(_ page: Page = Page()) async throws -> [PinInfo] {
        guard case .pins(let pins) = try await self.call(.core(.listPins(page)), retry: true) else { throw LeaseholdSession.unexpected("listPins") }
        return pins
    }

    /// Layouts with their granted ranges and recall state, by id.
    public func layouts(_ page: Page = Page()) async throws -> [LayoutInfo] {
        guard case .layouts(let layouts) = try await self.call(.core(.listLayouts(page)), retry: true) else { throw LeaseholdSession.unexpected("listLayouts") }
        return layouts
    }

    /// Live sessions, by id, with whether a connection has each attached.
    public func sessions(_ page: Page = Page()) async throws -> [SessionListing] {
        let response = try await self.raw(.core(.listSessions(page)), retry: true)
        guard case .sessions(let sessions) = try Reply(wire: response).response else { throw LeaseholdSession.unexpected("listSessions") }
        return zip(sessions, response.sessionList.sessions).map { SessionListing(info: $0, connected: $1.connected) }
    }

    /// Inodes (files and quarantine inodes), by id.
    public func inodes(_ page: Page = Page()) async throws -> [InodeInfo] {
        guard case .inodes(let inodes) = try await self.call(.core(.listInodes(page)), retry: true) else { throw LeaseholdSession.unexpected("listInodes") }
        return inodes
    }

    /// One inode's map, layouts and pins.
    public func inode(_ inode: InodeID) async throws -> InodeDetail {
        guard case .inode(let detail) = try await self.call(.core(.showInode(inode)), retry: true) else { throw LeaseholdSession.unexpected("showInode") }
        return detail
    }

    /// Registered storage targets with their acknowledged fence revision and lag.
    public func targets() async throws -> [TargetInfo] {
        guard case .targets(let targets) = try await self.call(.core(.listTargets), retry: true) else { throw LeaseholdSession.unexpected("listTargets") }
        return targets
    }

    /// Runs the invariant checker on the server's state; empty means clean.
    public func checkInvariants() async throws -> [InvariantViolation] {
        guard case .invariants(let violations) = try await self.call(.core(.checkInvariants), retry: true) else {
            throw LeaseholdSession.unexpected("checkInvariants")
        }
        return violations
    }

    /// Events after `revision` from the server's durable history (0: from the oldest kept).
    /// Throws `compacted` (with `details.oldestRevision`) when events after `revision`
    /// were dropped from it.
    public func events(after revision: EventRevision = 0, limit: Int = 1_000) async throws -> [Event] {
        guard case .events(let events, _) = try await self.call(.core(.readEvents(after: revision, limit: limit)), retry: true) else {
            throw LeaseholdSession.unexpected("readEvents")
        }
        return events
    }

    /// Evicts a session: drops its pins and layouts and appends a fence.
    public func evict(_ session: SessionID) async throws -> Fence {
        guard case .sessionEvicted(let fence) = try await self.call(.core(.evictSession(session)), retry: false) else { throw LeaseholdSession.unexpected("evictSession") }
        return fence
    }

    /// Forgets a storage target that will never acknowledge again.
    public func deregisterTarget(_ name: String) async throws {
        guard case .targetDeregistered = try await self.call(.core(.deregisterTarget(name: name)), retry: false) else {
            throw LeaseholdSession.unexpected("deregisterTarget")
        }
    }

    /// Frees busy blocks at once, whatever holds them (logged and evented).
    /// - Returns: blocks released.
    @discardableResult
    public func forceRelease(_ range: BlockRange) async throws -> UInt64 {
        guard case .forceReleased(let blocks) = try await self.call(.core(.forceRelease(range)), retry: false) else { throw LeaseholdSession.unexpected("forceRelease") }
        return blocks
    }

    /// Deletes a kept quarantine inode; its blocks follow the busy release rule.
    @discardableResult
    public func deleteQuarantineInode(_ inode: InodeID) async throws -> UInt64 {
        guard case .quarantineDeleted(_, let blocks) = try await self.call(.core(.deleteQuarantineInode(inode)), retry: false) else {
            throw LeaseholdSession.unexpected("deleteQuarantineInode")
        }
        return blocks
    }

    /// Sets the volume's pin setting.
    public func setPinSetting(_ setting: PinSetting) async throws {
        guard case .pinSettingChanged = try await self.call(.core(.setPinSetting(setting)), retry: true) else { throw LeaseholdSession.unexpected("setPinSetting") }
    }

    /// Saves an online snapshot of the server's database to `path` on this machine.
    /// - Returns: its size in bytes.
    @discardableResult
    public func snapshot(to path: String) async throws -> UInt64 {
        try await self.copySnapshot(to: path).bytes
    }

    /// A snapshot copied by ``copySnapshot(to:)``.
    public struct SnapshotCopy: Sendable, Hashable {
        public var bytes: UInt64
        /// In a cluster, the volume the snapshot holds.
        public var volume: UUID?
    }

    /// Saves an online snapshot of the server's state to `path` on this machine (a
    /// cluster's standby: an image of the committed log it applied), checked against the
    /// size and SHA-256 the server gave.
    /// - Throws: `unavailable` when the copy does not match them (the file is removed).
    public func copySnapshot(to path: String) async throws -> SnapshotCopy {
        let created = try await self.raw(.createSnapshot, retry: false).snapshotCreated
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw LeaseholdError.invalidArgument("cannot create \(path)")
        }
        let handle: FileHandle
        do {
            handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            throw error
        }
        var hash = SHA256()
        var offset: UInt64 = 0
        do {
            defer { try? handle.close() }
            while true {
                let chunk = try await self.raw(.readSnapshot(name: created.name, offset: offset, length: 1 << 20), retry: true).snapshotChunk
                try handle.write(contentsOf: chunk.data)
                hash.update(data: chunk.data)
                offset += UInt64(chunk.data.count)
                if chunk.last { break }
            }
            try handle.synchronize()
            guard offset == created.size, created.sha256.isEmpty || Data(hash.finalize()) == created.sha256 else {
                throw LeaseholdError(
                    code: .unavailable, message: "snapshot '\(created.name)' arrived as \(offset) bytes that do not match the \(created.size) bytes and SHA-256 the server gave"
                )
            }
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            throw error
        }
        let volume = created.volumeUuid.count == 16 ? created.volumeUuid.withUnsafeBytes { UUID(uuid: $0.loadUnaligned(as: uuid_t.self)) } : nil
        return SnapshotCopy(bytes: offset, volume: volume)
    }

    /// Every event after `revision`, then new ones as they happen, across reconnects.
    public func watchEvents(after revision: EventRevision = 0) -> AsyncThrowingStream<Event, any Error> {
        FeedSubscription.events(after: revision, connection: self.connection).start()
    }
}
