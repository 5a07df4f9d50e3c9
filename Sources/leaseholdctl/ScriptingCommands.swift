import ArgumentParser
import Foundation
import LeaseholdClient
import Synchronization

// MARK: - Scripting operations (any identity)
//
// Each command opens a session (or resumes one with --session/--secret), does its work
// and closes a session it opened, which also releases what the session held. Commands
// that hold something (`pin --hold`, `layout get --hold`) print the session id and
// secret first so another invocation can act on the same session, and keep the session
// alive until the hold ends or the process is interrupted.

/// `OFFSET+LENGTH` in bytes.
func parseByteRange(_ text: String) throws -> ByteRange {
    let parts = text.split(separator: "+")
    guard parts.count == 2, let offset = UInt64(parts[0]), let length = UInt64(parts[1]) else {
        throw ValidationError("'\(text)' is not OFFSET+LENGTH in bytes")
    }
    return ByteRange(offset: offset, length: length)
}

/// The pin policy of a truncate or punch, and the generation it expects.
struct BreakOptions: ParsableArguments {
    @Option(help: "busy, wait, fail, quarantine or quarantine-keep (default busy).") var policy: String = "busy"
    @Option(help: "How long `wait` waits (default 10s).") var timeout: String?
    @Option(help: "Fail with staleGeneration unless the inode is at this generation.") var generation: UInt64?

    func truncatePolicy() throws -> TruncatePolicy {
        switch self.policy {
        case "busy": return .busy
        case "fail": return .fail
        case "wait": return .wait(timeout: try parseDuration(self.timeout ?? "10s"))
        case "quarantine": return .quarantine(keep: false)
        case "quarantine-keep": return .quarantine(keep: true)
        default: throw ValidationError("policy '\(self.policy)' is not busy, wait, fail, quarantine or quarantine-keep")
        }
    }
}

/// Set by SIGINT or SIGTERM while a command holds a session.
let interrupted = Atomic<Bool>(false)

/// Checks a `--hold` value: a duration or `forever`.
func validateHold(_ text: String?) throws {
    guard let text, text != "forever" else { return }
    _ = try parseDuration(text)
}

/// Holds `session` until the duration passes (`forever`: no limit), SIGINT/SIGTERM
/// arrives or the session ends, printing what happens to it and answering recalls with
/// `answer`. A session that ended on the server (expired, evicted) exits with 10 + the
/// error's code.
func holdSession(
    _ session: LeaseholdSession,
    for text: String,
    answer: @escaping @Sendable (SessionEvent) async -> Void
) async throws {
    for number in [SIGINT, SIGTERM] {
        signal(number) { _ in interrupted.store(true, ordering: .relaxed) }
    }
    let ended = Atomic<UInt32>(0)
    let events = Task {
        for await event in session.events {
            switch event {
            case .jeopardy:
                print("jeopardy: no renewal in time, stop DMA")
            case .renewed:
                print("renewed")
            case .fenced(let notice):
                print("fenced: session evicted (\(notice.reason.rawValue)); tokens up to \(notice.maxToken) are fenced")
            case .ended(let error):
                print("session ended: " + (error.map { "\($0.code.name): \($0.message)" } ?? "closed"))
                ended.store(error.map { 10 + $0.code.rawValue } ?? 1, ordering: .relaxed)
            default:
                await answer(event)
            }
            flushOutput()
        }
    }
    let deadline = text == "forever" ? nil : ContinuousClock.now + (try parseDuration(text))
    while !interrupted.load(ordering: .relaxed), ended.load(ordering: .relaxed) == 0 {
        if let deadline, ContinuousClock.now >= deadline { break }
        try? await Task.sleep(for: .milliseconds(20))
    }
    let code = ended.load(ordering: .relaxed)
    if code == 0 {
        events.cancel()
        try await session.close()
    } else {
        // Give the event printer a moment to finish its line.
        try? await Task.sleep(for: .milliseconds(50))
        throw ExitCode(Int32(code))
    }
}

/// Flushes standard output (lines must reach a pipe as they happen).
func flushOutput() {
    fflush(nil)
}

func sessionFields(_ session: LeaseholdSession) -> [(String, String)] {
    [("session", "\(session.id)"), ("secret", SecretText.format(session.secret))]
}

