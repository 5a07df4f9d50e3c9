// MARK: - Exactly-once requests
//
// Every mutation carries (slot, sequence). A new sequence runs and its reply is stored in
// the slot, in the same change set as the mutation. The same sequence again returns the
// stored reply and changes nothing (or, while the first is still waiting, joins it). An
// older sequence is `invalidArgument`. A wait cancelled with its connection leaves the
// slot open, so a retransmission of that sequence runs afresh.

extension Coordinator {
    mutating func dispatchMutation(_ command: Command, caller: Caller, session id: SessionID, tag: SlotTag?) -> Decision {
        guard let tag else {
            return .reply(.failure(.invalidArgument("\(command.name) is a mutation and needs a (slot, sequence) tag")))
        }
        let (slotCount, found) = self.sessions.withValue(forKey: id) { session in
            (session.slotCount, Int(tag.slot) < session.slotCount ? session.slot(Int(tag.slot)) : nil)
        }!
        guard let slot = found else {
            return .reply(.failure(.invalidArgument("slot \(tag.slot) does not exist; session \(id) has \(slotCount) slots")))
        }
        if tag.sequence == slot.sequence && tag.sequence > 0 {
            if let reply = slot.reply { return .reply(reply) }
            if slot.pending { return .pending }
        } else if tag.sequence < slot.sequence || tag.sequence == 0 {
            return .reply(.failure(.invalidArgument(
                "sequence \(tag.sequence) in slot \(tag.slot) is older than the slot's last sequence \(slot.sequence)"
            )))
        } else if slot.pending {
            return .reply(.failure(.invalidArgument(
                "slot \(tag.slot) is busy with sequence \(slot.sequence); use another slot or wait for its reply"
            )))
        }

        self.sessions.modifyValue(forKey: id) { session in
            let stored = session.slot(Int(tag.slot)).stored
            session.setSlot(Int(tag.slot), Slot(sequence: tag.sequence, pending: true, stored: stored))
        }
        let decision = self.execute(command, caller: caller, session: id, tag: tag)
        if case .reply(let reply) = decision {
            self.storeReply(reply, in: SlotKey(session: id, slot: tag.slot), sequence: tag.sequence)
        }
        return decision
    }

    /// Stores the reply of a finished request in its slot.
    mutating func storeReply(_ reply: Reply, in key: SlotKey, sequence: UInt64) {
        let stored = self.sessions.modifyValue(forKey: key.session) { session -> Bool in
            guard session.slot(Int(key.slot)).sequence == sequence else { return false }
            let record = SlotRecord(sequence: sequence, reply: reply)
            session.setSlot(Int(key.slot), Slot(sequence: sequence, pending: false, stored: record))
            return true
        }
        if stored == true { self.dirty.slots.insert(key) }
    }

    /// Finishes a waiting request: stores its reply and releases it after the commit.
    mutating func complete(_ key: SlotKey, tag: SlotTag, with reply: Reply) {
        self.timers.cancel(.wait(key))
        if self.step.inline.contains(key) {
            self.step.inlineReplies[key] = reply
            return
        }
        guard self.sessions[key.session] != nil else { return }
        self.storeReply(reply, in: key, sequence: tag.sequence)
        self.step.effects.completions.append(Completion(session: key.session, tag: tag, reply: reply))
    }

    /// Forgets a waiting request without a reply (its connection closed): the slot stays
    /// open for a retransmission.
    mutating func abandon(_ key: SlotKey, tag: SlotTag) {
        self.timers.cancel(.wait(key))
        self.sessions.modifyValue(forKey: key.session) { session in
            if session.slot(Int(key.slot)).sequence == tag.sequence {
                session.slots[Int(key.slot)].pending = false
            }
        }
    }

    /// Cancels every waiting request of a session.
    /// - Returns: how many were cancelled.
    mutating func cancelWaits(of session: SessionID) -> Int {
        var cancelled = 0
        for key in self.breaks.keys.filter({ $0.session == session }).sorted() {
            let tag = self.breaks[key]!.tag
            self.endBreak(key)
            self.abandon(key, tag: tag)
            cancelled += 1
        }
        for key in self.pinWaits.keys.filter({ $0.session == session }).sorted() {
            let tag = self.pinWaits[key]!.tag
            self.endPinWait(key)
            self.abandon(key, tag: tag)
            cancelled += 1
        }
        return cancelled
    }

    /// A wait reached its timeout.
    mutating func waitTimedOut(_ key: SlotKey) {
        if let broken = self.breaks[key] {
            self.endBreak(key)
            let error = LeaseholdError(
                code: .timedOut,
                message: "\(broken.describe) on inode \(broken.inode) timed out; the map, size and generation are unchanged",
                details: .init(revokedLayouts: broken.revokedLayouts, evictedSessions: broken.evictedSessions)
            )
            self.complete(key, tag: broken.tag, with: .failure(error))
        } else if let wait = self.pinWaits[key] {
            self.endPinWait(key)
            let error = LeaseholdError(code: .timedOut, message: "pin on inode \(wait.request.inode) timed out waiting for a break to end")
            self.complete(key, tag: wait.tag, with: .failure(error))
        }
    }
}
