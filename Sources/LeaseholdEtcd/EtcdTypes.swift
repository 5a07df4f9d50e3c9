// The values of etcd's KV API as this package exposes them: keys as text (every key
// Leasehold writes is), values as bytes, revisions as Int64.

/// One key and its value at a revision.
public struct EtcdKeyValue: Sendable, Hashable {
    public var key: String
    public var value: [UInt8]
    public var createRevision: Int64
    public var modRevision: Int64
    public var version: Int64
    public var lease: Int64

    init(_ json: KeyValueJSON) {
        self.key = String(decoding: json.key?.bytes ?? [], as: UTF8.self)
        self.value = json.value?.bytes ?? []
        self.createRevision = json.create_revision?.value ?? 0
        self.modRevision = json.mod_revision?.value ?? 0
        self.version = json.version?.value ?? 0
        self.lease = json.lease?.value ?? 0
    }
}

/// What a range read returned, and the store revision it was read at.
public struct EtcdRange: Sendable {
    public var kvs: [EtcdKeyValue]
    /// More keys are in the range than the limit let through.
    public var more: Bool
    public var count: Int64
    public var revision: Int64

    init(_ json: RangeResponseJSON) {
        self.kvs = (json.kvs ?? []).map(EtcdKeyValue.init)
        self.more = json.more ?? false
        self.count = json.count?.value ?? 0
        self.revision = json.header?.revision?.value ?? 0
    }
}

/// A condition of a transaction on one key.
public struct EtcdCompare: Sendable {
    var json: CompareJSON

    /// The key's create revision equals `revision` (0: the key does not exist).
    public static func createRevision(_ key: String, equals revision: Int64) -> EtcdCompare {
        EtcdCompare(json: CompareJSON(result: "EQUAL", target: "CREATE", key: EtcdBytes(key), create_revision: EtcdInt(revision)))
    }

    /// The key's mod revision equals `revision` (0: the key does not exist).
    public static func modRevision(_ key: String, equals revision: Int64) -> EtcdCompare {
        EtcdCompare(json: CompareJSON(result: "EQUAL", target: "MOD", key: EtcdBytes(key), mod_revision: EtcdInt(revision)))
    }

    /// The key's value equals `value`.
    public static func value(_ key: String, equals value: [UInt8]) -> EtcdCompare {
        EtcdCompare(json: CompareJSON(result: "EQUAL", target: "VALUE", key: EtcdBytes(key), value: EtcdBytes(value)))
    }
}

/// One operation of a transaction.
public struct EtcdOperation: Sendable {
    var json: RequestOpJSON

    public static func put(_ key: String, _ value: [UInt8], lease: Int64 = 0) -> EtcdOperation {
        EtcdOperation(json: RequestOpJSON(request_put: PutRequestJSON(key: EtcdBytes(key), value: EtcdBytes(value), lease: lease == 0 ? nil : EtcdInt(lease))))
    }

    /// Reads `key`, or the keys from `key` up to `end` (exclusive) when `end` is given.
    public static func range(_ key: String, end: String? = nil, limit: Int64 = 0) -> EtcdOperation {
        EtcdOperation(json: RequestOpJSON(request_range: RangeRequestJSON(key: EtcdBytes(key), range_end: end.map(EtcdBytes.init), limit: limit == 0 ? nil : EtcdInt(limit))))
    }

    /// Deletes `key`, or the keys from `key` up to `end` (exclusive).
    public static func delete(_ key: String, end: String? = nil) -> EtcdOperation {
        EtcdOperation(json: RequestOpJSON(request_delete_range: DeleteRangeRequestJSON(key: EtcdBytes(key), range_end: end.map(EtcdBytes.init))))
    }
}

/// What a transaction did: which branch ran, the store revision after it, and the
/// results of the branch's range operations in order (a put or delete gives an empty
/// range).
public struct EtcdTxnResult: Sendable {
    public var succeeded: Bool
    public var revision: Int64
    public var ranges: [EtcdRange]

    init(_ json: TxnResponseJSON) {
        self.succeeded = json.succeeded ?? false
        self.revision = json.header?.revision?.value ?? 0
        self.ranges = (json.responses ?? []).map { op in
            op.response_range.map(EtcdRange.init) ?? EtcdRange(RangeResponseJSON())
        }
    }
}

/// A lease as etcd granted it: its id and the TTL it actually gave (etcd rounds a
/// requested TTL up to its minimum).
public struct EtcdLease: Sendable, Hashable {
    public var id: Int64
    public var ttl: Int64
}

/// One member's view of itself (`/v3/maintenance/status`).
public struct EtcdStatus: Sendable {
    public var version: String
    public var dbSize: Int64
    public var dbSizeInUse: Int64
    public var leader: Int64
    public var memberID: Int64
    public var raftIndex: Int64
    public var raftTerm: Int64
    public var revision: Int64
    public var errors: [String]
}

/// A member as `MemberList` names it.
public struct EtcdMember: Sendable, Hashable {
    public var id: Int64
    /// Empty for a member that was added but has not started.
    public var name: String
    public var clientURLs: [String]
    public var isLearner: Bool
}

/// One change a watch saw.
public struct EtcdEvent: Sendable {
    public enum Kind: Sendable { case put, delete }
    public var kind: Kind
    public var kv: EtcdKeyValue
}

/// One message of a watch: its events, at the revision of its header.
public struct EtcdWatchUpdate: Sendable {
    public var events: [EtcdEvent]
    public var revision: Int64
    /// The first message: the watch exists from now on (no events).
    public var created: Bool
}

/// The key just after every key that starts with `prefix`: the end of a prefix range.
public func etcdPrefixEnd(_ prefix: String) -> String {
    var bytes = Array(prefix.utf8)
    while let last = bytes.last {
        if last < 0xFF {
            bytes[bytes.count - 1] = last + 1
            return String(decoding: bytes, as: UTF8.self)
        }
        bytes.removeLast()
    }
    return "\0"
}
