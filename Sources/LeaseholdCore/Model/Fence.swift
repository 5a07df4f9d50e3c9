/// An entry of the fence feed: "reject every I/O of `session` carrying a token up to
/// `maxToken`".
///
/// Lifecycle: appended when a session is evicted and pushed to every connected storage
/// target. It is *resolved* once every registered target has acknowledged its revision
/// (at once when no target is registered). Until `releaseDelay` after resolution it
/// keeps busy every block the session's grants referenced (`blocks`), including blocks
/// still mapped that a later mapping change cuts; then it is dropped from the feed.
public struct Fence: Hashable, Sendable, Codable {
    public var revision: FenceRevision
    public var session: SessionID
    public var identity: String
    public var maxToken: FencingToken
    public var reason: EvictionReason
    /// Physical blocks the session's pins and layouts referenced, coalesced.
    public var blocks: [BlockRange]

    public init(
        revision: FenceRevision,
        session: SessionID,
        identity: String,
        maxToken: FencingToken,
        reason: EvictionReason,
        blocks: [BlockRange]
    ) {
        self.revision = revision
        self.session = session
        self.identity = identity
        self.maxToken = maxToken
        self.reason = reason
        self.blocks = blocks
    }
}

/// Why a session was evicted.
public enum EvictionReason: String, Hashable, Sendable, Codable {
    /// Its TTL ran out without renewal.
    case expired
    /// An admin evicted it.
    case admin
    /// One of its recalls passed its deadline.
    case missedRecall
}

/// A storage target: an identity with the `target` role that follows the fence feed.
public struct StorageTarget: Hashable, Sendable, Codable {
    /// The target's identity (certificate name).
    public var name: String
    /// Highest fence revision it acknowledged.
    public var acknowledged: FenceRevision

    public init(name: String, acknowledged: FenceRevision) {
        self.name = name
        self.acknowledged = acknowledged
    }
}
