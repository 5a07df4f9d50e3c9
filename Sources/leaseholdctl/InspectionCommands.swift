import ArgumentParser
import Foundation
import LeaseholdClient

// MARK: - Inspection (admin role)

/// Every entry of a paged listing.
func allPages<T>(_ fetch: (Page) async throws -> [T], id: (T) -> UInt64) async throws -> [T] {
    var all: [T] = []
    var page = Page(after: 0, limit: 1_000)
    while true {
        let batch = try await fetch(page)
        all += batch
        guard batch.count == page.limit, let last = batch.last else { return all }
        page.after = id(last)
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Epoch, uptime, counts and volume figures.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let status = try await self.connection.run { try await $0.status() }
        let v = status.volume
        // A standby answers from the log it applied: say from which position.
        let reflects: [(String, String)] = status.reflects.map { [("standby, as of log", "\($0)")] } ?? []
        let reflectsJSON: [(String, JSONValue)] = status.reflects.map { [("reflectsLog", .object([("term", .number($0.term)), ("index", .number($0.index))]))] } ?? []
        self.connection.output.show(
            fields: reflects + [
                ("epoch", "\(v.epoch)"), ("uptime", Text.duration(status.uptime)), ("sessions", "\(v.sessions)"), ("pins", "\(v.pins)"),
                ("layouts", "\(v.layouts)"), ("inodes", "\(v.inodes) (\(v.quarantineInodes) quarantine)"),
                ("block size", "\(v.blockSize)"), ("blocks", "\(v.blockCount)"), ("free", "\(v.freeBlocks) in \(v.freeExtents) extents"),
                ("largest free extent", "\(v.largestFreeExtent)"), ("mapped", "\(v.mappedBlocks)"), ("busy", "\(v.busyBlocks)"),
                ("quarantined", "\(v.quarantinedBlocks)"), ("recalls outstanding", "\(v.outstandingRecalls)"),
                ("breaks pending", "\(v.pendingBreaks)"), ("targets", "\(v.targets)"), ("unresolved fences", "\(v.unresolvedFences)"),
                ("fence revision", "\(v.fenceRevision)"), ("event revision", "\(v.eventRevision)"), ("pin setting", v.pinSetting.rawValue),
            ],
            json: .object(reflectsJSON + [
                ("epoch", .number(v.epoch)), ("uptimeSeconds", .seconds(status.uptime)), ("sessions", .number(UInt64(v.sessions))),
                ("pins", .number(UInt64(v.pins))), ("layouts", .number(UInt64(v.layouts))), ("inodes", .number(UInt64(v.inodes))),
                ("quarantineInodes", .number(UInt64(v.quarantineInodes))), ("blockSize", .number(v.blockSize)), ("blockCount", .number(v.blockCount)),
                ("freeBlocks", .number(v.freeBlocks)), ("freeExtents", .number(UInt64(v.freeExtents))), ("largestFreeExtent", .number(v.largestFreeExtent)),
                ("mappedBlocks", .number(v.mappedBlocks)), ("busyBlocks", .number(v.busyBlocks)), ("quarantinedBlocks", .number(v.quarantinedBlocks)),
                ("outstandingRecalls", .number(UInt64(v.outstandingRecalls))), ("pendingBreaks", .number(UInt64(v.pendingBreaks))),
                ("targets", .number(UInt64(v.targets))), ("unresolvedFences", .number(UInt64(v.unresolvedFences))),
                ("fenceRevision", .number(v.fenceRevision.rawValue)), ("eventRevision", .number(v.eventRevision.rawValue)),
                ("pinSetting", .string(v.pinSetting.rawValue)),
            ])
        )
    }
}

struct Busy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Busy extents: who holds them, which targets they wait for, when they may go free."
    )
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let extents = try await self.connection.run { client in
            try await allPages({ try await client.busyExtents($0) }, id: { $0.range.end })
        }
        let rows = extents.map { extent -> [String] in
            let pins = extent.pins.map { "pin \($0.pin) (session \($0.session), \($0.identity), \(Text.kind($0.kind)))" }
            let fences = extent.fences.map { fence in
                "fence \(fence.revision) (session \(fence.session), \(fence.identity))"
                    + (fence.waitingForTargets.isEmpty ? "" : " waits for \(fence.waitingForTargets.joined(separator: ","))")
            }
            let held = pins + fences
            let state = extent.quarantine.map { "quarantined in inode \($0)" } ?? (held.isEmpty ? "release delay" : "held")
            return [Text.blocks(extent.range), state, held.isEmpty ? "-" : held.joined(separator: "; "), Text.duration(extent.age), Text.duration(extent.releaseIn)]
        }
        self.connection.output.show(
            ["BLOCKS", "STATE", "HELD BY", "AGE", "FREE IN"],
            rows,
            json: .array(extents.map(Self.json))
        )
    }

    static func json(_ extent: BusyExtentInfo) -> JSONValue {
        .object([
            ("start", .number(extent.range.start)), ("count", .number(extent.range.count)),
            ("quarantineInode", .optional(extent.quarantine?.rawValue)),
            ("pins", .array(extent.pins.map { pin in
                .object([
                    ("pin", .number(pin.pin.rawValue)), ("session", .number(pin.session.rawValue)), ("identity", .string(pin.identity)),
                    ("kind", .string(pin.kind.isLongTerm ? "longTerm" : "shortTerm")),
                ])
            })),
            ("fences", .array(extent.fences.map { fence in
                .object([
                    ("revision", .number(fence.revision.rawValue)), ("session", .number(fence.session.rawValue)), ("identity", .string(fence.identity)),
                    ("waitingForTargets", .array(fence.waitingForTargets.map(JSONValue.string))), ("releaseInSeconds", .seconds(fence.releaseIn)),
                ])
            })),
            ("ageSeconds", .seconds(extent.age)), ("releaseInSeconds", .seconds(extent.releaseIn)),
        ])
    }
}

