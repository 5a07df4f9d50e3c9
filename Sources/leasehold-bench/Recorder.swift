import Histogram
import LeaseholdClient
import Synchronization

/// Latencies of one worker: a histogram of the whole run and one per second, recorded
/// without locks and merged at the end.
struct Recorder: Sendable {
    var total = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    var perSecond: [Int: Histogram<UInt64>] = [:]
    let start: ContinuousClock.Instant
    let warmUpEnds: ContinuousClock.Instant

    init(start: ContinuousClock.Instant, warmUp: Duration) {
        self.start = start
        self.warmUpEnds = start + warmUp
    }

    /// Records one operation that began at `began` and ended now; warm-up is dropped.
    mutating func record(since began: ContinuousClock.Instant) {
        let now = ContinuousClock.now
        guard began >= self.warmUpEnds else { return }
        let nanoseconds = UInt64((now - began).nanosecondsValue)
        _ = self.total.record(nanoseconds)
        let second = Int((now - self.warmUpEnds).nanosecondsValue / 1_000_000_000)
        _ = self.perSecond[second, default: Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .two)].record(nanoseconds)
    }

    mutating func merge(_ other: Recorder) {
        self.total.add(other.total)
        for (second, histogram) in other.perSecond {
            if self.perSecond[second] == nil {
                self.perSecond[second] = histogram
            } else {
                self.perSecond[second]!.add(histogram)
            }
        }
    }
}

extension Duration {
    var nanosecondsValue: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// Operations completed so far, for the live progress line.
final class Progress: Sendable {
    let operations = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    /// Errors by name (a LeaseholdError's code, or the error's type).
    let errorsByKind = Mutex<[String: Int]>([:])

    func failed(_ error: any Error) {
        self.errors.add(1, ordering: .relaxed)
        let kind = (error as? LeaseholdError)?.code.name ?? "\(type(of: error))"
        self.errorsByKind.withLock { $0[kind, default: 0] += 1 }
    }

    /// "name count, ..." by count, for the report.
    var errorSummary: String {
        self.errorsByKind.withLock { $0 }.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }
}
