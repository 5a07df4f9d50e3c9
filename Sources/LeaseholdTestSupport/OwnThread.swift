import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs CPU-bound test work on a thread of its own and waits for it without holding a
/// thread of the cooperative pool.
///
/// A test process has one cooperative thread per core. Long synchronous work (the
/// seeded simulations) run as plain test bodies occupies them all for minutes, and the
/// network tests running beside them stop being scheduled: their servers' timers keep
/// running on NIO threads, so a recall "goes unanswered" and a session "misses" its
/// renewal. The thread runs at the lowest priority (nice 19 on Linux), so that those
/// tests keep their timing on a busy machine. Expectations belong in the caller, after the
/// await: a bare thread carries no test context.
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let thread = Thread {
            #if canImport(Glibc)
            // On Linux, who = 0 with PRIO_PROCESS is the calling thread alone.
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
            #endif
            continuation.resume(with: Result { try body() })
        }
        thread.stackSize = 16 << 20
        thread.start()
    }
}