struct Free: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Free extents in block order (with busy, pins and inodes: every block accounted for).")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let extents = try await self.connection.run { client in try await allPages({ try await client.freeExtents($0) }, id: { $0.end }) }
        self.connection.output.show(
            ["BLOCKS", "COUNT"],
            extents.map { [Text.blocks($0), "\($0.count)"] },
            json: .array(extents.map { .object([("start", .number($0.start)), ("count", .number($0.count))]) })
        )
    }
}

struct Pins: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Live pins.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let pins = try await self.connection.run { client in try await allPages({ try await client.pins($0) }, id: { $0.pin.rawValue }) }
        self.connection.output.show(
            ["PIN", "SESSION", "IDENTITY", "INODE", "RANGES", "KIND", "TOKEN", "BLOCKS", "BUSY", "EXPIRES IN", "RECALL", "PHYSICAL"],
            pins.map {
                [
                    "\($0.pin)", "\($0.session)", $0.identity, "\($0.inode)", $0.ranges.map(Text.bytes).joined(separator: ","), Text.kind($0.kind), "\($0.token)",
                    "\($0.blocks)", "\($0.busyBlocks)", Text.duration($0.expiresIn), $0.recall.map { "\($0)" } ?? "-",
                    $0.extents.map { "\($0.physicalBlock)+\($0.count)" }.joined(separator: ","),
                ]
            },
            json: .array(pins.map { pin in
                .object([
                    ("pin", .number(pin.pin.rawValue)), ("session", .number(pin.session.rawValue)), ("identity", .string(pin.identity)),
                    ("inode", .number(pin.inode.rawValue)),
                    ("ranges", .array(pin.ranges.map { .object([("offset", .number($0.offset)), ("length", .number($0.length))]) })),
                    ("kind", .string(pin.kind.isLongTerm ? "longTerm" : "shortTerm")), ("token", .number(pin.token.rawValue)),
                    ("blocks", .number(pin.blocks)), ("busyBlocks", .number(pin.busyBlocks)), ("expiresInSeconds", .seconds(pin.expiresIn)),
                    ("recall", .optional(pin.recall?.rawValue)),
                    ("extents", .array(pin.extents.map {
                        .object([("fileBlock", .number($0.fileBlock)), ("physicalBlock", .number($0.physicalBlock)), ("count", .number($0.count))])
                    })),
                ])
            })
        )
    }
}

struct Layouts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Layouts and their recall state.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let layouts = try await self.connection.run { client in
            try await allPages({ try await client.layouts($0) }, id: { $0.stateID.id.rawValue })
        }
        func state(_ layout: LayoutInfo) -> String {
            switch layout.state {
            case .granted: "granted"
            case .recalling(let deadlineIn, let prolonged): "recalling (\(Text.duration(deadlineIn)) left\(prolonged ? ", prolonged" : ""))"
            }
        }
        self.connection.output.show(
            ["LAYOUT", "SESSION", "IDENTITY", "INODE", "IOMODE", "BLOCKS", "TOKEN", "STATE"],
            layouts.map {
                ["\($0.stateID)", "\($0.session)", $0.identity, "\($0.inode)", $0.iomode.rawValue, $0.ranges.map(Text.blocks).joined(separator: ","), "\($0.token)", state($0)]
            },
            json: .array(layouts.map { layout in
                var recall: JSONValue = .null
                if case .recalling(let deadlineIn, let prolonged) = layout.state {
                    recall = .object([("deadlineInSeconds", .seconds(deadlineIn)), ("prolonged", .bool(prolonged))])
                }
                return .object([
                    ("layout", .number(layout.stateID.id.rawValue)), ("seqid", .number(UInt64(layout.stateID.seqid))),
                    ("session", .number(layout.session.rawValue)), ("identity", .string(layout.identity)), ("inode", .number(layout.inode.rawValue)),
                    ("iomode", .string(layout.iomode.rawValue)),
                    ("ranges", .array(layout.ranges.map { .object([("start", .number($0.start)), ("count", .number($0.count))]) })),
                    ("token", .number(layout.token.rawValue)), ("recall", recall),
                ])
            })
        )
    }
}

