import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// How to reach an etcd cluster.
public struct EtcdConfiguration: Sendable {
    /// Client URLs of the members (`http://127.0.0.1:2379`, `https://...` with TLS).
    public var endpoints: [String]
    /// Mutual TLS to etcd: the CA that signed the members' certificates and this node's
    /// client certificate and key; `nil` over plain HTTP.
    public var tls: TLSConfiguration?
    /// How long a unary request may take before its answer counts as lost.
    public var requestTimeout: Duration
    /// How long connecting to one member may take before the next is tried.
    public var connectTimeout: Duration

    public init(endpoints: [String], tls: TLSConfiguration? = nil, requestTimeout: Duration = .seconds(5), connectTimeout: Duration = .seconds(1)) {
        self.endpoints = endpoints
        self.tls = tls
        self.requestTimeout = requestTimeout
        self.connectTimeout = connectTimeout
    }

    /// Mutual TLS from PEM files: the members are verified against `ca` (host names
    /// included); `certificate` and `key` are this node's client identity.
    public static func mutualTLS(ca: String, certificate: String, key: String) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(ca)
        tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
        tls.minimumTLSVersion = .tlsv12
        return tls
    }
}

/// A client of etcd's v3 API through its JSON gateway (docs/cluster.md, "Reaching etcd").
///
/// Every request throws an ``EtcdError``.
///
/// Requests go to one member at a time; when it cannot be reached the next one is tried,
/// and the one that answered is used first from then on. A request that was sent is never
/// sent again by the client: whether that is safe is the caller's decision, and the
/// ``EtcdError/Kind`` says what it may conclude. Each client owns its own HTTP connection
/// pool; a caller that must not queue behind others (lease keepalives) uses a client of
/// its own.
public final class EtcdClient: Sendable {
    public let configuration: EtcdConfiguration
    /// The event loops the client's connections run on.
    public let eventLoopGroup: any EventLoopGroup
    private let http: HTTPClient
    private let preferred = Mutex(0)
    /// The largest answer read (a page of log entries is bounded by the caller's limit).
    static let maximumBody = 256 << 20

    public init(_ configuration: EtcdConfiguration, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        precondition(!configuration.endpoints.isEmpty, "an etcd client needs at least one endpoint")
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        var pool = HTTPClient.Configuration.ConnectionPool()
        // Fail at once when a member cannot be reached, so the next one is tried.
        pool.retryConnectionEstablishment = false
        var http = HTTPClient.Configuration(
            tlsConfiguration: configuration.tls,
            timeout: .init(connect: TimeAmount(configuration.connectTimeout)),
            connectionPool: pool
        )
        http.httpVersion = HTTPClient.Configuration.HTTPVersion.http1Only
        self.http = HTTPClient(eventLoopGroup: eventLoopGroup, configuration: http)
    }

    /// Closes the connections. Every request must have finished.
    public func shutdown() async throws {
        try await self.http.shutdown()
    }

    // MARK: - KV

    /// Reads `key`, or the keys from `key` up to `end` (exclusive), at `revision` (0: the
    /// newest), at most `limit` of them (0: all).
    public func range(_ key: String, end: String? = nil, revision: Int64 = 0, limit: Int64 = 0, keysOnly: Bool = false) async throws -> EtcdRange {
        let request = RangeRequestJSON(
            key: EtcdBytes(key), range_end: end.map(EtcdBytes.init), limit: limit == 0 ? nil : EtcdInt(limit),
            revision: revision == 0 ? nil : EtcdInt(revision), keys_only: keysOnly ? true : nil
        )
        return EtcdRange(try await self.call("/v3/kv/range", request, as: RangeResponseJSON.self))
    }

    /// Writes one key. - Returns: the store revision after the write.
    @discardableResult
    public func put(_ key: String, _ value: [UInt8], lease: Int64 = 0) async throws -> Int64 {
        let request = PutRequestJSON(key: EtcdBytes(key), value: EtcdBytes(value), lease: lease == 0 ? nil : EtcdInt(lease))
        return try await self.call("/v3/kv/put", request, as: PutResponseJSON.self).header?.revision?.value ?? 0
    }

