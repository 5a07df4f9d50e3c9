import LeaseholdCore

// MARK: - Answering recalls on their own
//
// A break (truncate, punch hole, delete, an allocation that needs the blocks) waits for
// every layout of another session it recalls, under every policy, `busy` included, and
// for the long-term pins it recalls under `wait`; a pin recall unanswered by its deadline
// evicts its session under every policy. An application that answers recalls only
// between its own calls therefore stalls as soon as a call it is waiting for (its own
// truncate through another session, say) needs one of its recalls answered: nothing
// answers until the recall deadline, then the layout or pin is revoked and the session
// holding it evicted. The pattern that works is a responder that answers each recall as
// it arrives, on a task of its own and a slot of its own (docs/protocol.md, "Recalls").
// `answerRecalls` is that responder.

extension LeaseholdSession {
    /// From now on, answers every layout and pin recall of this session by itself, on a
    /// task of its own and the session's slot kept for recall answers, whatever the
    /// application's own calls are waiting for: for a layout recall it awaits
    /// `layouts(notice)` (stop I/O through `notice.range` and commit what was written),
    /// then returns the range; for a pin recall it awaits `pins(notice)` (stop DMA through
    /// the pin), then unpins.
    ///
    /// Call it right after opening the session, before the first `layoutGet` or long-term
    /// pin: recalls that arrive before it go to ``events``. A recall whose closure throws,
    /// or whose answer fails, is handed to ``events`` instead (`.layoutRecall`/`.pinRecall`,
    /// with its deadline still running), for the application to prolong or answer itself.
    public func answerRecalls(
        layouts: @escaping @Sendable (LayoutRecallNotice) async throws -> Void,
        pins: @escaping @Sendable (PinRecallNotice) async throws -> Void
    ) {
        self.state.withLock { $0.responder = RecallResponder(layouts: layouts, pins: pins) }
    }
}

/// The closures a session answers its recalls with (``LeaseholdSession/answerRecalls(layouts:pins:)``).
struct RecallResponder: Sendable {
    let layouts: @Sendable (LayoutRecallNotice) async throws -> Void
    let pins: @Sendable (PinRecallNotice) async throws -> Void

    func answer(_ recall: LayoutRecall, events: AsyncStream<SessionEvent>.Continuation) {
        Task {
            do {
                try await self.layouts(recall.notice)
                try await recall.returnLayout()
            } catch {
                events.yield(.layoutRecall(recall))
            }
        }
    }

    func answer(_ recall: PinRecall, events: AsyncStream<SessionEvent>.Continuation) {
        Task {
            do {
                try await self.pins(recall.notice)
                try await recall.unpin()
            } catch {
                events.yield(.pinRecall(recall))
            }
        }
    }
}
