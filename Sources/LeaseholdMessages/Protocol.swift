/// Protocol version constants (see docs/protocol.md, "Versioning").
public enum WireProtocol {
    /// A peer refuses a major version it does not speak.
    public static let major: UInt32 = 1
    /// Additions a peer may ignore.
    public static let minor: UInt32 = 0
    /// The software version reported in `HelloOk`.
    public static let serverVersion = "leasehold 0.4.0"
}

/// Short names for the generated messages used across modules.
public typealias WireEnvelope = Leasehold_V1_Envelope
public typealias WireRequest = Leasehold_V1_Request
public typealias WireResponse = Leasehold_V1_Response
public typealias WirePush = Leasehold_V1_Push
