import Testing

/// Waits until `condition` holds, polling every `interval`, and fails the test (recording
/// what it waited for at the caller's line) when it still does not hold at `timeout`.
/// Network and multi-process tests wait on conditions with deadlines this way, never on
/// fixed sleeps. The condition is checked once more after the deadline: on a loaded
/// machine a poll can wake up long after it asked to, and what it waited for may well have
/// happened meanwhile.
public func eventually(
    _ what: String,
    timeout: Duration = .seconds(10),
    every interval: Duration = .milliseconds(5),
    sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: interval)
    }
    if try await condition() { return }
    Issue.record("timed out waiting for: \(what)", sourceLocation: sourceLocation)
    throw CancellationError()
}
