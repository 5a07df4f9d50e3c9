import Crypto

/// What the server keeps of a session secret: its SHA-256 digest, in memory, in the log
/// and in SQLite (SEMANTICS.md: "Secrets of sessions are stored as hashes"). Whoever
/// reads a data directory, a snapshot or the etcd log learns no secret that would let
/// it resume someone else's session.
///
/// A plain digest suffices: the secret is 128 random bits from the server, not a
/// password, so there is nothing to guess and no need for a salt or a slow hash.
public struct SessionSecretDigest: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The 32 bytes of the digest, big-endian, as four words.
    public var w0, w1, w2, w3: UInt64

    /// The digest of `secret`'s 16 bytes (big-endian, high then low).
    public init(of secret: SessionSecret) {
        let bytes = [secret.high, secret.low].flatMap(Self.bigEndian)
        self.init(bytes: Array(SHA256.hash(data: bytes)))!
    }

    /// The digest from its 32 bytes; `nil` for any other length.
    public init?(bytes: some Collection<UInt8>) {
        let bytes = Array(bytes)
        guard bytes.count == 32 else { return nil }
        func word(_ index: Int) -> UInt64 { bytes[index * 8..<index * 8 + 8].reduce(0) { $0 << 8 | UInt64($1) } }
        (self.w0, self.w1, self.w2, self.w3) = (word(0), word(1), word(2), word(3))
    }

    /// The digest from 64 hex digits; `nil` for anything else.
    public init?(hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count == 64 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: 64, by: 2) {
            guard let high = Self.nibble(digits[index]), let low = Self.nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        self.init(bytes: bytes)
    }

    /// The 32 bytes, big-endian.
    public var bytes: [UInt8] { [self.w0, self.w1, self.w2, self.w3].flatMap(Self.bigEndian) }

    /// 64 lowercase hex digits.
    public var description: String {
        String(self.bytes.flatMap { [Self.digit($0 >> 4), Self.digit($0 & 0xF)] }.map(Character.init))
    }

    /// Whether `secret` is the one this digest was made of, in the same time wherever
    /// the digests differ.
    public func matches(_ secret: SessionSecret) -> Bool {
        let other = SessionSecretDigest(of: secret)
        return (self.w0 ^ other.w0) | (self.w1 ^ other.w1) | (self.w2 ^ other.w2) | (self.w3 ^ other.w3) == 0
    }

    static func bigEndian(_ word: UInt64) -> [UInt8] {
        stride(from: 56, through: 0, by: -8).map { UInt8(truncatingIfNeeded: word >> UInt64($0)) }
    }

    static func digit(_ value: UInt8) -> Unicode.Scalar {
        Unicode.Scalar(value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10)
    }

    static func nibble(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
