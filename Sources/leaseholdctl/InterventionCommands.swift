import ArgumentParser
import Foundation
import LeaseholdClient

// MARK: - Intervention (admin role)

struct Evict: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evict a session: drop its pins and layouts and fence its tokens.",
        discussion: "Its blocks stay busy until every storage target acknowledged the fence and the release delay passed."
    )
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The session id.") var session: UInt64
    @Flag(help: "Do not ask for confirmation.") var yes = false

    func run() async throws {
        try confirm("Evict session \(self.session)? Its DMA must have stopped; its tokens will be fenced.", yes: self.yes)
        let fence = try await self.connection.run { try await $0.evict(SessionID(rawValue: self.session)) }
        self.connection.output.show(
            fields: [("evicted", "session \(fence.session) (\(fence.identity))"), ("fence revision", "\(fence.revision)"), ("max token", "\(fence.maxToken)")],
            json: .object([
                ("session", .number(fence.session.rawValue)), ("identity", .string(fence.identity)), ("fenceRevision", .number(fence.revision.rawValue)),
                ("maxToken", .number(fence.maxToken.rawValue)),
            ])
        )
    }
}

struct Quarantine: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Kept quarantine inodes.", subcommands: [Delete.self])

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a kept quarantine inode; its blocks follow the busy release rule.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The quarantine inode id.") var inode: UInt64
        @Flag(help: "Do not ask for confirmation.") var yes = false

        func run() async throws {
            try confirm("Delete quarantine inode \(self.inode)? Its blocks will be reused once nothing holds them.", yes: self.yes)
            let blocks = try await self.connection.run { try await $0.deleteQuarantineInode(InodeID(rawValue: self.inode)) }
            self.connection.output.show(
                fields: [("deleted", "quarantine inode \(self.inode)"), ("blocks", "\(blocks)")],
                json: .object([("inode", .number(self.inode)), ("blocks", .number(blocks))])
            )
        }
    }
}

struct Release: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Free busy blocks at once, whatever holds them (logged and evented).",
        discussion: "EXTENT is START+COUNT in volume blocks, as `leaseholdctl busy` prints it. Only for blocks no device can still write into."
    )
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Required: this bypasses every safety rule.") var force = false
    @Argument(help: "The extent, START+COUNT.") var extent: String
    @Flag(help: "Do not ask for confirmation.") var yes = false

    func run() async throws {
        guard self.force else { throw ValidationError("release frees blocks regardless of pins and fences; pass --force to do it") }
        let parts = self.extent.split(separator: "+")
        guard parts.count == 2, let start = UInt64(parts[0]), let count = UInt64(parts[1]), count > 0, start <= UInt64.max - count else {
            throw ValidationError("extent '\(self.extent)' is not START+COUNT")
        }
        try confirm("Force-release blocks \(self.extent)? A device still writing into them would corrupt their next owner.", yes: self.yes)
        let blocks = try await self.connection.run { try await $0.forceRelease(BlockRange(start: start, count: count)) }
        self.connection.output.show(fields: [("released", "\(blocks) blocks")], json: .object([("released", .number(blocks))]))
    }
}

// MARK: - Storage targets

struct Target: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Storage targets.", subcommands: [Deregister.self, Run.self])

    struct Deregister: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Forget a target that will never acknowledge again (admin).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The target's identity.") var name: String
        @Flag(help: "Do not ask for confirmation.") var yes = false

        func run() async throws {
            try confirm("Deregister target '\(self.name)'? Fences stop waiting for it.", yes: self.yes)
            try await self.connection.run { try await $0.deregisterTarget(self.name) }
            self.connection.output.show(fields: [("deregistered", self.name)], json: .object([("deregistered", .string(self.name))]))
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A reference storage target: follow the fence feed, print each fence, acknowledge it.",
            discussion: "Runs until interrupted. Needs an identity with the target role (--identity NAME with development certificates)."
        )
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Wait this long before acknowledging each fence.") var ackDelay: String = "0s"
        @Option(help: "Start after this fence revision.") var fromRevision: UInt64 = 0

        func run() async throws {
            let delay = try parseDuration(self.ackDelay)
            try await self.connection.run { client in
                if !self.connection.json { print("following the fence feed as '\(client.server.identity)'") }
                flushOutput()
                for try await fence in client.fenceFeed(after: FenceRevision(rawValue: self.fromRevision)) {
                    let blocks = fence.blocks.map(Text.blocks).joined(separator: ",")
                    if self.connection.json {
                        print(JSONValue.object([
                            ("revision", .number(fence.revision.rawValue)), ("session", .number(fence.session.rawValue)), ("identity", .string(fence.identity)),
                            ("maxToken", .number(fence.maxToken.rawValue)), ("reason", .string(fence.reason.rawValue)), ("blocks", .string(blocks)),
                        ]).text)
                    } else {
                        print("fence \(fence.revision): session \(fence.session) (\(fence.identity)) tokens <= \(fence.maxToken), \(fence.reason.rawValue), blocks \(blocks)")
                    }
                    flushOutput()
                    if delay > .zero { try await Task.sleep(for: delay) }
                    try await client.acknowledgeFence(fence.revision)
                    if !self.connection.json { print("acknowledged \(fence.revision)") }
                    flushOutput()
                }
            }
        }
    }
}
