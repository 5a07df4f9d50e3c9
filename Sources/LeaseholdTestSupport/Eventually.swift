import Testing

/// Waits until `condition` holds, polling every `interval`, and fails the test (recording
/// what it waited for at the caller's line) after `timeout`. Network and multi-process
/// tests wait on conditions with deadlines this way, never on fixed sleeps.
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
    Issue.record("timed out waiting for: \(what)", sourceLocation: sourceLocation)
    throw CancellationError()
}
