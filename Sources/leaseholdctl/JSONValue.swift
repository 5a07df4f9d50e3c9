/// A JSON value with ordered object keys, for `--json` output that keeps fields in the
/// order the tables show them.
enum JSONValue: Sendable {
    case string(String)
    case number(UInt64)
    case signed(Int64)
    case double(Double)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([(String, JSONValue)])

    /// Compact text, one line.
    var text: String {
        switch self {
        case .string(let value): return Self.quote(value)
        case .number(let value): return String(value)
        case .signed(let value): return String(value)
        case .double(let value): return String(value)
        case .bool(let value): return value ? "true" : "false"
        case .null: return "null"
        case .array(let values): return "[" + values.map(\.text).joined(separator: ",") + "]"
        case .object(let fields): return "{" + fields.map { Self.quote($0.0) + ":" + $0.1.text }.joined(separator: ",") + "}"
        }
    }

    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

extension JSONValue {
    static func optional(_ value: UInt64?) -> JSONValue { value.map(JSONValue.number) ?? .null }
    /// A duration as seconds with millisecond precision.
    static func seconds(_ duration: Duration?) -> JSONValue {
        guard let duration else { return .null }
        return .double(Double(duration.components.seconds) + Double(duration.components.attoseconds / 1_000_000_000_000_000) / 1_000)
    }
}
