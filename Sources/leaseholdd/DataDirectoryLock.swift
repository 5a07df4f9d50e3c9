import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One process per data directory: an exclusive `flock` on `DATA/lock`, held for the life
/// of the process (the kernel drops it when the process ends, however it ends). `serve`
/// (alone or as a cluster node) and `cluster init --import` take it, so an import cannot
/// read a directory a running server still writes, and two servers never share one.
struct DataDirectoryLock {
    let descriptor: Int32

    /// - Throws: `ValidationError`-style text when another process holds the lock.
    init(directory: String) throws {
        let path = (directory as NSString).appendingPathComponent("lock")
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw DataDirectoryLockError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno == EWOULDBLOCK ? "another leaseholdd uses \(directory) (it holds \(path))" : String(cString: strerror(errno))
            close(descriptor)
            throw DataDirectoryLockError(reason)
        }
        self.descriptor = descriptor
    }
}

struct DataDirectoryLockError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
