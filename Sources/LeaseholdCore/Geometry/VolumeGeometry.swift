/// The shape of the one volume a server owns: `blockCount` blocks of `blockSize` bytes,
/// and the byte-to-block arithmetic every operation uses.
///
/// Rounding (SEMANTICS.md): conflict checks, recalls and pins use the *outward* block
/// range `floor(off/bs) ..< ceil((off+len)/bs)`; freeing uses the *inward* range, so a
/// partly covered block keeps its data and its mapping.
public struct VolumeGeometry: Hashable, Sendable, Codable {
    /// Bytes per block: a power of two in `512...1 MiB`.
    public let blockSize: UInt64
    /// Number of blocks; physical addresses are `0..<blockCount`.
    public let blockCount: UInt64
    /// `log2(blockSize)`.
    public let blockShift: UInt64

    public static let minimumBlockSize: UInt64 = 512
    public static let maximumBlockSize: UInt64 = 1 << 20

    /// The default volume: 2^28 blocks of 4 KiB (1 TiB).
    public static let `default` = try! VolumeGeometry(blockSize: 4096, blockCount: 1 << 28)

    /// Validates and creates a geometry.
    /// - Throws: `invalidArgument` when the block size is not a power of two in range or
    ///   the volume is empty or larger than 2^64 bytes.
    public init(blockSize: UInt64, blockCount: UInt64) throws(LeaseholdError) {
        guard blockSize >= Self.minimumBlockSize, blockSize <= Self.maximumBlockSize,
            blockSize & (blockSize - 1) == 0
        else {
            throw .invalidArgument("block size \(blockSize) must be a power of two between 512 and 1048576")
        }
        guard blockCount > 0 else {
            throw .invalidArgument("block count must be at least 1")
        }
        let shift = UInt64(blockSize.trailingZeroBitCount)
        guard blockCount <= (UInt64.max >> shift) else {
            throw .invalidArgument("volume of \(blockCount) blocks of \(blockSize) bytes exceeds 2^64 bytes")
        }
        self.blockSize = blockSize
        self.blockCount = blockCount
        self.blockShift = shift
    }

    /// The whole volume as a block range.
    public var allBlocks: BlockRange { BlockRange(start: 0, end: self.blockCount) }

    /// `floor(offset / blockSize)`.
    public func blockContaining(_ offset: UInt64) -> UInt64 {
        offset >> self.blockShift
    }

    /// `ceil(offset / blockSize)`: the first block that starts at or after `offset`.
    public func firstBlockAtOrAfter(_ offset: UInt64) -> UInt64 {
        (offset >> self.blockShift) + ((offset & (self.blockSize - 1)) == 0 ? 0 : 1)
    }

    /// Checks a byte range: non-empty and not overflowing.
    /// - Returns: the range's end offset.
    public func validate(_ range: ByteRange) throws(LeaseholdError) -> UInt64 {
        guard range.length > 0 else {
            throw .invalidArgument("\(range) is empty; a range needs a length above 0")
        }
        guard let end = range.end else {
            throw .invalidArgument("\(range) overflows: offset + length exceeds 2^64 - 1")
        }
        return end
    }

    /// The outward block range of a byte range: every block the range touches.
    public func outward(_ range: ByteRange) throws(LeaseholdError) -> BlockRange {
        let end = try self.validate(range)
        return BlockRange(start: self.blockContaining(range.offset), end: self.firstBlockAtOrAfter(end))
    }

    /// The inward block range of a byte range: only blocks wholly inside it (possibly empty).
    public func inward(_ range: ByteRange) throws(LeaseholdError) -> BlockRange {
        let end = try self.validate(range)
        let start = self.firstBlockAtOrAfter(range.offset)
        let last = self.blockContaining(end)
        return start < last ? BlockRange(start: start, end: last) : BlockRange(start: start, end: start)
    }

    /// The first file block a file of `size` bytes does not reach: `ceil(size / blockSize)`.
    public func blocksForSize(_ size: UInt64) -> UInt64 {
        self.firstBlockAtOrAfter(size)
    }

    /// The byte offset of a file block, or `nil` when it does not fit in 64 bits.
    public func byteOffset(ofBlock block: UInt64) -> UInt64? {
        block <= (UInt64.max >> self.blockShift) ? block << self.blockShift : nil
    }
}
