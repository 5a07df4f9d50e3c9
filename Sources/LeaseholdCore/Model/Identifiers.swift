/// Typed identifiers. Every id is a UInt64 that starts at 1 and is never reused, also not
/// across restarts (SEMANTICS.md, "Units and identities"). Distinct types keep a pin id
/// from being passed where a layout id is expected.
public protocol LeaseholdIdentifier: RawRepresentable, Hashable, Comparable, Sendable, Codable,
    CustomStringConvertible, ExpressibleByIntegerLiteral
where RawValue == UInt64 {
    init(rawValue: UInt64)
}

extension LeaseholdIdentifier {
    public init(integerLiteral value: UInt64) {
        self.init(rawValue: value)
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    public var description: String { String(self.rawValue) }
}

/// Identifies an inode (regular or quarantine).
public struct InodeID: LeaseholdIdentifier {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
}

/// Identifies a client session.
public struct SessionID: LeaseholdIdentifier {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
}

/// Identifies a DMA pin.
public struct PinID: LeaseholdIdentifier {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
}

/// Identifies a layout: the `id` half of a layout stateid.
public struct LayoutID: LeaseholdIdentifier {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
}

/// Identifies a recall (of a layout or of a long-term pin).
public struct RecallID: LeaseholdIdentifier {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
}

/// A value of the global fencing counter, handed to every pin and layout grant.
public struct FencingToken: LeaseholdIdentifier {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
}

/// The position of an entry in the fence feed.
public struct FenceRevision: LeaseholdIdentifier {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
}

/// The position of an entry in the admin event stream.
public struct EventRevision: LeaseholdIdentifier {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
}

/// A 128-bit session secret, generated at the edge (the Core has no randomness) and
/// checked on `resumeSession`.
public struct SessionSecret: Hashable, Sendable, Codable {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }
}

/// A layout stateid: the layout's id and the sequence number of its latest change.
public struct LayoutStateID: Hashable, Sendable, Codable, CustomStringConvertible {
    public var id: LayoutID
    public var seqid: UInt32

    public init(id: LayoutID, seqid: UInt32) {
        self.id = id
        self.seqid = seqid
    }

    public var description: String { "\(self.id)/\(self.seqid)" }
}
