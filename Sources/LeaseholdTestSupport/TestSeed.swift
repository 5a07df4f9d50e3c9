#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Seeds for randomized tests: a fixed default per test, overridable from the
/// environment so that a failure printed with its seed can be replayed.
///
/// `LEASEHOLD_SEED=1234 swift test --filter Simulation` replays seed 1234 in every
/// randomized test; `LEASEHOLD_STEPS` scales the number of steps.
public enum TestSeed {
    /// The seeds a randomized test should run: the override if set, else `defaults`.
    public static func seeds(default defaults: [UInt64]) -> [UInt64] {
        if let value = environment("LEASEHOLD_SEED"), let seed = UInt64(value) {
            return [seed]
        }
        return defaults
    }

    /// A step count, overridable with `LEASEHOLD_STEPS`.
    public static func steps(default count: Int) -> Int {
        if let value = environment("LEASEHOLD_STEPS"), let steps = Int(value), steps > 0 {
            return steps
        }
        return count
    }

    /// The line a randomized test prints, so that its run can be replayed.
    public static func replayHint(seed: UInt64, test: String) -> String {
        "\(test): seed \(seed); replay with LEASEHOLD_SEED=\(seed) swift test --filter \(test)"
    }

    static func environment(_ name: String) -> String? {
        guard let raw = getenv(name) else { return nil }
        return String(cString: raw)
    }
}
