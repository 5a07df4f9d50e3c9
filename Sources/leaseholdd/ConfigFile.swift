import Foundation

/// The daemon's config file: one `key = value` per line, `#` starts a comment, keys as
/// the long flags without dashes (`data-dir`, `listen`, `release-delay`, ...). A key
/// that takes several values (`admin`, `target`) is given as a comma-separated list.
/// Documented in docs/configuration.md.
struct ConfigFile {
    var values: [String: String] = [:]

    static let keys: Set<String> = [
        "data-dir", "listen", "block-size", "block-count", "min-ttl", "default-ttl", "max-ttl", "max-short-term-pin",
        "recall-timeout", "release-delay", "max-wait", "event-history", "admin", "target", "cert", "key", "client-ca", "max-frame-bytes",
        "max-in-flight", "log-level", "event-loop-threads", "metrics", "hello-timeout", "etcd-endpoints", "etcd-ca", "etcd-cert",
        "etcd-key", "cluster", "node", "advertise", "leader-ttl", "node-identity", "peer-cert", "peer-key",
    ]

    init() {}

    init(path: String) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(rawLine)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let equals = trimmed.firstIndex(of: "=") else {
                throw ConfigError("\(path):\(number + 1): expected 'key = value', got '\(trimmed)'")
            }
            let key = trimmed[..<equals].trimmingCharacters(in: .whitespaces)
            var value = trimmed[trimmed.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            guard Self.keys.contains(key) else {
                throw ConfigError("\(path):\(number + 1): unknown key '\(key)' (known: \(Self.keys.sorted().joined(separator: ", ")))")
            }
            self.values[key] = value
        }
    }
}

struct ConfigError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
