import Foundation
import LeaseholdClient

/// Prints tables for people and JSON for scripts.
struct Output {
    var json: Bool

    /// Prints `rows` under `headers` as aligned columns, or `value` as JSON.
    func show(_ headers: [String], _ rows: [[String]], json value: @autoclosure () -> JSONValue) {
        if self.json {
            print(value().text)
            return
        }
        print(Self.table(headers, rows), terminator: "")
    }

    /// Prints `key: value` lines, or `value` as JSON.
    func show(fields: [(String, String)], json value: @autoclosure () -> JSONValue) {
        if self.json {
            print(value().text)
            return
        }
        let width = fields.map(\.0.count).max() ?? 0
        for (key, text) in fields { print(key.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + text) }
    }

    static func table(_ headers: [String], _ rows: [[String]]) -> String {
        var widths = headers.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        var text = line(headers) + "\n"
        for row in rows { text += line(row) + "\n" }
        if rows.isEmpty { text += "(none)\n" }
        return text
    }
}

/// Human text for values in tables.
enum Text {
    static func duration(_ duration: Duration?) -> String {
        guard let duration else { return "-" }
        let milliseconds = duration.components.seconds * 1_000 + duration.components.attoseconds / 1_000_000_000_000_000
        if milliseconds < 1_000 { return "\(milliseconds)ms" }
        if milliseconds < 60_000 { return String(format: "%.1fs", Double(milliseconds) / 1_000) }
        if milliseconds < 3_600_000 { return "\(milliseconds / 60_000)m\((milliseconds / 1_000) % 60)s" }
        return "\(milliseconds / 3_600_000)h\((milliseconds / 60_000) % 60)m"
    }

    static func blocks(_ range: BlockRange) -> String { "\(range.start)+\(range.count)" }

    static func bytes(_ range: ByteRange) -> String { "\(range.offset)+\(range.length)" }

    static func kind(_ kind: PinKind) -> String {
        switch kind {
        case .longTerm: "long"
        case .shortTerm(let ttl): "short(\(Self.duration(ttl)))"
        }
    }
}

/// Exit codes (docs/operations.md): 0 success, 1 a local failure (connection, file,
/// declined confirmation), 3 `check` found violations, 10 + N the server's error code N
/// (11 invalidArgument, 12 notFound, ... 26 unavailable); usage errors are
/// swift-argument-parser's 64.
enum Exit {
    static let failure: Int32 = 1
    static let violations: Int32 = 3

    static func code(for error: LeaseholdError) -> Int32 { 10 + Int32(clamping: error.code.rawValue) }
}
