import Foundation
import Histogram

/// What a run measured, as a table, JSON and CSV.
struct Report {
    var workload: String
    var connections: Int
    var sessions: Int
    var inFlight: Int
    var operations: UInt64 = 0
    var seconds: Double = 0
    var errors = 0
    var latency: Histogram<UInt64>?
    var perSecond: [Int: Histogram<UInt64>] = [:]
    var recall: Histogram<UInt64>?
    var fsync: Histogram<UInt64>?
    var echo: Histogram<UInt64>?
    var notes: [String] = []

    init(workload: String, connections: Int, sessions: Int, inFlight: Int) {
        self.workload = workload
        self.connections = connections
        self.sessions = sessions
        self.inFlight = inFlight
    }

    mutating func record(_ recorder: Recorder, elapsed: Duration, errors: Int) {
        self.latency = recorder.total
        self.perSecond = recorder.perSecond
        self.operations = recorder.total.totalCount
        self.seconds = Double(elapsed.nanosecondsValue) / 1e9
        self.errors = errors
    }

    var rate: Double { self.seconds > 0 ? Double(self.operations) / self.seconds : 0 }

    static let percentiles: [(String, Double)] = [("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9)]

    static func micros(_ nanoseconds: UInt64) -> String { String(format: "%.0f", Double(nanoseconds) / 1_000) }

    func row(_ name: String, _ histogram: Histogram<UInt64>?) -> String? {
        guard let histogram, histogram.totalCount > 0 else { return nil }
        let values = Self.percentiles.map { Self.micros(histogram.valueAtPercentile($0.1)) } + [Self.micros(histogram.max)]
        return ([name.padding(toLength: 22, withPad: " ", startingAt: 0)] + values.map { $0.padding(toLength: 9, withPad: " ", startingAt: 0) }).joined(separator: " ")
    }

    func print() {
        Swift.print("workload \(self.workload): \(self.connections) connections × \(self.sessions) sessions × \(self.inFlight) in flight")
        if self.latency != nil {
            Swift.print(String(format: "%llu operations in %.2f s: %.0f ops/s, %d errors", self.operations, self.seconds, self.rate, self.errors))
        }
        Swift.print("latency (µs)           p50       p90       p99       p99.9     max")
        for line in [self.row(self.workload, self.latency), self.row("recall pushed", self.recall), self.row("raw 4 KiB write+fsync", self.fsync), self.row("loopback TCP echo", self.echo)] {
            if let line { Swift.print(line) }
        }
        for note in self.notes { Swift.print("- " + note) }
    }

    func summary(_ histogram: Histogram<UInt64>?) -> Any {
        guard let histogram, histogram.totalCount > 0 else { return NSNull() }
        var values: [String: Any] = ["count": histogram.totalCount, "maxMicros": Double(histogram.max) / 1_000]
        for (name, percentile) in Self.percentiles { values[name + "Micros"] = Double(histogram.valueAtPercentile(percentile)) / 1_000 }
        return values
    }

    var json: String {
        let object: [String: Any] = [
            "workload": self.workload, "connections": self.connections, "sessionsPerConnection": self.sessions, "inFlightPerSession": self.inFlight,
            "operations": self.operations, "seconds": self.seconds, "operationsPerSecond": self.rate, "errors": self.errors,
            "latency": self.summary(self.latency), "recallLatency": self.summary(self.recall),
            "baselineFsync": self.summary(self.fsync), "baselineTcpEcho": self.summary(self.echo), "notes": self.notes,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// second, operations, p50, p99, max (µs) of each measured second.
    var csv: String {
        var text = "second,operations,p50_us,p99_us,max_us\n"
        for second in self.perSecond.keys.sorted() {
            let histogram = self.perSecond[second]!
            text += "\(second),\(histogram.totalCount),\(Self.micros(histogram.valueAtPercentile(50))),\(Self.micros(histogram.valueAtPercentile(99))),\(Self.micros(histogram.max))\n"
        }
        return text
    }
}
