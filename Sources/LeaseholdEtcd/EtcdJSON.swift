import Foundation

// The shapes of etcd's v3 JSON gateway (etcd-io/etcd api/etcdserverpb/rpc.proto, as
// grpc-gateway renders them): field names as in the proto, bytes base64-encoded, 64-bit
// integers as strings, fields at their default value left out of responses. Only the
// requests and fields this package uses are declared.

/// A 64-bit integer as the gateway writes it: a JSON string (it also accepts a number).
/// Unsigned fields (member and cluster ids) keep their bit pattern.
struct EtcdInt: Codable, Hashable, Sendable {
    var value: Int64

    init(_ value: Int64) { self.value = value }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            guard let value = Int64(text) ?? UInt64(text).map(Int64.init(bitPattern:)) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a 64-bit integer: \(text.prefix(40))")
            }
            self.value = value
        } else {
            self.value = try container.decode(Int64.self)
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(String(self.value))
    }
}

/// Bytes as the gateway writes them: a base64 JSON string.
struct EtcdBytes: Codable, Hashable, Sendable {
    var bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }
    init(_ text: String) { self.bytes = Array(text.utf8) }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let data = Data(base64Encoded: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not base64: \(text.prefix(40))")
        }
        self.bytes = Array(data)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(Data(self.bytes).base64EncodedString())
    }
}

struct HeaderJSON: Codable, Sendable {
    var revision: EtcdInt?
    var raft_term: EtcdInt?
    var member_id: EtcdInt?
    var cluster_id: EtcdInt?
}

struct KeyValueJSON: Codable, Sendable {
    var key: EtcdBytes?
    var create_revision: EtcdInt?
    var mod_revision: EtcdInt?
    var version: EtcdInt?
    var value: EtcdBytes?
    var lease: EtcdInt?
}

struct RangeRequestJSON: Codable, Sendable {
    var key: EtcdBytes
    var range_end: EtcdBytes?
    var limit: EtcdInt?
    var revision: EtcdInt?
    var keys_only: Bool?
    var count_only: Bool?
}

struct RangeResponseJSON: Codable, Sendable {
    var header: HeaderJSON?
    var kvs: [KeyValueJSON]?
    var more: Bool?
    var count: EtcdInt?
}

struct PutRequestJSON: Codable, Sendable {
    var key: EtcdBytes
    var value: EtcdBytes
    var lease: EtcdInt?
}

struct PutResponseJSON: Codable, Sendable {
    var header: HeaderJSON?
}

struct DeleteRangeRequestJSON: Codable, Sendable {
    var key: EtcdBytes
    var range_end: EtcdBytes?
}

struct DeleteRangeResponseJSON: Codable, Sendable {
    var header: HeaderJSON?
    var deleted: EtcdInt?
}

struct CompareJSON: Codable, Sendable {
    var result: String
    var target: String
    var key: EtcdBytes
    var version: EtcdInt?
    var create_revision: EtcdInt?
    var mod_revision: EtcdInt?
    var value: EtcdBytes?
    var lease: EtcdInt?
}

struct RequestOpJSON: Codable, Sendable {
    var request_range: RangeRequestJSON?
    var request_put: PutRequestJSON?
    var request_delete_range: DeleteRangeRequestJSON?
}

struct ResponseOpJSON: Codable, Sendable {
    var response_range: RangeResponseJSON?
    var response_put: PutResponseJSON?
    var response_delete_range: DeleteRangeResponseJSON?
}

struct TxnRequestJSON: Codable, Sendable {
    var compare: [CompareJSON]
    var success: [RequestOpJSON]
    var failure: [RequestOpJSON]
}

struct TxnResponseJSON: Codable, Sendable {
    var header: HeaderJSON?
    var succeeded: Bool?
    var responses: [ResponseOpJSON]?
}

struct LeaseGrantRequestJSON: Codable, Sendable {
    var TTL: EtcdInt
    var ID: EtcdInt
}

struct LeaseGrantResponseJSON: Codable, Sendable {
    var header: HeaderJSON?
    var ID: EtcdInt?
    var TTL: EtcdInt?
    var error: String?
}

struct LeaseIDJSON: Codable, Sendable {
    var ID: EtcdInt
}

struct LeaseKeepAliveResponseJSON: Codable, Sendable {
    var header: HeaderJSON?
    var ID: EtcdInt?
    var TTL: EtcdInt?
}

/// One message of a streamed response (keepalive, watch): the gateway wraps each in
/// `{"result": ...}` or reports `{"error": ...}`.
struct StreamedJSON<Result: Codable & Sendable>: Codable, Sendable {
    var result: Result?
    var error: GatewayErrorJSON?
}

struct EmptyJSON: Codable, Sendable {}

struct CompactionRequestJSON: Codable, Sendable {
    var revision: EtcdInt
    var physical: Bool
}

struct StatusResponseJSON: Codable, Sendable {
    var header: HeaderJSON?
    var version: String?
    var dbSize: EtcdInt?
    var dbSizeInUse: EtcdInt?
    var leader: EtcdInt?
    var raftIndex: EtcdInt?
    var raftTerm: EtcdInt?
    var errors: [String]?
}

struct MemberListResponseJSON: Codable, Sendable {
    struct Member: Codable, Sendable {
        var ID: EtcdInt?
        var name: String?
        var clientURLs: [String]?
        var isLearner: Bool?
    }

    var header: HeaderJSON?
    var members: [Member]?
}

struct AlarmRequestJSON: Codable, Sendable {
    var action: String
}

struct AlarmMemberJSON: Codable, Sendable {
    var memberID: EtcdInt?
    var alarm: String?
}

struct AlarmResponseJSON: Codable, Sendable {
    var header: HeaderJSON?
    var alarms: [AlarmMemberJSON]?
}

struct WatchCreateJSON: Codable, Sendable {
    var key: EtcdBytes
    var range_end: EtcdBytes?
    var start_revision: EtcdInt?
    var progress_notify: Bool?
}

struct WatchRequestJSON: Codable, Sendable {
    var create_request: WatchCreateJSON
}

struct EventJSON: Codable, Sendable {
    var type: String?
    var kv: KeyValueJSON?
}

struct WatchResponseJSON: Codable, Sendable {
    var header: HeaderJSON?
    var watch_id: EtcdInt?
    var created: Bool?
    var canceled: Bool?
    var compact_revision: EtcdInt?
    var cancel_reason: String?
    var events: [EventJSON]?
}

/// The body of a gateway error (an HTTP status other than 200).
struct GatewayErrorJSON: Codable, Sendable {
    var error: String?
    var message: String?
    var code: Int?
    var http_code: Int?
}
