import Foundation

/// Durations in flags, environment and config files: a number with a unit, `ms`, `s`,
/// `m` or `h` (`250ms`, `10s`, `5m`); a bare number is seconds.
enum DurationText {
    static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3_600)]
        for (suffix, seconds) in units where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count)
            // "ms" ends in "s" too: only accept a plain number before the unit.
            guard let value = Double(number), value >= 0 else { continue }
            return .milliseconds(Int64((value * seconds * 1_000).rounded()))
        }
        if let value = Double(trimmed), value >= 0 { return .milliseconds(Int64((value * 1_000).rounded())) }
        return nil
    }
}


