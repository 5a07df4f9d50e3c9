import Synchronization

/// The frames waiting to be written to one connection, on either side: encoded payloads
/// on the client, message values the pipeline encodes on the server.
///
/// Lifecycle: any thread `send`s frames (on the server: the journal's writer thread after
/// a commit, the Coordinator's owner for immediate replies and recalls, the connection's
/// own task for handshake and protocol errors; on the client: every task making a request); the
/// connection's writer task takes everything queued in one `next()` and writes it as one
/// batch, so frames queued together leave in one TLS write and one system call (replies
/// released by one commit; requests of workers woken by one read). `finish()` lets the
/// writer drain what is queued and stop. A connection that lets more than `limit` frames
/// pile up is a slow consumer: further sends are dropped and `onOverflow` runs once (the
/// server closes it; its sessions can resume elsewhere and get their pushes replayed).
///
/// The hot methods are `@inlinable`, so that each user specializes them for its frame
/// type: unspecialized, every send looked up the generic metadata of `Outbox<Frame>` at
/// run time (about 5 % of the server's CPU in a keepalive flood).
public final class Outbox<Frame: Sendable>: Sendable {
    @usableFromInline
    struct State {
        @usableFromInline var frames: [Frame] = []
        @usableFromInline var waiter: CheckedContinuation<[Frame]?, Never>?
        @usableFromInline var finished = false
        @usableFromInline var overflowed = false

        @usableFromInline init() {}
    }

    @usableFromInline let state = Mutex(State())
    public let limit: Int

    public init(limit: Int) {
        self.limit = limit
    }

    /// Queues a frame payload.
    /// - Returns: `false` when the outbox is finished or overflowed (the frame is dropped).
    @inlinable
    @discardableResult
    public func send(_ frame: Frame) -> Bool {
        let (accepted, waiter, overflow) = self.state.withLock { state -> (Bool, CheckedContinuation<[Frame]?, Never>?, Bool) in
            guard !state.finished && !state.overflowed else { return (false, nil, false) }
            if let waiter = state.waiter {
                state.waiter = nil
                return (true, waiter, false)
            }
            guard state.frames.count < self.limit else {
                state.overflowed = true
                state.frames.removeAll()
                return (false, nil, true)
            }
            state.frames.append(frame)
            return (true, nil, false)
        }
        if let waiter { waiter.resume(returning: [frame]) }
        if overflow { self.overflowed() }
        return accepted
    }

    /// Called once when the limit is passed.
    @usableFromInline let overflowHandler = Mutex<(@Sendable () -> Void)?>(nil)

    public func onOverflow(_ handler: @escaping @Sendable () -> Void) {
        self.overflowHandler.withLock { $0 = handler }
    }

    @usableFromInline
    func overflowed() {
        let handler = self.overflowHandler.withLock { $0 }
        handler?()
    }

    /// No more frames will be accepted; the writer drains what is queued.
    @inlinable
    public func finish() {
        let waiter = self.state.withLock { state -> CheckedContinuation<[Frame]?, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.frames.isEmpty ? state.waiter : nil
        }
        waiter?.resume(returning: nil)
    }

    /// Everything queued, waiting when nothing is; `nil` once finished and drained (or
    /// overflowed). One consumer only.
    @inlinable
    public func next() async -> [Frame]? {
        await withCheckedContinuation { (continuation: CheckedContinuation<[Frame]?, Never>) in
            let ready = self.state.withLock { state -> [Frame]?? in
                if state.overflowed { return .some(nil) }
                if !state.frames.isEmpty {
                    var frames: [Frame] = []
                    swap(&frames, &state.frames)
                    return .some(frames)
                }
                if state.finished { return .some(nil) }
                state.waiter = continuation
                return .none
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
