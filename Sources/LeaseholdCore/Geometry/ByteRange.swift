/// A range of bytes in a file: `offset..<offset+length`.
///
/// Validation happens in ``VolumeGeometry``: a zero length where a range is required, or
/// `offset + length` overflowing, is `invalidArgument`.
public struct ByteRange: Hashable, Sendable, Codable, CustomStringConvertible {
    public var offset: UInt64
    public var length: UInt64

    public init(offset: UInt64, length: UInt64) {
        self.offset = offset
        self.length = length
    }

    /// The end offset, or `nil` when `offset + length` overflows.
    public var end: UInt64? {
        let (end, overflow) = self.offset.addingReportingOverflow(self.length)
        return overflow ? nil : end
    }

    public var description: String { "bytes \(self.offset)+\(self.length)" }
}
