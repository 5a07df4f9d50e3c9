extension Duration {
    /// Parses the durations of flags, environment variables and config files: a
    /// non-negative number with `ms`, `s`, `m` or `h` (`250ms`, `1.5s`, `5m`); a bare
    /// number is seconds; spaces around it are ignored.
    /// - Returns: `nil` for anything else.
    public init?(text: String) {
        let trimmed = String(text.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
        var number = Substring(trimmed)
        var seconds = 1.0
        // "ms" before "s" and "m": it ends in both.
        for (suffix, scale) in [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3_600.0)] where trimmed.hasSuffix(suffix) {
            number = trimmed.dropLast(suffix.count)
            seconds = scale
            break
        }
        guard let value = Double(number), value >= 0, value.isFinite else { return nil }
        self = .milliseconds(Int64((value * seconds * 1_000).rounded()))
    }
}
