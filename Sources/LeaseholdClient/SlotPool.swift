import LeaseholdCore
import Synchronization

/// The session's request slots: each mutation takes a free slot and the next sequence in
/// it, keeps them across retransmissions, and gives the slot back when its reply is
/// final. That is what makes a retry after a lost reply exactly-once (NFSv4.1 slots).
///
/// With two slots or more, the last one is kept for the calls that never wait on the
/// server, which are the answers to recalls (unpin, layoutReturn, prolongRecall): an
/// application whose every other slot waits on a break can still answer the recalls that
/// break waits for. Such a call takes a free ordinary slot when there is one, and a
/// freed slot goes to such calls first.
final class SlotPool: Sendable {
    private struct State {
        var free: [UInt32]
        var sequences: [UInt64]
        var waiters: [CheckedContinuation<UInt32, Never>] = []
        var reservedFree: Bool
        var answerWaiters: [CheckedContinuation<UInt32, Never>] = []
    }

    private let state: Mutex<State>
    /// The slot kept for recall answers, if the session has more than one.
    let reserved: UInt32?

    /// - Parameters:
    ///   - count: slots the server granted.
    ///   - base: the last sequence already used in every slot (0 for a new session).
    init(count: Int, base: UInt64 = 0) {
        let reserved = count >= 2 ? UInt32(count - 1) : nil
        self.reserved = reserved
        let general = reserved ?? UInt32(count)
        self.state = Mutex(
            State(free: (0..<general).reversed(), sequences: Array(repeating: base, count: count), reservedFree: reserved != nil)
        )
    }

    /// A free slot and the next sequence in it; waits while every slot is busy. An
    /// answer to a recall may also take the reserved slot; nothing else does.
    func acquire(answering: Bool = false) async -> SlotTag {
        let slot: UInt32 = await withCheckedContinuation { continuation in
            let free = self.state.withLock { state -> UInt32? in
                if let slot = state.free.popLast() { return slot }
                if answering, state.reservedFree, let reserved = self.reserved {
                    state.reservedFree = false
                    return reserved
                }
                if answering && self.reserved != nil {
                    state.answerWaiters.append(continuation)
                } else {
                    state.waiters.append(continuation)
                }
                return nil
            }
            if let free { continuation.resume(returning: free) }
        }
        return self.state.withLock { state in
            state.sequences[Int(slot)] += 1
            return SlotTag(slot: slot, sequence: state.sequences[Int(slot)])
        }
    }

    /// Whether an answer waits for a slot (for tests).
    var hasAnswerWaiter: Bool { self.state.withLock { !$0.answerWaiters.isEmpty } }

    /// Gives a slot back.
    func release(_ tag: SlotTag) {
        let waiter = self.state.withLock { state -> CheckedContinuation<UInt32, Never>? in
            if tag.slot == self.reserved {
                if !state.answerWaiters.isEmpty { return state.answerWaiters.removeFirst() }
                state.reservedFree = true
                return nil
            }
            // Answers first: a break may be waiting for them.
            if !state.answerWaiters.isEmpty { return state.answerWaiters.removeFirst() }
            if !state.waiters.isEmpty { return state.waiters.removeFirst() }
            state.free.append(tag.slot)
            return nil
        }
        waiter?.resume(returning: tag.slot)
    }
}