    /// Deletes `key`, or the keys from `key` up to `end`. - Returns: how many were deleted.
    @discardableResult
    public func delete(_ key: String, end: String? = nil) async throws -> Int64 {
        let request = DeleteRangeRequestJSON(key: EtcdBytes(key), range_end: end.map(EtcdBytes.init))
        return try await self.call("/v3/kv/deleterange", request, as: DeleteRangeResponseJSON.self).deleted?.value ?? 0
    }

    /// Runs `success` if every compare holds, `failure` otherwise, atomically.
    public func txn(_ compare: [EtcdCompare], success: [EtcdOperation], failure: [EtcdOperation], timeout: Duration? = nil) async throws -> EtcdTxnResult {
        let request = TxnRequestJSON(compare: compare.map(\.json), success: success.map(\.json), failure: failure.map(\.json))
        return EtcdTxnResult(try await self.call("/v3/kv/txn", request, as: TxnResponseJSON.self, timeout: timeout))
    }

    /// Discards the history before `revision` (keys' current values stay).
    public func compact(revision: Int64, physical: Bool = false) async throws {
        _ = try await self.call("/v3/kv/compaction", CompactionRequestJSON(revision: EtcdInt(revision), physical: physical), as: EmptyJSON.self)
    }

    // MARK: - Leases

    /// Grants a lease of `ttl` seconds. - Returns: its id and the TTL etcd granted.
    public func grantLease(ttl: Int64) async throws -> EtcdLease {
        let response = try await self.call("/v3/lease/grant", LeaseGrantRequestJSON(TTL: EtcdInt(ttl), ID: EtcdInt(0)), as: LeaseGrantResponseJSON.self)
        if let error = response.error, !error.isEmpty { throw EtcdError(.refused, error) }
        guard let id = response.ID?.value, let granted = response.TTL?.value else {
            throw EtcdError(.malformed, "a lease grant without an id or TTL")
        }
        return EtcdLease(id: id, ttl: granted)
    }

    /// Renews a lease once. - Returns: the TTL it has again, 0 when it no longer exists.
    public func keepAlive(lease: Int64, timeout: Duration? = nil) async throws -> Int64 {
        let response = try await self.call(
            "/v3/lease/keepalive", LeaseIDJSON(ID: EtcdInt(lease)), as: StreamedJSON<LeaseKeepAliveResponseJSON>.self, timeout: timeout
        )
        if let error = response.error { throw Self.error(error, status: 200) }
        return response.result?.TTL?.value ?? 0
    }

    /// Renews a lease once, entirely on `eventLoop` (no Swift concurrency): for a
    /// keepalive that must not wait behind a busy cooperative pool. Tries the members in
    /// order like every request.
    /// - Returns: a future of the TTL the lease has again (0: it no longer exists), failed
    ///   with an ``EtcdError``.
    public func keepAlive(lease: Int64, on eventLoop: any EventLoop, timeout: Duration) -> EventLoopFuture<Int64> {
        let payload: ByteBuffer
        do {
            payload = ByteBuffer(bytes: try JSONEncoder().encode(LeaseIDJSON(ID: EtcdInt(lease))))
        } catch {
            return eventLoop.makeFailedFuture(EtcdError(.refused, "a keepalive could not be encoded: \(error)"))
        }
        let count = self.configuration.endpoints.count
        let first = self.preferred.withLock { $0 }
        let http = self.http
        let endpoints = self.configuration.endpoints
        @Sendable func attempt(_ n: Int, _ unreachable: [String]) -> EventLoopFuture<Int64> {
            guard n < count else { return eventLoop.makeFailedFuture(EtcdError(.unreachable, unreachable.joined(separator: "; "))) }
            let endpoint = endpoints[(first + n) % count]
            let request: HTTPClient.Request
            do {
                request = try HTTPClient.Request(
                    url: endpoint + "/v3/lease/keepalive", method: .POST, headers: ["Content-Type": "application/json"], body: .byteBuffer(payload)
                )
            } catch {
                return eventLoop.makeFailedFuture(EtcdError(.refused, "\(endpoint): \(error)"))
            }
            return http.execute(request: request, eventLoop: .delegateAndChannel(on: eventLoop), deadline: .now() + TimeAmount(timeout))
                .flatMapThrowing { response -> Int64 in
                    let decoded: StreamedJSON<LeaseKeepAliveResponseJSON> = try Self.decode(
                        (Int(response.status.code), response.body ?? ByteBuffer()), path: "/v3/lease/keepalive"
                    )
                    if let error = decoded.error { throw Self.error(error, status: 200) }
                    return decoded.result?.TTL?.value ?? 0
                }
                .flatMapError { error -> EventLoopFuture<Int64> in
                    if let error = error as? EtcdError, error.kind == .unavailable, !error.mayHaveWritten {
                        return attempt(n + 1, unreachable + ["\(endpoint): \(error.message)"])
                    }
                    if error is EtcdError { return eventLoop.makeFailedFuture(error) }
                    if Self.isConnectFailure(error) { return attempt(n + 1, unreachable + ["\(endpoint): \(error)"]) }
                    return eventLoop.makeFailedFuture(EtcdError(.uncertain, "\(endpoint)/v3/lease/keepalive: \(error)"))
                }
        }
        return attempt(0, [])
    }

