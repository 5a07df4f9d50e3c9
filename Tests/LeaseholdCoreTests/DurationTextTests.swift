import LeaseholdCore
import Testing

@Suite("Duration text")
struct DurationTextTests {
    @Test("units, bare seconds and spaces parse; anything else is nil")
    func parse() {
        #expect(Duration(text: "250ms") == .milliseconds(250))
        #expect(Duration(text: "10s") == .seconds(10))
        #expect(Duration(text: "5m") == .seconds(300))
        #expect(Duration(text: "2h") == .seconds(7_200))
        #expect(Duration(text: "1.5") == .milliseconds(1_500))
        #expect(Duration(text: " 3s ") == .seconds(3))
        #expect(Duration(text: "0") == .zero)
        for bad in ["", "s", "ms", "abc", "-1s", "1x", "inf", "nan"] { #expect(Duration(text: bad) == nil, "\(bad)") }
    }
}
