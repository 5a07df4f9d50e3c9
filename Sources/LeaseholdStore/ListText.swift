import LeaseholdCore

/// The short texts that hold lists in the database (see ``StoreSchema``): readable with
/// `sqlite3`, and parsed without Foundation at recovery speed.
enum ListText {
    struct Malformed: Error, CustomStringConvertible {
        var text: String
        var what: String
        var description: String { "malformed \(self.what) list '\(self.text)'" }
    }

    // MARK: Encoding

    static func ranges<C: Collection<ByteRange>>(_ ranges: C) -> String {
        ranges.map { "\($0.offset)+\($0.length)" }.joined(separator: ";")
    }

    static func extents<C: Collection<PinnedExtent>>(_ extents: C) -> String {
        extents.map { "\($0.fileBlock)@\($0.physicalBlock)+\($0.count)" }.joined(separator: ";")
    }

    static func grants(_ grants: [LayoutGrant]) -> String {
        grants.map { "\($0.range.start)+\($0.range.count)@\($0.seqid)" }.joined(separator: ";")
    }

    static func blocks(_ blocks: [BlockRange]) -> String {
        blocks.map { "\($0.start)+\($0.count)" }.joined(separator: ";")
    }

    // MARK: Decoding

    static func ranges(_ text: String) throws -> [ByteRange] {
        try self.items(text, fields: 2, separators: [UInt8(ascii: "+")], what: "byte range").map {
            ByteRange(offset: $0[0], length: $0[1])
        }
    }

    static func extents(_ text: String) throws -> [PinnedExtent] {
        try self.items(text, fields: 3, separators: [UInt8(ascii: "@"), UInt8(ascii: "+")], what: "extent").map {
            PinnedExtent(fileBlock: $0[0], physicalBlock: $0[1], count: $0[2])
        }
    }

    static func grants(_ text: String) throws -> [LayoutGrant] {
        try self.items(text, fields: 3, separators: [UInt8(ascii: "+"), UInt8(ascii: "@")], what: "grant").map {
            guard let seqid = UInt32(exactly: $0[2]), $0[0] <= UInt64.max - $0[1] else { throw Malformed(text: text, what: "grant") }
            return LayoutGrant(range: BlockRange(start: $0[0], count: $0[1]), seqid: seqid)
        }
    }

    static func blocks(_ text: String) throws -> [BlockRange] {
        try self.items(text, fields: 2, separators: [UInt8(ascii: "+")], what: "block range").map {
            guard $0[0] <= UInt64.max - $0[1] else { throw Malformed(text: text, what: "block range") }
            return BlockRange(start: $0[0], count: $0[1])
        }
    }

    /// Items separated by `;`, each `fields` unsigned numbers separated by `separators`
    /// in that order.
    static func items(_ text: String, fields: Int, separators: [UInt8], what: String) throws -> [[UInt64]] {
        var result: [[UInt64]] = []
        var utf8 = text.utf8[...]
        guard !utf8.isEmpty else { return [] }
        while true {
            var item: [UInt64] = []
            item.reserveCapacity(fields)
            for field in 0..<fields {
                var value: UInt64 = 0
                var digits = 0
                while let byte = utf8.first, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                    let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
                    let (sum, overflow2) = times.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
                    guard !overflow1, !overflow2 else { throw Malformed(text: text, what: what) }
                    value = sum
                    digits += 1
                    utf8 = utf8.dropFirst()
                }
                guard digits > 0 else { throw Malformed(text: text, what: what) }
                item.append(value)
                if field < fields - 1 {
                    guard utf8.first == separators[field] else { throw Malformed(text: text, what: what) }
                    utf8 = utf8.dropFirst()
                }
            }
            result.append(item)
            guard let next = utf8.first else { return result }
            guard next == UInt8(ascii: ";") else { throw Malformed(text: text, what: what) }
            utf8 = utf8.dropFirst()
        }
    }
}
