/// The failed checks of test work that runs off the test's own context: on a thread of
/// its own (``onOwnThread(_:)``) `#expect` records nothing, since a bare thread carries no
/// test context. The work collects its failures here and returns ``failures``; the test
/// expects them empty after the await.
public struct OffContextChecks: Sendable {
    public private(set) var failures: [String] = []
    /// At most this many failures are kept: a broken run reports its first ones.
    public let limit: Int

    public init(limit: Int = 20) {
        self.limit = limit
    }

    /// Records `what` (with the caller's line) when `condition` is false.
    public mutating func check(_ condition: Bool, _ what: @autoclosure () -> String = "", line: Int = #line) {
        if !condition, self.failures.count < self.limit { self.failures.append("line \(line) \(what())") }
    }
}