func sessionJSON(_ session: LeaseholdSession) -> [(String, JSONValue)] {
    [("session", .number(session.id.rawValue)), ("secret", .string(SecretText.format(session.secret)))]
}

struct Inode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Files.", subcommands: [Create.self, Show.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an empty file; prints its inode id.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var session: SessionOptions

        func run() async throws {
            let inode = try await self.connection.run { client in
                try await self.session.perform(client, name: "leaseholdctl inode create") { try await $0.createInode() }
            }
            self.connection.output.show(fields: [("inode", "\(inode)")], json: .object([("inode", .number(inode.rawValue))]))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One inode's extent map (unwritten runs marked), layouts and pins (admin).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The inode id.") var inode: UInt64

        func run() async throws {
            let detail = try await self.connection.run { try await $0.inode(InodeID(rawValue: self.inode)) }
            if self.connection.json {
                print(JSONValue.object([
                    ("info", Inodes.json(detail.info)),
                    ("extents", .array(detail.extents.map {
                        .object([("fileBlock", .number($0.fileBlock)), ("physicalBlock", .number($0.physicalBlock)), ("count", .number($0.count)), ("written", .bool($0.written))])
                    })),
                    ("layouts", .array(detail.layouts.map { .number($0.stateID.id.rawValue) })),
                    ("pins", .array(detail.pins.map { .number($0.pin.rawValue) })),
                ]).text)
                return
            }
            let info = detail.info
            print("inode \(info.inode): \(Inodes.kind(info.kind)), generation \(info.generation), size \(info.size), \(info.mappedBlocks) blocks mapped")
            print(Output.table(
                ["FILE BLOCKS", "VOLUME BLOCKS", "STATE"],
                detail.extents.map { ["\($0.fileBlock)+\($0.count)", "\($0.physicalBlock)+\($0.count)", $0.written ? "written" : "unwritten"] }
            ), terminator: "")
            if !detail.layouts.isEmpty { print("layouts: " + detail.layouts.map { "\($0.stateID) (\($0.identity))" }.joined(separator: ", ")) }
            if !detail.pins.isEmpty { print("pins: " + detail.pins.map { "\($0.pin) (\($0.identity))" }.joined(separator: ", ")) }
        }
    }
}

struct Allocate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Fill the holes of a byte range of a file with unwritten blocks.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var session: SessionOptions
    @Argument(help: "The inode id.") var inode: UInt64
    @Argument(help: "OFFSET+LENGTH in bytes.") var range: String
    @Option(help: "Wait this long for busy blocks to free instead of failing with noSpace.") var waitForBusy: String?

    func run() async throws {
        let range = try parseByteRange(self.range)
        let wait = try self.waitForBusy.map(parseDuration)
        let allocation = try await self.connection.run { client in
            try await self.session.perform(client, name: "leaseholdctl allocate") {
                try await $0.allocate(InodeID(rawValue: self.inode), range, waitForBusy: wait)
            }
        }
        self.connection.output.show(
            ["FILE BLOCKS", "VOLUME BLOCKS"],
            allocation.extents.map { ["\($0.fileBlock)+\($0.count)", "\($0.physicalBlock)+\($0.count)"] },
            json: .object([
                ("inode", .number(allocation.inode.rawValue)), ("size", .number(allocation.size)), ("generation", .number(allocation.generation)),
                ("extents", .array(allocation.extents.map {
                    .object([("fileBlock", .number($0.fileBlock)), ("physicalBlock", .number($0.physicalBlock)), ("count", .number($0.count))])
                })),
            ])
        )
    }
}

