import Foundation
import LeaseholdCore
import LeaseholdJournal
import LeaseholdStore
import Logging
import Synchronization

/// A node's own SQLite copy of the committed log (`DATA/replica.db`, the single node's
/// schema), written only from committed entries (SEMANTICS.md, "Standbys apply, never
/// decide").
///
/// Lifecycle: opened at start; its state is the node's first image, so a restarted node
/// reads from etcd only the entries after it (or the checkpoint, when those were
/// compacted away). While the node is a standby every committed batch it applies is
/// written in order, in its own transaction; when the node's image jumps (caught up from
/// a checkpoint) the copy is replaced by the image in one transaction. While the node
/// leads the copy stays where it was and catches up when the node stands by again. A
/// write that fails (a full disk) turns the copy off with a warning; the node goes on
/// from memory and etcd, which hold everything the copy would.
final class LocalCopy: Sendable {
    struct State {
        var store: Store?
        var position: LogPosition
    }

    let path: String
    let logger: Logger
    private let state: Mutex<State>

    /// Opens (creating) the copy in `directory`.
    init(directory: String, logger: Logger) throws {
        self.path = (directory as NSString).appendingPathComponent("replica.db")
        self.logger = logger
        // No fsync per commit: the copy only spares a restart reading etcd; a power loss
        // that takes its last commits back leaves it consistent at an older position, and
        // the node reads the rest from etcd.
        let store = try Store(path: self.path, durability: .consistent)
        self.state = Mutex(State(store: store, position: try store.position()))
    }

    /// What the copy holds; `nil` when it holds no volume.
    func load() async throws -> LoadedState? {
        guard let store = self.state.withLock({ $0.store }) else { return nil }
        return try await store.load()
    }

    /// Writes `batch` if it follows what the copy holds; the node's image is `image` after
    /// it (written whole instead when the copy is not right before the batch).
    func apply(_ batch: JournalBatch, image: @escaping @Sendable () -> LoadedState?) async {
        guard let (store, position) = self.state.withLock({ state in state.store.map { ($0, state.position) } }) else { return }
        guard batch.position.index > position.index else { return }
        do {
            if batch.position.index == position.index + 1 {
                _ = try await Store.offPool { try store.apply(batch.changeSets, position: batch.position) }
                self.state.withLock { $0.position = batch.position }
            } else if let image = image() {
                try await self.replace(with: image)
            }
        } catch {
            self.disable(error)
        }
    }

    /// Replaces the copy by `image` (the node caught up from a checkpoint), unless the copy
    /// holds that position already.
    func replace(with image: LoadedState) async throws {
        guard let store = self.state.withLock({ $0.store }), self.state.withLock({ $0.position }) != image.position else { return }
        // One transaction: the old rows out, the image in, at its position.
        _ = try await Store.offPool {
            try store.replaceAll(with: image.state.changeSet, position: image.position)
        }
        self.state.withLock { $0.position = image.position }
    }

    /// Catches the copy up to the node's image after a round's catch-up read.
    func catchUp(to image: LoadedState) async {
        do {
            try await self.replace(with: image)
        } catch {
            self.disable(error)
        }
    }

    private func disable(_ error: any Error) {
        let store = self.state.withLock { state -> Store? in
            defer { state.store = nil }
            return state.store
        }
        guard let store else { return }
        try? store.close()
        self.logger.warning(
            "the local copy of the log failed and is off until the next start; the node goes on from memory and etcd",
            metadata: ["copy.path": "\(self.path)", "error": "\(error)"]
        )
    }

    func close() {
        let store = self.state.withLock { state -> Store? in
            defer { state.store = nil }
            return state.store
        }
        try? store?.close()
    }
}
