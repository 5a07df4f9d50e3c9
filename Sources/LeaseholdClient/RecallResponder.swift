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
    /// task of its own (and in the slot kept for recall answers when the others are
    /// busy), whatever the
    /// application's own calls are waiting for: for a layout recall it awaits
    /// `layouts(notice)` (stop I/O through `notice.range` and commit what was written),
    /// then returns the range; for a pin recall it awaits `pins(notice)` (stop DMA through
    /// the pin), then unpins.
    ///
    /// Call it right after opening the session, before the first `layoutGet` or long-term
    /// pin (or pass it to `openSession(recalls:)`/`resumeSession(recalls:)`): recalls that
    /// arrive before it go to ``events``. A recall whose closure throws, or whose answer
    /// fails while the layout or pin still exists, is handed to ``events`` instead
    /// (`.layoutRecall`/`.pinRecall`, with its deadline still running), for the application
    /// to prolong or answer itself; keep reading ``events`` for them.
    public func answerRecalls(
        layouts: @escaping @Sendable (LayoutRecallNotice) async throws -> Void,
        pins: @escaping @Sendable (PinRecallNotice) async throws -> Void
    ) {
        self.state.withLock { $0.responder = RecallResponder(layouts: layouts, pins: pins) }
    }
}

/// How a session answers its recalls by itself: `layouts` stops I/O through a recalled
/// layout range, `pins` stops DMA through a recalled pin; the session then returns or
/// unpins. Give it to `openSession(recalls:)` or `resumeSession(recalls:)` (answered from
/// the first push on, the replay of a takeover included), or to
/// ``LeaseholdSession/answerRecalls(layouts:pins:)``.
public struct RecallResponder: Sendable {
    let layouts: @Sendable (LayoutRecallNotice) async throws -> Void
    let pins: @Sendable (PinRecallNotice) async throws -> Void

    public init(
        layouts: @escaping @Sendable (LayoutRecallNotice) async throws -> Void,
        pins: @escaping @Sendable (PinRecallNotice) async throws -> Void
    ) {
        self.layouts = layouts
        self.pins = pins
    }
}

/// A recall the responder can answer, or hand to `events` as it is.
protocol AnswerableRecall: Sendable {
    /// Quiesces with the responder's closure, then answers.
    func answer(with responder: RecallResponder) async throws
    var event: SessionEvent { get }
}

extension LayoutRecall: AnswerableRecall {
    func answer(with responder: RecallResponder) async throws {
        try await responder.layouts(self.notice)
        try await self.returnLayout()
    }

    var event: SessionEvent { .layoutRecall(self) }
}

extension PinRecall: AnswerableRecall {
    func answer(with responder: RecallResponder) async throws {
        try await responder.pins(self.notice)
        try await self.unpin()
    }

    var event: SessionEvent { .pinRecall(self) }
}

extension LeaseholdSession {
    /// A recall push: to the responder, on a task of its own, if one is installed;
    /// otherwise (or when answering fails) to `events`.
    func route(_ recall: some AnswerableRecall) {
        guard let responder = self.state.withLock({ $0.responder }) else {
            self.eventSink.yield(recall.event)
            return
        }
        let events = self.eventSink
        Task { [weak self] in
            do {
                try await recall.answer(with: responder)
            } catch let error as LeaseholdError where error.code == .notFound {
                // The layout or pin is gone already (returned or unpinned by the
                // application, or revoked): nothing is left to answer.
            } catch {
                // Still outstanding: the application's to prolong or answer, unless the
                // session ended meanwhile (its events ended with it).
                guard let self, self.leaseState != .ended else { return }
                events.yield(recall.event)
            }
        }
    }
}
