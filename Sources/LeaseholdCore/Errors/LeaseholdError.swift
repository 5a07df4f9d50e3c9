/// The one error type of Leasehold: a stable numeric ``Code``, a human message and
/// structured ``Details``.
///
/// Codes are part of the wire contract and never change meaning; new codes may be
/// added. Bad input always yields one of these, never a crash, and changes nothing.
public struct LeaseholdError: Error, Hashable, Sendable, Codable, CustomStringConvertible {
    /// A stable error code. The numeric values are part of the protocol.
    public struct Code: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
        public var rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        /// Malformed or out-of-range input; nothing changed.
        public static let invalidArgument = Code(rawValue: 1)
        /// The inode, session, pin, layout, target or extent does not exist.
        public static let notFound = Code(rawValue: 2)
        /// The expected inode generation did not match.
        public static let staleGeneration = Code(rawValue: 3)
        /// A pinned range is not mapped; the details name the first hole.
        public static let notMapped = Code(rawValue: 4)
        /// Not enough free space; the details give how many blocks are busy.
        public static let noSpace = Code(rawValue: 5)
        /// `fail` policy: conflicting pins exist; the details list them.
        public static let busy = Code(rawValue: 6)
        /// A wait ended by its timeout; the map, size and generation are unchanged.
        public static let timedOut = Code(rawValue: 7)
        /// The range is being broken by a truncate, punch or allocation; retry.
        public static let rangeBreaking = Code(rawValue: 8)
        /// layoutGet during a break that involves only other sessions; retry.
        public static let tryLater = Code(rawValue: 9)
        /// layoutGet while the caller's own layout is being recalled; return it first.
        public static let recallConflict = Code(rawValue: 10)
        /// The session expired or was closed; open a new one.
        public static let sessionExpired = Code(rawValue: 11)
        /// The session was evicted and its fencing tokens are fenced.
        public static let fenced = Code(rawValue: 12)
        /// The caller's identity or role does not allow this, or the volume refuses it.
        public static let permissionDenied = Code(rawValue: 13)
        /// A quota or limit was reached; the details name it.
        public static let resourceExhausted = Code(rawValue: 14)
        /// The peer broke the wire protocol.
        public static let protocolError = Code(rawValue: 15)
        /// The server is shutting down, or (cluster mode) cannot reach etcd or is fenced.
        public static let unavailable = Code(rawValue: 16)
        /// Cluster mode: this node is a standby; the details name the leader's endpoint.
        public static let notLeader = Code(rawValue: 17)
        /// The events asked for are older than the history kept; the details give the
        /// oldest revision still kept.
        public static let compacted = Code(rawValue: 18)

        /// Every code, in numeric order.
        public static let all: [Code] = [
            .invalidArgument, .notFound, .staleGeneration, .notMapped, .noSpace, .busy, .timedOut,
            .rangeBreaking, .tryLater, .recallConflict, .sessionExpired, .fenced, .permissionDenied,
            .resourceExhausted, .protocolError, .unavailable, .notLeader, .compacted,
        ]

        /// The name used in logs, JSON output and documentation.
        public var name: String {
            switch self {
            case .invalidArgument: "invalidArgument"
            case .notFound: "notFound"
            case .staleGeneration: "staleGeneration"
            case .notMapped: "notMapped"
            case .noSpace: "noSpace"
            case .busy: "busy"
            case .timedOut: "timedOut"
            case .rangeBreaking: "rangeBreaking"
            case .tryLater: "tryLater"
            case .recallConflict: "recallConflict"
            case .sessionExpired: "sessionExpired"
            case .fenced: "fenced"
            case .permissionDenied: "permissionDenied"
            case .resourceExhausted: "resourceExhausted"
            case .protocolError: "protocolError"
            case .unavailable: "unavailable"
            case .notLeader: "notLeader"
            case .compacted: "compacted"
            default: "code\(self.rawValue)"
            }
        }

        /// Whether the same request may succeed if sent again later (with a new sequence).
        public var isRetryable: Bool {
            self == .rangeBreaking || self == .tryLater || self == .unavailable || self == .timedOut
        }