struct Pin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pin byte ranges of a file for DMA.",
        discussion: """
            Without --hold the session stays open on the server until its TTL runs out (the pin with it); \
            with --hold the command keeps the session alive for that long (or 'forever', until interrupted), \
            answers a recall of its long-term pin by unpinning, then closes the session.
            """
    )
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var session: SessionOptions
    @Argument(help: "The inode id.") var inode: UInt64
    @Argument(help: "One or more OFFSET+LENGTH byte ranges, pinned all or none.") var ranges: [String]
    @Flag(help: "A long-term pin (answers recalls) instead of a short-term one.") var longTerm = false
    @Option(help: "Own expiry of a short-term pin (default 30s).") var expiry: String = "30s"
    @Flag(help: "Allocate holes first.") var allocate = false
    @Option(help: "Keep the session (and the pin) alive this long, or 'forever'.") var hold: String?

    func run() async throws {
        let ranges = try self.ranges.map(parseByteRange)
        let kind: PinKind = self.longTerm ? .longTerm : .shortTerm(ttl: try parseDuration(self.expiry))
        try await self.connection.run { client in
            let session = try await self.session.open(client, name: "leaseholdctl pin")
            let grant = try await session.pin(InodeID(rawValue: self.inode), ranges: ranges, kind: kind, allocate: self.allocate)
            self.connection.output.show(
                fields: sessionFields(session) + [
                    ("pin", "\(grant.pin)"), ("token", "\(grant.token)"),
                    ("extents", grant.extents.map { "\($0.physicalBlock)+\($0.count)" }.joined(separator: ",")),
                ],
                json: .object(sessionJSON(session) + [
                    ("pin", .number(grant.pin.rawValue)), ("token", .number(grant.token.rawValue)),
                    ("extents", .array(grant.extents.map {
                        .object([("fileBlock", .number($0.fileBlock)), ("physicalBlock", .number($0.physicalBlock)), ("count", .number($0.count))])
                    })),
                ])
            )
            flushOutput()
            guard let hold = self.hold else { return }
            try await holdSession(session, for: hold) { event in
                if case .pinRecall(let recall) = event {
                    print("recall of pin \(recall.notice.pin): unpinning")
                    try? await recall.unpin()
                }
            }
        }
    }

    func validate() throws {
        try validateHold(self.hold)
    }
}

struct Unpin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Unpin a pin of the session given with --session/--secret.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var session: SessionOptions
    @Argument(help: "The pin id.") var pin: UInt64

    func run() async throws {
        guard self.session.session != nil else { throw ValidationError("unpin acts in the pin's session: pass --session and --secret as pin printed them") }
        try await self.connection.run { client in
            try await self.session.perform(client, name: "leaseholdctl unpin") { try await $0.unpin(PinID(rawValue: self.pin)) }
        }
        self.connection.output.show(fields: [("unpinned", "\(self.pin)")], json: .object([("unpinned", .number(self.pin))]))
    }
}

/// Prints a mapping change.
func showChange(_ change: MappingChange, _ output: Output) {
    output.show(
        fields: [
            ("inode", "\(change.inode)"), ("size", "\(change.size)"), ("generation", "\(change.generation)"), ("freed blocks", "\(change.freedBlocks)"),
            ("busy blocks", "\(change.busyBlocks)"), ("quarantined blocks", "\(change.quarantinedBlocks)"),
            ("quarantine inode", change.quarantineInode.map { "\($0)" } ?? "-"),
            ("recalled pins", change.recalledPins.map { "\($0)" }.joined(separator: ",")),
            ("returned layouts", change.returnedLayouts.map { "\($0)" }.joined(separator: ",")),
            ("revoked layouts", change.revokedLayouts.map { "\($0)" }.joined(separator: ",")),
            ("evicted sessions", change.evictedSessions.map { "\($0)" }.joined(separator: ",")),
        ],
        json: .object([
            ("inode", .number(change.inode.rawValue)), ("size", .number(change.size)), ("generation", .number(change.generation)),
            ("freedBlocks", .number(change.freedBlocks)), ("busyBlocks", .number(change.busyBlocks)), ("quarantinedBlocks", .number(change.quarantinedBlocks)),
            ("quarantineInode", .optional(change.quarantineInode?.rawValue)),
            ("recalledPins", .array(change.recalledPins.map { .number($0.rawValue) })),
            ("returnedLayouts", .array(change.returnedLayouts.map { .number($0.rawValue) })),
            ("revokedLayouts", .array(change.revokedLayouts.map { .number($0.rawValue) })),
            ("evictedSessions", .array(change.evictedSessions.map { .number($0.rawValue) })), ("deleted", .bool(change.deleted)),
        ])
    )
}

