/// A `host:port` address as flags, environment variables and config files give it
/// (`127.0.0.1:7420`, `[::1]:7420`, `leasehold.example:7420`).
public struct HostPort: Hashable, Sendable {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Splits at the last colon; brackets around an IPv6 host are dropped; the port is
    /// 0...65535.
    /// - Returns: `nil` for anything else.
    public init?(text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port) else {
            return nil
        }
        var host = text[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty else { return nil }
        self.init(host: String(host), port: port)
    }
}

extension HostPort: CustomStringConvertible {
    /// `host:port`, an IPv6 host in brackets: what ``init(text:)`` reads back.
    public var description: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }
}
