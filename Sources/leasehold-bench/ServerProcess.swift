import Foundation

/// A `leaseholdd` started by the bench (the binary next to it) on a fresh data directory.
final class ServerProcess: Sendable {
    let process: Process
    let directory: String
    let port: Int

    private init(process: Process, directory: String, port: Int) {
        self.process = process
        self.directory = directory
        self.port = port
    }

    static func start(scratch: String) async throws -> ServerProcess {
        let directory = (scratch as NSString).appendingPathComponent("leasehold-bench-\(getpid())")
        try? FileManager.default.removeItem(atPath: directory)
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("leaseholdd")
        let process = Process()
        process.executableURL = binary
        process.arguments = ["--data-dir", directory, "--listen", "127.0.0.1:0", "--log-level", "notice", "--max-in-flight", "4096"]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var collected = ""
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline, process.isRunning {
            let data = errors.fileHandleForReading.availableData
            collected += String(decoding: data, as: UTF8.self)
            if let line = collected.split(separator: "\n").first(where: { $0.contains("listening") }),
                let range = line.range(of: "server.port="), let port = Int(line[range.upperBound...].prefix { $0.isNumber })
            {
                // Keep draining its log so it never blocks on a full pipe.
                errors.fileHandleForReading.readabilityHandler = { _ = $0.availableData }
                return ServerProcess(process: process, directory: directory, port: port)
            }
        }
        process.terminate()
        throw BenchError("leaseholdd did not start: \(collected)")
    }

    func stop() {
        guard self.process.isRunning else { return }
        self.process.terminate()
        self.process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: self.directory)
    }
}