struct Sessions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Live sessions.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let sessions = try await self.connection.run { client in
            try await allPages({ try await client.sessions($0) }, id: { $0.info.session.rawValue })
        }
        self.connection.output.show(
            ["SESSION", "IDENTITY", "NAME", "TTL", "EXPIRES IN", "PINS", "LAYOUTS", "UNACKED PUSHES", "CONNECTED"],
            sessions.map {
                [
                    "\($0.info.session)", $0.info.identity, $0.info.name, Text.duration($0.info.ttl), Text.duration($0.info.expiresIn), "\($0.info.pins)",
                    "\($0.info.layouts)", "\($0.info.unacknowledgedPushes)", $0.connected ? "yes" : "no",
                ]
            },
            json: .array(sessions.map { listing in
                let info = listing.info
                return .object([
                    ("session", .number(info.session.rawValue)), ("identity", .string(info.identity)), ("name", .string(info.name)),
                    ("ttlSeconds", .seconds(info.ttl)), ("expiresInSeconds", .seconds(info.expiresIn)), ("pins", .number(UInt64(info.pins))),
                    ("layouts", .number(UInt64(info.layouts))), ("unacknowledgedPushes", .number(UInt64(info.unacknowledgedPushes))),
                    ("lastPush", .number(info.lastPush)), ("connected", .bool(listing.connected)),
                ])
            })
        )
    }
}

struct Targets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Storage targets with their acknowledged fence revision and lag.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let targets = try await self.connection.run { try await $0.targets() }
        self.connection.output.show(
            ["TARGET", "ACKNOWLEDGED", "LAG"],
            targets.map { [$0.name, "\($0.acknowledged)", "\($0.lag)"] },
            json: .array(targets.map { .object([("name", .string($0.name)), ("acknowledged", .number($0.acknowledged.rawValue)), ("lag", .number($0.lag))]) })
        )
    }
}

struct Inodes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Files and quarantine inodes.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let inodes = try await self.connection.run { client in try await allPages({ try await client.inodes($0) }, id: { $0.inode.rawValue }) }
        self.connection.output.show(
            ["INODE", "KIND", "GENERATION", "SIZE", "MAPPED BLOCKS", "EXTENTS", "BREAKS"],
            inodes.map { ["\($0.inode)", Self.kind($0.kind), "\($0.generation)", "\($0.size)", "\($0.mappedBlocks)", "\($0.extents)", "\($0.pendingBreaks)"] },
            json: .array(inodes.map(Self.json))
        )
    }

    static func kind(_ kind: InodeKind) -> String {
        switch kind {
        case .regular: "file"
        case .quarantine(let source): "quarantine of \(source.inode)@\(source.fileOffset)\(source.keep ? " (kept)" : "")"
        }
    }

    static func json(_ info: InodeInfo) -> JSONValue {
        var quarantine: JSONValue = .null
        if case .quarantine(let source) = info.kind {
            quarantine = .object([
                ("inode", .number(source.inode.rawValue)), ("generation", .number(source.generation)), ("fileOffset", .number(source.fileOffset)),
                ("keep", .bool(source.keep)),
            ])
        }
        return .object([
            ("inode", .number(info.inode.rawValue)), ("generation", .number(info.generation)), ("size", .number(info.size)), ("quarantine", quarantine),
            ("mappedBlocks", .number(info.mappedBlocks)), ("extents", .number(UInt64(info.extents))), ("pendingBreaks", .number(UInt64(info.pendingBreaks))),
        ])
    }
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the invariant checker on the server; exit 3 on any violation.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let violations = try await self.connection.run { try await $0.checkInvariants() }
        if self.connection.json {
            print(JSONValue.object([
                ("clean", .bool(violations.isEmpty)),
                ("violations", .array(violations.map { .object([("invariant", .number(UInt64($0.invariant))), ("message", .string($0.message))]) })),
            ]).text)
        } else if violations.isEmpty {
            print("clean: all six invariants hold")
        } else {
            for violation in violations { print("invariant \(violation.invariant): \(violation.message)") }
        }
        if !violations.isEmpty { throw ExitCode(Exit.violations) }
    }
}

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print admin events as they happen, from a revision.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Start after this event revision (default 0: every event the server's durable history keeps). A revision older than the history fails with compacted, naming the oldest kept.")
    var fromRevision: UInt64 = 0

    func run() async throws {
        try await self.connection.run { client in
            for try await event in client.watchEvents(after: EventRevision(rawValue: self.fromRevision)) {
                if self.connection.json {
                    print(JSONValue.object([("revision", .number(event.revision.rawValue)), ("event", .string("\(event.kind)"))]).text)
                } else {
                    print("\(event.revision)  \(event.kind)")
                }
                flushOutput()
            }
        }
    }
}

struct Snapshot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Online snapshots of the server's database.", subcommands: [Save.self])

    struct Save: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Save a consistent snapshot to FILE (a database that starts a server).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Where to write it.") var file: String

        func run() async throws {
            let size = try await self.connection.run { try await $0.snapshot(to: self.file) }
            self.connection.output.show(fields: [("snapshot", self.file), ("bytes", "\(size)")], json: .object([("file", .string(self.file)), ("bytes", .number(size))]))
        }
    }
}
