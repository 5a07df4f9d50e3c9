/// Why an etcd request did not give an answer, told apart by what the caller may conclude
/// about a write it carried.
public struct EtcdError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// No member could be reached: the request was not sent, nothing was written.
        case unreachable
        /// The request was sent and no answer came (a timeout, a connection lost): a write
        /// in it may or may not have happened.
        case uncertain
        /// The member answered with an error etcd reports as transient: no leader, quorum
        /// lost, a request timed out inside etcd, the NOSPACE alarm. A write may have
        /// happened only where etcd says it timed out.
        case unavailable
        /// The member refused the request for what it is (too large, too many operations,
        /// a lease that does not exist, a compacted revision): sending it again is the
        /// same refusal.
        case refused
        /// The answer could not be read.
        case malformed
    }

    public var kind: Kind
    /// The gRPC status code etcd gave, when it gave one.
    public var code: Int?
    public var message: String

    public init(_ kind: Kind, code: Int? = nil, _ message: String) {
        self.kind = kind
        self.code = code
        self.message = message
    }

    /// Whether the write in the request may have happened.
    public var mayHaveWritten: Bool {
        switch self.kind {
        case .uncertain: true
        case .unavailable: self.code == 4 || self.message.contains("timed out")
        case .unreachable, .refused, .malformed: false
        }
    }

    /// etcd said the revision asked for was compacted away.
    public var isCompacted: Bool { self.message.contains("required revision has been compacted") }

    /// etcd said the lease does not exist (it expired or was revoked).
    public var isLeaseNotFound: Bool { self.message.contains("requested lease not found") }

    /// etcd's space quota is exhausted (the NOSPACE alarm): it takes no writes until an
    /// operator compacts, defragments and disarms it.
    public var isNoSpace: Bool { self.message.contains("database space exceeded") }

    public var description: String {
        let code = self.code.map { " (gRPC code \($0))" } ?? ""
        return switch self.kind {
        case .unreachable: "etcd unreachable: \(self.message)"
        case .uncertain: "etcd did not answer: \(self.message)"
        case .unavailable where self.isNoSpace:
            "etcd refuses writes: its space quota is exhausted (NOSPACE alarm; compact, defragment and disarm it): \(self.message)"
        case .unavailable: "etcd unavailable: \(self.message)\(code)"
        case .refused: "etcd refused the request: \(self.message)\(code)"
        case .malformed: "etcd's answer could not be read: \(self.message)"
        }
    }

    /// The kind of an error answer from its gRPC code (google.golang.org/grpc/codes).
    static func kind(code: Int?, message: String) -> Kind {
        if message.contains("database space exceeded") { return .unavailable }
        switch code {
        // Unknown, deadline exceeded, resource exhausted, unavailable, aborted.
        case 2, 4, 8, 10, 14: return .unavailable
        default: return .refused
        }
    }
}