        public var description: String { "\(self.name)(\(self.rawValue))" }
    }

    /// Structured facts about an error, for programs; every field is optional.
    public struct Details: Hashable, Sendable, Codable {
        /// `noSpace`: blocks that are busy and will become free later.
        public var busyBlocks: UInt64?
        /// `noSpace`: free blocks at the time of the request.
        public var freeBlocks: UInt64?
        /// `busy`: the conflicting pins.
        public var pins: [PinID]
        /// `notMapped`: byte offset of the first hole.
        public var firstHoleOffset: UInt64?
        /// `staleGeneration`: the inode's current generation.
        public var currentGeneration: UInt64?
        /// `timedOut` of a break: layouts revoked before the timeout (they stand).
        public var revokedLayouts: [LayoutID]
        /// `timedOut` of a break: sessions evicted before the timeout.
        public var evictedSessions: [SessionID]
        /// `resourceExhausted`: the quota or limit that was reached.
        public var limit: String?
        /// `sessionExpired`/`fenced`: the fence revision that fenced the session's tokens.
        public var fenceRevision: FenceRevision?
        /// `notLeader`: where the leader serves (its advertised endpoint), when one leads.
        public var leaderEndpoint: String?
        /// `compacted`: the oldest event revision still kept.
        public var oldestRevision: EventRevision?

        public init(
            busyBlocks: UInt64? = nil,
            freeBlocks: UInt64? = nil,
            pins: [PinID] = [],
            firstHoleOffset: UInt64? = nil,
            currentGeneration: UInt64? = nil,
            revokedLayouts: [LayoutID] = [],
            evictedSessions: [SessionID] = [],
            limit: String? = nil,
            fenceRevision: FenceRevision? = nil,
            leaderEndpoint: String? = nil,
            oldestRevision: EventRevision? = nil
        ) {
            self.busyBlocks = busyBlocks
            self.freeBlocks = freeBlocks
            self.pins = pins
            self.firstHoleOffset = firstHoleOffset
            self.currentGeneration = currentGeneration
            self.revokedLayouts = revokedLayouts
            self.evictedSessions = evictedSessions
            self.limit = limit
            self.fenceRevision = fenceRevision
            self.leaderEndpoint = leaderEndpoint
            self.oldestRevision = oldestRevision
        }
    }

    public var code: Code
    public var message: String
    public var details: Details

    public init(code: Code, message: String, details: Details = Details()) {
        self.code = code
        self.message = Self.bounded(message)
        self.details = details
    }

    /// The longest message an error carries, in UTF-8 bytes. A message that quotes client
    /// input (a target name, a snapshot name) quotes at most a prefix of it, so an error
    /// reply never grows with what was sent and stays far below the frame limit.
    public static let maxMessageBytes = 512

    /// `message`, or its longest prefix of whole characters that fits with a note of how
    /// long it was.
    static func bounded(_ message: String) -> String {
        let total = message.utf8.count
        guard total > Self.maxMessageBytes else { return message }
        let note = "… (cut; \(total) bytes in all)"
        let budget = Self.maxMessageBytes - note.utf8.count
        var end = message.startIndex
        var bytes = 0
        for index in message.indices {
            let size = message[index].utf8.count
            if bytes + size > budget { break }
            bytes += size
            end = message.index(after: index)
        }
        return String(message[..<end]) + note
    }

    public var description: String { "\(self.code.name): \(self.message)" }
}

// MARK: - Constructors

extension LeaseholdError {
    public static func invalidArgument(_ message: String) -> LeaseholdError {
        LeaseholdError(code: .invalidArgument, message: message)
    }

    public static func notFound(_ message: String) -> LeaseholdError {
        LeaseholdError(code: .notFound, message: message)
    }

    public static func staleGeneration(expected: UInt64, current: UInt64, inode: InodeID) -> LeaseholdError {
        LeaseholdError(
            code: .staleGeneration,
            message: "inode \(inode) is at generation \(current), not the expected \(expected)",
            details: Details(currentGeneration: current)
        )
    }

    public static func notMapped(inode: InodeID, holeOffset: UInt64) -> LeaseholdError {
        LeaseholdError(
            code: .notMapped,
            message: "inode \(inode) has a hole at byte \(holeOffset); allocate it or pin with allocate",
            details: Details(firstHoleOffset: holeOffset)
        )
    }

    public static func noSpace(needed: UInt64, free: UInt64, busy: UInt64) -> LeaseholdError {
        LeaseholdError(
            code: .noSpace,
            message: "need \(needed) blocks but only \(free) are free; \(busy) more are busy and will free later",
            details: Details(busyBlocks: busy, freeBlocks: free)
        )
    }

    public static func busy(pins: [PinID]) -> LeaseholdError {
        LeaseholdError(
            code: .busy,
            message: "the range is pinned by \(pins.count) pin(s): \(pins.map(\.description).joined(separator: ", "))",
            details: Details(pins: pins)
        )
    }

    public static func rangeBreaking(_ message: String) -> LeaseholdError {
        LeaseholdError(code: .rangeBreaking, message: message)
    }

    public static func permissionDenied(_ message: String) -> LeaseholdError {
        LeaseholdError(code: .permissionDenied, message: message)
    }

    public static func resourceExhausted(limit: String, message: String) -> LeaseholdError {
        LeaseholdError(code: .resourceExhausted, message: message, details: Details(limit: limit))
    }

    /// Cluster mode: this node is a standby; `leader` is where the leader serves, `nil`
    /// while none leads.
    public static func notLeader(leader: String?) -> LeaseholdError {
        let message = leader.map { "this node is a standby; the leader serves at \($0)" } ?? "this node is a standby and no node leads now; retry"
        return LeaseholdError(code: .notLeader, message: message, details: Details(leaderEndpoint: leader))
    }

    /// The events after `after` were dropped from the history; `oldest` is the oldest kept.
    public static func compacted(after: EventRevision, oldest: EventRevision) -> LeaseholdError {
        LeaseholdError(
            code: .compacted,
            message: "events after revision \(after) are no longer kept; the oldest kept is \(oldest) (read from \(oldest.rawValue - 1), or from 0 for all that is kept)",
            details: Details(oldestRevision: oldest)
        )
    }
}
