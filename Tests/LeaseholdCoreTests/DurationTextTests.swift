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

@Suite("host:port text")
struct HostPortTextTests {
    @Test("addresses of flags, environment and config files")
    func parses() {
        #expect(HostPort(text: "127.0.0.1:7420") == HostPort(host: "127.0.0.1", port: 7420))
        #expect(HostPort(text: "[::1]:0") == HostPort(host: "::1", port: 0))
        #expect(HostPort(text: "leasehold.example:65535") == HostPort(host: "leasehold.example", port: 65_535))
        for bad in ["127.0.0.1", "127.0.0.1:", ":7420", "host:65536", "host:-1", "host:x", ""] {
            #expect(HostPort(text: bad) == nil, "\(bad)")
        }
    }
}