    /// Ends a lease now; its keys are deleted.
    public func revoke(lease: Int64) async throws {
        _ = try await self.call("/v3/lease/revoke", LeaseIDJSON(ID: EtcdInt(lease)), as: EmptyJSON.self)
    }

    // MARK: - Watches

    /// Every change to `key` (or the keys from `key` up to `end`) from `revision` on, in
    /// revision order, until the stream is cancelled or fails. The first update says the
    /// watch was created (``EtcdWatchUpdate/created``, no events).
    ///
    /// Changes between `revision` and the creation (history) are delivered too, but etcd
    /// 3.4 was seen delivering them only at the next write after the creation: a caller that
    /// waits for one change re-reads once the watch is created.
    /// - Throws (from the stream): an ``EtcdError``; ``EtcdError/isCompacted`` when
    ///   `revision` is older than etcd keeps; `uncertain` when the connection is lost.
    public func watch(_ key: String, end: String? = nil, from revision: Int64) -> AsyncThrowingStream<EtcdWatchUpdate, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: EtcdWatchUpdate.self, throwing: (any Error).self)
        let task = Task {
            do {
                try await self.runWatch(
                    WatchRequestJSON(create_request: WatchCreateJSON(key: EtcdBytes(key), range_end: end.map(EtcdBytes.init), start_revision: EtcdInt(revision))),
                    into: continuation
                )
                continuation.finish(throwing: EtcdError(.uncertain, "the watch of \(key) ended"))
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    private func runWatch(_ body: WatchRequestJSON, into continuation: AsyncThrowingStream<EtcdWatchUpdate, any Error>.Continuation) async throws {
        let payload = ByteBuffer(bytes: try JSONEncoder().encode(body))
        let count = self.configuration.endpoints.count
        let first = self.preferred.withLock { $0 }
        var unreachable: [String] = []
        for attempt in 0..<count {
            let endpoint = self.configuration.endpoints[(first + attempt) % count]
            var request = HTTPClientRequest(url: endpoint + "/v3/watch")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            // etcd's require-leader: a member cut off from the quorum ends the watch
            // instead of keeping it open and silent.
            request.headers.add(name: "Grpc-Metadata-hasleader", value: "true")
            request.body = .bytes(payload)
            let response: HTTPClientResponse
            do {
                response = try await self.http.execute(request, deadline: .distantFuture)
            } catch where Self.isConnectFailure(error) {
                unreachable.append("\(endpoint): \(error)")
                continue
            } catch {
                throw EtcdError(.uncertain, "\(endpoint)/v3/watch: \(error)")
            }
            guard response.status == .ok else {
                let body = try await response.body.collect(upTo: 1 << 20)
                let _: EmptyJSON = try Self.decode((Int(response.status.code), body), path: "/v3/watch")
                throw EtcdError(.malformed, "/v3/watch answered HTTP \(response.status.code)")
            }
            // One JSON object per line; chunks do not follow lines.
            var pending: [UInt8] = []
            do {
                for try await var chunk in response.body {
                    pending.append(contentsOf: chunk.readBytes(length: chunk.readableBytes) ?? [])
                    while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                        let line = Array(pending[..<newline])
                        pending.removeFirst(newline + 1)
                        guard !line.isEmpty else { continue }
                        let message: StreamedJSON<WatchResponseJSON>
                        do {
                            message = try JSONDecoder().decode(StreamedJSON<WatchResponseJSON>.self, from: Data(line))
                        } catch {
                            throw EtcdError(.malformed, "/v3/watch: \(error)")
                        }
                        if let error = message.error { throw Self.error(error, status: 200) }
                        guard let result = message.result else { continue }
                        if let compacted = result.compact_revision?.value, compacted > 0 {
                            throw EtcdError(.refused, "etcdserver: mvcc: required revision has been compacted (oldest kept: \(compacted))")
                        }
                        if result.canceled == true {
                            throw EtcdError(.refused, "the watch was cancelled: \(result.cancel_reason ?? "no reason given")")
                        }
                        let events = (result.events ?? []).map { event in
                            EtcdEvent(kind: event.type == "DELETE" ? .delete : .put, kv: EtcdKeyValue(event.kv ?? KeyValueJSON()))
                        }
                        continuation.yield(EtcdWatchUpdate(events: events, revision: result.header?.revision?.value ?? 0, created: result.created == true))
                    }
                }
            } catch let error as EtcdError {
                throw error
            } catch {
                throw EtcdError(.uncertain, "\(endpoint)/v3/watch: \(error)")
            }
            return
        }
        throw EtcdError(.unreachable, unreachable.joined(separator: "; "))
    }

    /// Returns once a change to `key` (or the keys up to `end`) after `revision` is seen,
    /// once `recheck` (called when the watch exists) says a change already happened, or
    /// after `timeout`: the caller then reads again. A watch that fails ends the wait with
    /// its error.
    public func waitForChange(
        _ key: String, end: String? = nil, after revision: Int64, timeout: Duration, recheck: @escaping @Sendable () async throws -> Bool
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await update in self.watch(key, end: end, from: revision + 1) {
                    if update.created {
                        if try await recheck() { return }
                        continue
                    }
                    if !update.events.isEmpty { return }
                }
            }
            group.addTask { try await Task.sleep(for: timeout) }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    // MARK: - Maintenance

    /// The status of the member that answers.
    public func status() async throws -> EtcdStatus {
        Self.status(try await self.call("/v3/maintenance/status", EmptyJSON(), as: StatusResponseJSON.self))
    }

    /// The status of the member at `endpoint` (one of its client URLs) itself, not of
    /// whichever answers first: what `etcdctl endpoint status` shows per member.
    public func status(of endpoint: String, timeout: Duration) async throws -> EtcdStatus {
        let path = "/v3/maintenance/status"
        do {
            let answer = try await self.post(endpoint + path, ByteBuffer(bytes: Array("{}".utf8)), timeout: timeout)
            return Self.status(try Self.decode(answer, path: path) as StatusResponseJSON)
        } catch let error as EtcdError {
            throw error
        } catch {
            throw EtcdError(.unreachable, "\(endpoint): \(error)")
        }
    }

    static func status(_ response: StatusResponseJSON) -> EtcdStatus {
        EtcdStatus(
            version: response.version ?? "", dbSize: response.dbSize?.value ?? 0, dbSizeInUse: response.dbSizeInUse?.value ?? 0,
            leader: response.leader?.value ?? 0, memberID: response.header?.member_id?.value ?? 0,
            raftIndex: response.raftIndex?.value ?? 0, raftTerm: response.raftTerm?.value ?? 0,
            revision: response.header?.revision?.value ?? 0, errors: response.errors ?? []
        )
    }

    /// The cluster's members, as the member that answers knows them.
    public func members() async throws -> [EtcdMember] {
        let response = try await self.call("/v3/cluster/member/list", EmptyJSON(), as: MemberListResponseJSON.self)
        return (response.members ?? []).map {
            EtcdMember(id: $0.ID?.value ?? 0, name: $0.name ?? "", clientURLs: $0.clientURLs ?? [], isLearner: $0.isLearner ?? false)
        }
    }

    /// The alarms raised in the cluster (`NOSPACE`, `CORRUPT`).
    public func alarms() async throws -> [String] {
        let response = try await self.call("/v3/maintenance/alarm", AlarmRequestJSON(action: "GET"), as: AlarmResponseJSON.self)
        return (response.alarms ?? []).compactMap(\.alarm)
    }

    // MARK: - Requests

    /// Posts `body` to `path` on the preferred member, moving on to the next when one
    /// cannot be reached, and decodes the answer.
    func call<Request: Encodable, Response: Decodable>(
        _ path: String, _ body: Request, as: Response.Type, timeout: Duration? = nil
    ) async throws -> Response {
        let payload: ByteBuffer
        do {
            payload = ByteBuffer(bytes: try JSONEncoder().encode(body))
        } catch {
            throw EtcdError(.refused, "the request to \(path) could not be encoded: \(error)")
        }
        let count = self.configuration.endpoints.count
        let first = self.preferred.withLock { $0 }
        var unreachable: [String] = []
        var unavailable: EtcdError?
        for attempt in 0..<count {
            let index = (first + attempt) % count
            let endpoint = self.configuration.endpoints[index]
            do {
                let answer = try await self.post(endpoint + path, payload, timeout: timeout ?? self.configuration.requestTimeout)
                let decoded: Response = try Self.decode(answer, path: path)
                if attempt > 0 { self.preferred.withLock { $0 = index } }
                return decoded
            } catch let error as EtcdError where error.kind == .unavailable && !error.mayHaveWritten {
                // A member that answers "no leader" (cut off from the quorum) or is out of
                // space wrote nothing: another may do better.
                unavailable = EtcdError(.unavailable, code: error.code, "\(endpoint): \(error.message)")
                unreachable.append("\(endpoint): \(error.message)")
            } catch let error as EtcdError {
                throw error
            } catch where Self.isConnectFailure(error) {
                unreachable.append("\(endpoint): \(error)")
            } catch {
                throw EtcdError(.uncertain, "\(endpoint)\(path): \(error)")
            }
        }
        if let unavailable { throw EtcdError(.unavailable, code: unavailable.code, unreachable.joined(separator: "; ")) }
        throw EtcdError(.unreachable, unreachable.joined(separator: "; "))
    }

    private func post(_ url: String, _ payload: ByteBuffer, timeout: Duration) async throws -> (status: Int, body: ByteBuffer) {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(payload)
        let response = try await self.http.execute(request, timeout: TimeAmount(timeout))
        let body = try await response.body.collect(upTo: Self.maximumBody)
        return (Int(response.status.code), body)
    }

    static func decode<Response: Decodable>(_ answer: (status: Int, body: ByteBuffer), path: String) throws -> Response {
        // A streamed endpoint answering a single request sends one JSON object per line.
        var body = answer.body
        let bytes = body.readBytes(length: body.readableBytes) ?? []
        let line = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).first.map(Array.init) ?? bytes
        guard answer.status == 200 else {
            let gateway = try? JSONDecoder().decode(GatewayErrorJSON.self, from: Data(line))
            throw Self.error(gateway ?? GatewayErrorJSON(error: String(decoding: line.prefix(200), as: UTF8.self)), status: answer.status)
        }
        do {
            return try JSONDecoder().decode(Response.self, from: Data(line))
        } catch {
            throw EtcdError(.malformed, "\(path): \(error)")
        }
    }

    static func error(_ gateway: GatewayErrorJSON, status: Int) -> EtcdError {
        let message = gateway.message ?? gateway.error ?? "HTTP status \(status)"
        let code = gateway.code ?? gateway.http_code
        return EtcdError(EtcdError.kind(code: code, message: message), code: code, message)
    }

    /// Whether `error` happened before the request could be sent.
    static func isConnectFailure(_ error: any Error) -> Bool {
        if let error = error as? HTTPClientError {
            return error == .connectTimeout || error == .getConnectionFromPoolTimeout
        }
        if error is NIOConnectionError { return true }
        if case ChannelError.connectTimeout = error { return true }
        if let error = error as? IOError {
            return [ECONNREFUSED, ENETUNREACH, EHOSTUNREACH, EADDRNOTAVAIL].contains(error.errnoCode)
        }
        return false
    }
}