struct Truncate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Set a file's size, cutting out blocks past it under a pin policy.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var session: SessionOptions
    @Argument(help: "The inode id.") var inode: UInt64
    @Argument(help: "The new size in bytes.") var size: UInt64
    @OptionGroup var change: BreakOptions

    func run() async throws {
        let policy = try self.change.truncatePolicy()
        let change = try await self.connection.run { client in
            try await self.session.perform(client, name: "leaseholdctl truncate") {
                try await $0.truncate(InodeID(rawValue: self.inode), size: self.size, policy: policy, expectedGeneration: self.change.generation)
            }
        }
        showChange(change, self.connection.output)
    }
}

struct Punch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cut out the blocks wholly inside a byte range under a pin policy.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var session: SessionOptions
    @Argument(help: "The inode id.") var inode: UInt64
    @Argument(help: "OFFSET+LENGTH in bytes.") var range: String
    @OptionGroup var change: BreakOptions

    func run() async throws {
        let policy = try self.change.truncatePolicy()
        let range = try parseByteRange(self.range)
        let change = try await self.connection.run { client in
            try await self.session.perform(client, name: "leaseholdctl punch") {
                try await $0.punchHole(InodeID(rawValue: self.inode), range, policy: policy, expectedGeneration: self.change.generation)
            }
        }
        showChange(change, self.connection.output)
    }
}

struct Layout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Layouts.", subcommands: [Get.self])

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Get a layout of byte ranges of a file.",
            discussion: "With --hold the session stays alive and recalls are answered (returned) or ignored, as told."
        )
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var session: SessionOptions
        @Argument(help: "The inode id.") var inode: UInt64
        @Argument(help: "One or more OFFSET+LENGTH byte ranges.") var ranges: [String]
        @Flag(help: "Read-write instead of read-only.") var readWrite = false
        @Option(help: "Keep the session (and the layout) alive this long, or 'forever'.") var hold: String?
        @Flag(help: "Return recalled ranges at once (default while holding).") var answerRecalls = false
        @Flag(help: "Ignore recalls: the layout is revoked and the session evicted at the deadline.") var ignoreRecalls = false
        @Flag(help: "Answer each recall once with recallInProgress (prolong), then return it.") var prolongRecalls = false

        func run() async throws {
            let ranges = try self.ranges.map(parseByteRange)
            try await self.connection.run { client in
                let session = try await self.session.open(client, name: "leaseholdctl layout get")
                let grant = try await session.layoutGet(InodeID(rawValue: self.inode), ranges: ranges, iomode: self.readWrite ? .readWrite : .read)
                self.connection.output.show(
                    fields: sessionFields(session) + [
                        ("layout", "\(grant.stateID)"), ("token", "\(grant.token)"), ("blocks", grant.ranges.map(Text.blocks).joined(separator: ",")),
                    ],
                    json: .object(sessionJSON(session) + [
                        ("layout", .number(grant.stateID.id.rawValue)), ("seqid", .number(UInt64(grant.stateID.seqid))), ("token", .number(grant.token.rawValue)),
                        ("ranges", .array(grant.ranges.map { .object([("start", .number($0.start)), ("count", .number($0.count))]) })),
                    ])
                )
                flushOutput()
                guard let hold = self.hold else { return }
                let answer = !self.ignoreRecalls
                let prolong = self.prolongRecalls
                try await holdSession(session, for: hold) { event in
                    guard case .layoutRecall(let recall) = event else { return }
                    let range = Text.blocks(recall.notice.range)
                    guard answer else {
                        print("recall \(recall.notice.recall) of \(range): ignored")
                        return
                    }
                    if prolong {
                        print("recall \(recall.notice.recall) of \(range): prolonging")
                        flushOutput()
                        _ = try? await recall.prolong()
                        try? await Task.sleep(for: recall.notice.deadlineIn)
                    }
                    print("recall \(recall.notice.recall) of \(range): returning")
                    _ = try? await recall.returnLayout()
                }
            }
        }

        func validate() throws {
            try validateHold(self.hold)
            if self.ignoreRecalls && (self.answerRecalls || self.prolongRecalls) {
                throw ValidationError("--ignore-recalls contradicts --answer-recalls and --prolong-recalls")
            }
        }
    }
}
