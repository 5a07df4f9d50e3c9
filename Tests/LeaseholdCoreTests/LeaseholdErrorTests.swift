import LeaseholdCore
import Testing

@Suite("Error messages")
struct LeaseholdErrorTests {
    @Test("a message is kept whole up to maxMessageBytes, and past it cut at a character with its full length noted")
    func bounded() {
        let short = String(repeating: "a", count: LeaseholdError.maxMessageBytes)
        #expect(LeaseholdError.notFound(short).message == short)
        // Three megabytes of a client's name, of two-byte characters.
        let name = String(repeating: "é", count: 3 << 19)
        let error = LeaseholdError.notFound("target '\(name)' is not registered")
        #expect(error.message.utf8.count <= LeaseholdError.maxMessageBytes)
        #expect(error.message.hasPrefix("target 'éé"))
        #expect(error.message.hasSuffix("… (cut; \(("target '" + name + "' is not registered").utf8.count) bytes in all)"))
        #expect(error.code == .notFound)
    }
}
