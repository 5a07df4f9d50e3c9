import ArgumentParser
import Foundation
import LeaseholdCertificates

struct Certs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Certificates for operators who do not use auto-TLS.",
        subcommands: [Init.self, Issue.self]
    )

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a CA, a server certificate and an admin client certificate in a directory.",
            discussion: "Writes DIR/tls/ca.pem, server.pem and clients/admin.pem (with keys); start leaseholdd with --data-dir DIR, or point --cert/--key/--client-ca at them."
        )
        @Option(help: "Directory (default ./leasehold-data).") var dataDir: String = "./leasehold-data"

        func run() throws {
            let files = TLSFiles(dataDirectory: self.dataDir)
            if try files.ensureDevelopmentCertificates() {
                print("created \(files.caCertificate), \(files.serverCertificate), \(files.adminCertificate)")
            } else {
                print("\(files.caCertificate) exists; nothing created")
            }
        }
    }

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a client certificate for identity NAME from the directory's CA.",
            discussion: "Roles live in the server's configuration: --admin and --target print the flag to add there."
        )
        @Argument(help: "The identity (certificate common name).") var name: String
        @Option(help: "Directory holding tls/ca.pem (default ./leasehold-data).") var dataDir: String = "./leasehold-data"
        @Flag(help: "The identity is meant to be an admin.") var admin = false
        @Flag(help: "The identity is meant to be a storage target.") var target = false
        @Option(help: "Validity (default 8760h).") var validity: String = "8760h"

        func run() throws {
            let paths = try TLSFiles(dataDirectory: self.dataDir).issueClient(self.name, validity: try parseDuration(self.validity))
            print("certificate: \(paths.certificate)\nkey:         \(paths.key)")
            if self.admin { print("give it the admin role: leaseholdd --admin \(self.name) (or admin = ... in the config file)") }
            if self.target { print("give it the target role: leaseholdd --target \(self.name) (or target = ... in the config file)") }
        }
    }
}
