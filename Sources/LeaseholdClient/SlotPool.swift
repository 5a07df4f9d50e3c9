import LeaseholdCore
import Synchronization

/// The session's request slots: each mutation takes a free slot and the next sequence in
/// it, keeps them across retransmissions, and gives the slot back when its reply is
/// final. That is what makes a retry after a lost reply exactly-once (NFSv4.1 slots).
final class SlotPool: Sendable {
    private struct State {
        var free: [UInt32]
        var sequences: [UInt64]
        var waiters: [CheckedContinuation<UInt32, Never>] = []
    }

    private let state: Mutex<State>

    /// - Parameters:
    ///   - count: slots the server granted.
    ///   - base: the last sequence already used in every slot (0 for a new session).
    init(count: Int, base: UInt64 = 0) {
        self.state = Mutex(State(free: (0..<UInt32(count)).reversed(), sequences: Array(repeating: base, count: count)))
    }

    /// A free slot and the next sequence in it; waits while every slot is busy.
    func acquire() async -> SlotTag {
        let slot: UInt32 = await withCheckedContinuation { continuation in
            let free = self.state.withLock { state -> UInt32? in
                if let slot = state.free.popLast() { return slot }
                state.waiters.append(continuation)
                return nil
            }
            if let free { continuation.resume(returning: free) }
        }
        return self.state.withLock { state in
            state.sequences[Int(slot)] += 1
            return SlotTag(slot: slot, sequence: state.sequences[Int(slot)])
        }
    }

    /// Gives a slot back.
    func release(_ tag: SlotTag) {
        let waiter = self.state.withLock { state -> CheckedContinuation<UInt32, Never>? in
            if !state.waiters.isEmpty { return state.waiters.removeFirst() }
            state.free.append(tag.slot)
            return nil
        }
        waiter?.resume(returning: tag.slot)
    }
}
