import Foundation

/// Where a data directory keeps its TLS material, and how it is written.
///
/// Auto-TLS (like etcd's `--auto-tls`): a first start without configured certificates
/// creates `tls/` in the data directory with a development CA, a server certificate for
/// `localhost` and `127.0.0.1`, and an `admin` client certificate. `leaseholdctl` and the
/// client library find them there by default. Further client certificates are issued
/// from the same CA into `tls/clients/NAME.pem` and `NAME-key.pem`.
public struct TLSFiles: Sendable, Hashable {
    /// The `tls` directory.
    public var directory: String

    public init(dataDirectory: String) {
        self.directory = (dataDirectory as NSString).appendingPathComponent("tls")
    }

    public var caCertificate: String { self.path("ca.pem") }
    public var caKey: String { self.path("ca-key.pem") }
    public var serverCertificate: String { self.path("server.pem") }
    public var serverKey: String { self.path("server-key.pem") }
    public var adminCertificate: String { self.clientCertificate("admin") }
    public var adminKey: String { self.clientKey("admin") }

    /// A client's certificate path.
    public func clientCertificate(_ name: String) -> String { self.path("clients/\(name).pem") }
    /// A client's key path.
    public func clientKey(_ name: String) -> String { self.path("clients/\(name)-key.pem") }

    func path(_ name: String) -> String { (self.directory as NSString).appendingPathComponent(name) }

    /// Whether the development CA exists.
    public var exists: Bool { FileManager.default.fileExists(atPath: self.caCertificate) }

    /// Creates the development CA, the server certificate and the `admin` client
    /// certificate, unless the CA exists already.
    /// - Returns: whether anything was created.
    @discardableResult
    public func ensureDevelopmentCertificates() throws -> Bool {
        guard !self.exists else { return false }
        try FileManager.default.createDirectory(atPath: self.path("clients"), withIntermediateDirectories: true)
        let authority = try CertificateAuthority.create(commonName: "Leasehold development CA")
        let server = try authority.issue(commonName: "leaseholdd", usage: .server(dnsNames: ["localhost"], ipAddresses: ["127.0.0.1", "::1"]))
        try server.write(certificate: self.serverCertificate, key: self.serverKey)
        let admin = try authority.issue(commonName: "admin", usage: .client)
        try admin.write(certificate: self.adminCertificate, key: self.adminKey)
        // The CA last: its presence means the set is complete.
        try authority.files().write(certificate: self.caCertificate, key: self.caKey)
        return true
    }

    /// Issues a client certificate for identity `name` from the development CA.
    /// - Returns: the certificate and key paths.
    public func issueClient(_ name: String, validity: Duration = .seconds(365 * 86_400)) throws -> (certificate: String, key: String) {
        try Self.validateIdentity(name)
        guard self.exists else { throw CertificateError.missingFile(self.caCertificate) }
        let authority = try CertificateAuthority(
            certificatePEM: try String(contentsOfFile: self.caCertificate, encoding: .utf8),
            privateKeyPEM: try String(contentsOfFile: self.caKey, encoding: .utf8)
        )
        try FileManager.default.createDirectory(atPath: self.path("clients"), withIntermediateDirectories: true)
        let files = try authority.issue(
            commonName: name,
            usage: .client,
            notValidAfter: Date().addingTimeInterval(TimeInterval(validity.components.seconds))
        )
        try files.write(certificate: self.clientCertificate(name), key: self.clientKey(name))
        return (self.clientCertificate(name), self.clientKey(name))
    }

    /// Issues a certificate for both ends (an etcd member on 127.0.0.1 and localhost) from
    /// the development CA, as `peers/NAME.pem` and `peers/NAME-key.pem`.
    /// - Returns: the certificate and key paths.
    public func issuePeer(_ name: String, validity: Duration = .seconds(365 * 86_400)) throws -> (certificate: String, key: String) {
        try Self.validateIdentity(name)
        guard self.exists else { throw CertificateError.missingFile(self.caCertificate) }
        let authority = try CertificateAuthority(
            certificatePEM: try String(contentsOfFile: self.caCertificate, encoding: .utf8),
            privateKeyPEM: try String(contentsOfFile: self.caKey, encoding: .utf8)
        )
        try FileManager.default.createDirectory(atPath: self.path("peers"), withIntermediateDirectories: true)
        let files = try authority.issue(
            commonName: name,
            usage: .peer(dnsNames: ["localhost"], ipAddresses: ["127.0.0.1", "::1"]),
            notValidAfter: Date().addingTimeInterval(TimeInterval(validity.components.seconds))
        )
        let paths = (self.path("peers/\(name).pem"), self.path("peers/\(name)-key.pem"))
        try files.write(certificate: paths.0, key: paths.1)
        return paths
    }

    /// An identity names a file: letters, digits, `.`, `_` and `-`, not starting with `.`.
    public static func validateIdentity(_ name: String) throws {
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2E || byte == 0x5F || byte == 0x2D
        }
        guard !name.isEmpty, name.utf8.count <= 64, allowed, !name.hasPrefix(".") else { throw CertificateError.badIdentity(name) }
    }

    /// Writes `text` to `path` atomically with the given permissions.
    static func write(_ text: String, to path: String, mode: Int) throws {
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: mode]) else {
            throw CertificateError.cannotWrite(temporary)
        }
        guard rename(temporary, path) == 0 else { throw CertificateError.cannotWrite(path) }
    }
}
