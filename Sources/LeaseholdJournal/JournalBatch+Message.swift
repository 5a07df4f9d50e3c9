import LeaseholdCore
import LeaseholdMessages

// A batch as the `leasehold.journal.v1.Batch` message: what a replicated log carries and
// what the in-memory sink writes as a snapshot.

extension JournalBatch {
    /// The batch as a message, in the current format.
    public var message: Leasehold_Journal_V1_Batch {
        var message = Leasehold_Journal_V1_Batch()
        message.format = JournalFormat.current
        message.term = self.position.term
        message.index = self.position.index
        message.changeSets = self.changeSets.map(\.message)
        return message
    }

    /// The batch a message holds.
    /// - Throws: `invalidArgument` for a format newer than this version reads, or naming
    ///   the first row that cannot be read.
    public init(message: Leasehold_Journal_V1_Batch) throws(LeaseholdError) {
        guard message.format >= 1 && message.format <= JournalFormat.current else {
            throw .invalidArgument("journal batch format \(message.format) is not one this version reads (1...\(JournalFormat.current))")
        }
        var changeSets: [ChangeSet] = []
        changeSets.reserveCapacity(message.changeSets.count)
        for changes in message.changeSets { changeSets.append(try ChangeSet(message: changes)) }
        self.init(position: LogPosition(term: message.term, index: message.index), changeSets: changeSets)
    }
}
