import Crypto
import Foundation
import SwiftASN1
import X509

/// A certificate and its private key, as PEM text.
public struct CertificateFiles: Sendable, Hashable {
    public var certificatePEM: String
    public var privateKeyPEM: String

    public init(certificatePEM: String, privateKeyPEM: String) {
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
    }

    /// Writes the certificate (mode 0644) and the key (mode 0600).
    public func write(certificate certificatePath: String, key keyPath: String) throws {
        try TLSFiles.write(self.certificatePEM, to: certificatePath, mode: 0o644)
        try TLSFiles.write(self.privateKeyPEM, to: keyPath, mode: 0o600)
    }
}

/// A small certificate authority for Leasehold's mutual TLS: it signs the server's
/// certificate and the clients' (whose common name is their identity). P-256 keys,
/// ECDSA with SHA-256.
public struct CertificateAuthority: Sendable {
    public let certificate: Certificate
    let key: Certificate.PrivateKey

    /// A new self-signed CA.
    /// - Parameters:
    ///   - commonName: the CA's name.
    ///   - validity: how long it is valid from now.
    public static func create(commonName: String, validity: Duration = .seconds(10 * 365 * 86_400)) throws -> CertificateAuthority {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let name = try DistinguishedName { CommonName(commonName) }
        let now = Date()
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-60),
            notValidAfter: now.addingTimeInterval(TimeInterval(validity.components.seconds)),
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: key.publicKey)
            },
            issuerPrivateKey: key
        )
        return CertificateAuthority(certificate: certificate, key: key)
    }

    /// Loads a CA from PEM text.
    public init(certificatePEM: String, privateKeyPEM: String) throws {
        self.certificate = try Certificate(pemEncoded: certificatePEM)
        self.key = try Certificate.PrivateKey(pemEncoded: privateKeyPEM)
    }

    init(certificate: Certificate, key: Certificate.PrivateKey) {
        self.certificate = certificate
        self.key = key
    }

    /// The CA as PEM text.
    public func files() throws -> CertificateFiles {
        CertificateFiles(certificatePEM: try self.certificate.serializeAsPEM().pemString, privateKeyPEM: try self.key.serializeAsPEM().pemString)
    }

    /// What a leaf certificate is for.
    public enum Usage: Sendable {
        /// A server: its names go into the subject alternative names.
        case server(dnsNames: [String], ipAddresses: [String])
        /// A client: the common name is its Leasehold identity.
        case client
        /// Both ends, with the names of a server: an etcd member, which also dials itself
        /// (its JSON gateway) with the same certificate.
        case peer(dnsNames: [String], ipAddresses: [String])
    }

    /// Signs a new leaf certificate with a fresh key.
    /// - Parameters:
    ///   - commonName: the subject's common name (a client's identity).
    ///   - usage: server or client.
    ///   - notValidBefore: start of validity (default: a minute ago).
    ///   - notValidAfter: end of validity (default: a year from now).
    /// - Throws: for an IP address that is not IPv4 or IPv6 text.
    public func issue(
        commonName: String,
        usage: Usage,
        notValidBefore: Date = Date().addingTimeInterval(-60),
        notValidAfter: Date = Date().addingTimeInterval(365 * 86_400)
    ) throws -> CertificateFiles {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let subject = try DistinguishedName { CommonName(commonName) }
        let extensions: Certificate.Extensions
        switch usage {
        case .server(let dnsNames, let ipAddresses), .peer(let dnsNames, let ipAddresses):
            var names = dnsNames.map(GeneralName.dnsName)
            for address in ipAddresses { names.append(.ipAddress(ASN1OctetString(contentBytes: try Self.addressBytes(address)[...]))) }
            let alternativeNames = names
            let purposes: [ExtendedKeyUsage.Usage] = if case .peer = usage { [.serverAuth, .clientAuth] } else { [.serverAuth] }
            extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                try ExtendedKeyUsage(purposes)
                SubjectAlternativeNames(alternativeNames)
                try AuthorityKeyIdentifier(keyIdentifier: self.certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
            }
        case .client:
            extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.clientAuth])
                try AuthorityKeyIdentifier(keyIdentifier: self.certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
            }
        }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: key.publicKey,
            notValidBefore: notValidBefore,
            notValidAfter: notValidAfter,
            issuer: self.certificate.subject,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions,
            issuerPrivateKey: self.key
        )
        return CertificateFiles(certificatePEM: try certificate.serializeAsPEM().pemString, privateKeyPEM: try key.serializeAsPEM().pemString)
    }

    /// The bytes of an IPv4 or IPv6 address in text form.
    static func addressBytes(_ text: String) throws -> [UInt8] {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        throw CertificateError.badAddress(text)
    }
}

/// Errors of certificate handling.
public enum CertificateError: Error, CustomStringConvertible {
    case badAddress(String)
    case missingFile(String)
    case cannotWrite(String)
    case badIdentity(String)

    public var description: String {
        switch self {
        case .badAddress(let text): "'\(text)' is not an IPv4 or IPv6 address"
        case .missingFile(let path): "the file \(path) does not exist"
        case .cannotWrite(let path): "cannot write \(path)"
        case .badIdentity(let name): "'\(name)' is not a valid identity: use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'"
        }
    }
}
