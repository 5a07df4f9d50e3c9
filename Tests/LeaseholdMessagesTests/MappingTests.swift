import Foundation
import LeaseholdCore
import LeaseholdTestSupport
@testable import LeaseholdMessages
import Testing

/// Every command and every reply survives Core -> message -> bytes -> message -> Core,
/// and malformed values are refused with typed errors instead of traps.
@Suite("Mapping between messages and Core values")
struct MappingTests {
    // MARK: Samples

    static let range = ByteRange(offset: 4_096, length: 8_192)
    static let blocks = BlockRange(start: 10, end: 20)
    static let stateID = LayoutStateID(id: 5, seqid: 3)
    static let page = Page(after: 17, limit: 50)

    static let commands: [Command] = [
        .keepAlive,
        .resumeSession(9, secret: SessionSecret(high: 0x0102_0304_0506_0708, low: .max)),
        .closeSession,
        .acknowledgePushes(upTo: 12),
        .createInode,
        .deleteInode(3, policy: .quarantine(keep: true), expectedGeneration: 4),
        .deleteInode(3, policy: .busy, expectedGeneration: nil),
        .allocate(3, range, waitForBusy: .milliseconds(1_500), expectedGeneration: nil),
        .allocate(3, range, waitForBusy: nil, expectedGeneration: 8),
        .markWritten(3, range),
        .pin(PinRequest(inode: 3, ranges: [range, ByteRange(offset: 0, length: 1)], kind: .shortTerm(ttl: .seconds(3)), allocate: true, wait: .seconds(2))),
        .pin(PinRequest(inode: 3, ranges: [range], kind: .longTerm)),
        .unpin(77),
        .truncate(3, size: 12_345, policy: .wait(timeout: .seconds(9)), expectedGeneration: 2),
        .truncate(3, size: 0, policy: .fail, expectedGeneration: nil),
        .punchHole(3, range, policy: .busy, expectedGeneration: nil),
        .layoutGet(3, ranges: [range], iomode: .readWrite),
        .layoutGet(3, ranges: [range], iomode: .read),
        .layoutReturn(stateID, ranges: nil),
        .layoutReturn(stateID, ranges: [range]),
        .layoutCommit(stateID, newSize: 99, written: [range]),
        .layoutCommit(stateID, newSize: nil, written: []),
        .prolongRecall(6),
        .acknowledgeFence(4),
        .readFences(after: 2),
        .evictSession(8),
        .deregisterTarget(name: "nvme-1"),
        .forceRelease(blocks),
        .deleteQuarantineInode(11),
        .setPinSetting(.shortTermOnly),
        .status,
        .listBusyExtents(page),
        .listFreeExtents(page),
        .listPins(page),
        .listLayouts(page),
        .listSessions(page),
        .listInodes(page),
        .showInode(3),
        .listTargets,
        .checkInvariants,
        .readEvents(after: 5, limit: 20),
    ]

    static let fence = Fence(revision: 4, session: 8, identity: "host-a", maxToken: 99, reason: .missedRecall, blocks: [blocks, BlockRange(start: 30, end: 31)])
    static let allocation = Allocation(
        inode: 3,
        size: 8_192,
        generation: 6,
        extents: [MappedExtent(fileBlock: 0, physicalBlock: 100, count: 2, written: false)],
        returnedLayouts: [1],
        revokedLayouts: [2],
        evictedSessions: [3]
    )
    static let pinInfo = PinInfo(
        pin: 7, session: 2, identity: "gpu-0", inode: 3, ranges: [range], kind: .shortTerm(ttl: .seconds(5)), token: 44, blocks: 2, busyBlocks: 1,
        expiresIn: .milliseconds(2_500), recall: 9,
        extents: [PinnedExtent(fileBlock: 4, physicalBlock: 900, count: 2)]
    )
    static let layoutInfo = LayoutInfo(
        stateID: stateID, session: 2, identity: "nic-1", inode: 3, iomode: .readWrite, ranges: [blocks], token: 45,
        state: .recalling(deadlineIn: .seconds(4), prolonged: true)
    )

    static let responses: [Response] = [
        .sessionOpened(SessionGrant(session: 1, secret: SessionSecret(high: 1, low: 2), ttl: .seconds(10), slots: 64)),
        .keptAlive(ttl: .seconds(10)),
        .sessionResumed(
            SessionResumed(
                session: 1, ttl: .seconds(10), slots: 64,
                replay: [
                    Push(number: 3, body: .layoutRecall(LayoutRecallNotice(recall: 1, stateID: stateID, inode: 3, range: blocks, deadlineIn: .seconds(10)))),
                    Push(number: 4, body: .pinRecall(PinRecallNotice(recall: 2, pin: 7, inode: 3, deadlineIn: .seconds(9)))),
                    Push(number: 5, body: .fenced(FenceNotice(revision: 4, maxToken: 99, reason: .expired))),
                    Push(number: 6, body: .sessionExpiring(remaining: .seconds(3))),
                ]
            )
        ),
        .sessionClosed(SessionClosed(unpinned: [1, 2], returnedLayouts: [3])),
        .pushesAcknowledged(upTo: 6),
        .waitsCancelled(count: 2),
        .inodeCreated(3),
        .mappingChanged(
            MappingChange(
                inode: 3, size: 4_096, generation: 9, freedBlocks: 10, busyBlocks: 2, quarantinedBlocks: 1, quarantineInode: 12,
                returnedLayouts: [1], revokedLayouts: [2], evictedSessions: [4], recalledPins: [7], deleted: true
            )
        ),
        .mappingChanged(
            MappingChange(
                inode: 3, size: 0, generation: 9, freedBlocks: 0, busyBlocks: 0, quarantinedBlocks: 0, quarantineInode: nil,
                returnedLayouts: [], revokedLayouts: [], evictedSessions: [], recalledPins: [], deleted: false
            )
        ),
        .allocated(allocation),
        .markedWritten(generation: 4, blocks: 2),
        .pinned(PinGrant(pin: 7, token: 44, extents: [PinnedExtent(fileBlock: 1, physicalBlock: 101, count: 2)], expiresIn: .seconds(3), allocation: allocation)),
        .pinned(
            PinGrant(
                pin: 8, token: 45, extents: TinyArray([PinnedExtent(fileBlock: 1, physicalBlock: 101, count: 2), PinnedExtent(fileBlock: 5, physicalBlock: 7, count: 1)]),
                expiresIn: nil, allocation: nil
            )
        ),
        .unpinned(7),
        .layout(
            LayoutGrantReply(
                stateID: stateID, iomode: .read, token: 46, ranges: [blocks],
                extents: [
                    LayoutExtent(fileRange: BlockRange(start: 10, end: 12), physicalBlock: 200, state: .written),
                    LayoutExtent(fileRange: BlockRange(start: 12, end: 15), physicalBlock: nil, state: .hole),
                    LayoutExtent(fileRange: BlockRange(start: 15, end: 20), physicalBlock: 300, state: .unwritten),
                ]
            )
        ),
        .layoutReturned(LayoutReturned(stateID: stateID, remaining: [blocks], returnedBlocks: 3)),
        .layoutCommitted(generation: 5, size: 8_192),
        .recallProlonged(6, remaining: .seconds(19)),
        .targetRegistered(StorageTarget(name: "nvme-1", acknowledged: 3)),
        .fenceAcknowledged(StorageTarget(name: "nvme-1", acknowledged: 4)),
        .fences([fence]),
        .sessionEvicted(fence),
        .targetDeregistered(name: "nvme-1"),
        .forceReleased(blocks: 10),
        .quarantineDeleted(12, blocks: 4),
        .pinSettingChanged(.deny),
        .status(
            VolumeStatus(
                epoch: 3, blockSize: 4_096, blockCount: 1 << 28, freeBlocks: 100, mappedBlocks: 20, busyBlocks: 3, quarantinedBlocks: 1, largestFreeExtent: 90,
                freeExtents: 2, inodes: 4, quarantineInodes: 1, sessions: 5, pins: 6, layouts: 7, outstandingRecalls: 1, pendingBreaks: 1, targets: 2,
                unresolvedFences: 1, fenceRevision: 4, eventRevision: 100, pinSetting: .allow
            )
        ),
        .busyExtents([
            BusyExtentInfo(
                range: blocks, quarantine: nil,
                pins: [BusyExtentInfo.PinHolder(pin: 7, session: 2, identity: "gpu-0", kind: .longTerm)],
                fences: [BusyExtentInfo.FenceHolder(revision: 4, session: 8, identity: "host-a", waitingForTargets: ["nvme-1"], releaseIn: nil)],
                age: .seconds(2), releaseIn: nil
            ),
            BusyExtentInfo(range: blocks, quarantine: 12, pins: [], fences: [], age: .zero, releaseIn: .milliseconds(300)),
        ]),
        .freeExtents([BlockRange(start: 0, count: 3), BlockRange(start: 10, count: .max - 10)]),
        .pins([pinInfo]),
        .layouts([layoutInfo, LayoutInfo(stateID: stateID, session: 2, identity: "x", inode: 3, iomode: .read, ranges: [], token: 1, state: .granted)]),
        .sessions([
            SessionInfo(session: 1, identity: "a", name: "n", ttl: .seconds(10), expiresIn: .seconds(7), pins: 1, layouts: 2, unacknowledgedPushes: 3, lastPush: 4)
        ]),
        .inodes([
            InodeInfo(inode: 3, generation: 2, size: 100, kind: .regular, mappedBlocks: 1, extents: 1, pendingBreaks: 0),
            InodeInfo(
                inode: 12, generation: 1, size: 4_096, kind: .quarantine(QuarantineSource(inode: 3, generation: 2, fileOffset: 0, keep: true)), mappedBlocks: 1,
                extents: 1, pendingBreaks: 0
            ),
        ]),
        .inode(
            InodeDetail(
                info: InodeInfo(inode: 3, generation: 2, size: 100, kind: .regular, mappedBlocks: 1, extents: 1, pendingBreaks: 0),
                extents: [MappedExtent(fileBlock: 0, physicalBlock: 5, count: 1, written: true)], layouts: [layoutInfo], pins: [pinInfo]
            )
        ),
        .targets([TargetInfo(name: "nvme-1", acknowledged: 3, lag: 1)]),
        .invariants([InvariantViolation(invariant: 2, message: "pin 7 references free block 5")]),
        .events(Self.events, more: true),
    ]

    static let events: [Event] = [
        EventKind.sessionOpened(1, identity: "a"), .sessionClosed(1), .sessionEvicted(2, reason: .admin, fence: 3), .inodeCreated(3), .inodeDeleted(3),
        .allocated(3, generation: 2, blocks: 4), .mappingChanged(3, generation: 3, freed: 1, busy: 2, quarantined: 3),
        .pinGranted(7, session: 1, inode: 3, blocks: 2), .pinReleased(7, reason: .evicted), .layoutGranted(stateID, session: 1, inode: 3),
        .layoutReturned(stateID, remainingBlocks: 2), .layoutRevoked(5, session: 1), .recallSent(1, session: 2, target: .layout(5, range: blocks)),
        .recallSent(2, session: 2, target: .pin(7)), .recallProlonged(1), .recallAnswered(1), .fenceAppended(4, session: 2), .fenceResolved(4),
        .fenceAcknowledged(4, target: "nvme-1"), .targetRegistered("nvme-1"), .targetDeregistered("nvme-1"), .busyReleased(blocks),
        .forceReleased(blocks, by: "admin"), .quarantineCreated(12, source: 3), .quarantineDeleted(12), .pinSettingChanged(.allow),
    ].enumerated().map { Event(revision: EventRevision(rawValue: UInt64($0.offset + 1)), kind: $0.element) }

    static let errors: [LeaseholdError] = LeaseholdError.Code.all.map { code in
        LeaseholdError(
            code: code, message: "message of \(code.name)",
            details: .init(
                busyBlocks: 3, freeBlocks: 4, pins: [7], firstHoleOffset: 8_192, currentGeneration: 9, revokedLayouts: [1], evictedSessions: [2],
                limit: "pinsPerIdentity", fenceRevision: 4, leaderEndpoint: "10.0.0.7:7420"
            )
        )
    } + [.invalidArgument("no details")]

    // MARK: Round trips

    func throughBytes(_ request: WireRequest) throws -> WireRequest {
        try WireRequest(serializedBytes: try request.serializedBytes() as [UInt8])
    }

    @Test("every command survives a round trip through bytes")
    func commandsRoundTrip() throws {
        for command in Self.commands {
            let body = WireRequestBody(session: 4, tag: command.isMutation ? SlotTag(slot: 2, sequence: 9) : nil, command: .core(command))
            let decoded = try WireRequestBody(wire: try self.throughBytes(try body.wire()))
            #expect(decoded == body, "\(command.name)")
        }
        // Every command with a wire form is in the list (cancelWaits and registerTarget
        // have none; openSession is the server-completed form below): 37 - 3.
        let names = Set(Self.commands.map(\.name))
        #expect(names.count == 34)
    }

    @Test("wire-only commands round-trip; openSession leaves the secret to the server")
    func wireOnlyCommands() throws {
        let commands: [WireCommand] = [
            .hello(major: 1, minor: 0, clientName: "test"),
            .openSession(name: "s", ttl: .seconds(5), slots: 8),
            .openSession(name: "", ttl: nil, slots: nil),
            .subscribeFences(after: 3),
            .watchEvents(after: 7),
            .createSnapshot,
            .readSnapshot(name: "snap-1.db", offset: 4, length: 1_024),
        ]
        for command in commands {
            let body = WireRequestBody(command: command)
            #expect(try WireRequestBody(wire: try self.throughBytes(try body.wire())) == body)
        }
        let fromCore = WireRequestBody(command: .core(.openSession(name: "s", ttl: nil, slots: 2, secret: SessionSecret(high: 1, low: 1))))
        #expect(try WireRequestBody(wire: try fromCore.wire()).command == .openSession(name: "s", ttl: nil, slots: 2))
    }

    @Test("every reply survives a round trip through bytes")
    func repliesRoundTrip() throws {
        var names = Set<String>()
        for response in Self.responses {
            names.insert(Self.name(of: response))
            let wire = Reply.success(response).wire
            let decoded = try Reply(wire: try WireResponse(serializedBytes: try wire.serializedBytes() as [UInt8]))
            #expect(decoded == .success(response))
        }
        #expect(names.count == Self.allResponseNames, "a Response case has no sample")
        for error in Self.errors {
            let decoded = try Reply(wire: try WireResponse(serializedBytes: try Reply.failure(error).wire.serializedBytes() as [UInt8]))
            #expect(decoded == .failure(error))
        }
    }

    @Test("the handshake reply round-trips")
    func hello() throws {
        var configuration = CoordinatorConfiguration()
        configuration.releaseDelay = .milliseconds(250)
        let limits = ServerLimits(configuration: configuration, geometry: .default, maxFrameBytes: 1 << 22, maxInFlightRequests: 512)
        let hello = ServerHello(epoch: 7, limits: limits, identity: "admin", isAdmin: true, isTarget: false)
        #expect(ServerHello(wire: try Leasehold_V1_HelloOk(serializedBytes: try hello.wire.serializedBytes() as [UInt8])) == hello)
        for (role, leader, term) in [(NodeRole.single, nil, 0), (.leader, nil, 41), (.standby, "10.0.0.7:7420", 41), (.standby, nil, 0)] as [(NodeRole, String?, UInt64)] {
            let clustered = ServerHello(epoch: 9, limits: limits, identity: "n", isAdmin: false, isTarget: false, role: role, leaderEndpoint: leader, term: term)
            #expect(ServerHello(wire: try Leasehold_V1_HelloOk(serializedBytes: try clustered.wire.serializedBytes() as [UInt8])) == clustered)
        }
    }

    // MARK: Malformed input

    func rejects(_ build: (inout WireRequest) -> Void, code: LeaseholdError.Code, containing text: String) {
        var request = WireRequest()
        build(&request)
        let error = #expect(throws: LeaseholdError.self) { try WireRequestBody(wire: request) }
        #expect(error?.code == code)
        #expect(error?.message.contains(text) == true, "\(error?.message ?? "")")
    }

    @Test("a request without a known command is a protocolError")
    func unknownCommand() throws {
        self.rejects({ _ in }, code: .protocolError, containing: "no command")
        // A command from a newer protocol arrives as an unknown field.
        var request = WireRequest()
        request.unknownFields = try {
            var future = WireRequest()
            future.keepAlive = .init()
            var bytes: [UInt8] = try future.serializedBytes()
            bytes[0] = 0xFA  // field 1000+ instead of keep_alive's tag
            bytes.insert(0x3E, at: 1)
            return try WireRequest(serializedBytes: bytes).unknownFields
        }()
        #expect(request.command == nil)
        #expect(throws: LeaseholdError.self) { try WireRequestBody(wire: request) }
    }

    @Test("a page limit of 0 (or no page) is the default page of 1,000; up to 10,000 is served; above is invalidArgument")
    func pageLimits() throws {
        func command(_ build: (inout WireRequest) -> Void) throws -> WireCommand {
            var request = WireRequest()
            build(&request)
            return try WireRequestBody(wire: self.throughBytes(request)).command
        }
        #expect(try command { $0.listInodes.page.limit = 0 } == .core(.listInodes(Page(after: 0, limit: 1_000))))
        #expect(try command { $0.listInodes = .init() } == .core(.listInodes(Page(after: 0, limit: 1_000))))
        #expect(try command { $0.listPins.page = .with { $0.after = 7; $0.limit = 10_000 } } == .core(.listPins(Page(after: 7, limit: 10_000))))
        #expect(try command { $0.readEvents.limit = 0 } == .core(.readEvents(after: EventRevision(rawValue: 0), limit: 1_000)))
        // The Coordinator refuses what is above its maximum page, naming the bounds.
        var coordinator = Coordinator(configuration: Harness.configuration())
        _ = coordinator.tick(at: .zero)
        let admin = Caller(identity: "admin", isAdmin: true)
        for command in [Command.listInodes(Page(limit: 10_001)), .readEvents(after: EventRevision(rawValue: 0), limit: 10_001)] {
            let reply = coordinator.handle(Request(caller: admin, command: command), at: .zero).reply
            #expect(reply?.error?.code == .invalidArgument)
            #expect(reply?.error?.message.contains("between 1 and 10000") == true, "\(String(describing: reply))")
        }
        let served = coordinator.handle(Request(caller: admin, command: .listInodes(Page(limit: 10_000))), at: .zero).reply
        #expect(served?.error == nil)
    }

    @Test("values the Core cannot hold are invalidArgument, not traps")
    func malformedValues() {
        self.rejects({ $0.forceRelease.range = .with { $0.start = 9; $0.end = 3 } }, code: .invalidArgument, containing: "below its start")
        self.rejects({ $0.forceRelease = .init() }, code: .invalidArgument, containing: "required")
        self.rejects({ $0.pin.kind = .unspecified }, code: .invalidArgument, containing: "pin kind")
        self.rejects({ $0.pin.kind = .shortTerm }, code: .invalidArgument, containing: "ttl_nanos")
        self.rejects({ $0.pin.kind = .UNRECOGNIZED(9) }, code: .invalidArgument, containing: "pin kind")
        self.rejects({ $0.layoutGet.iomode = .unspecified }, code: .invalidArgument, containing: "iomode")
        self.rejects({ $0.setPinSetting.setting = .UNRECOGNIZED(7) }, code: .invalidArgument, containing: "setting")
        self.rejects({ $0.resumeSession.secret = Data([1, 2, 3]) }, code: .invalidArgument, containing: "16 bytes")
        self.rejects({ $0.allocate = .init() }, code: .invalidArgument, containing: "required")
        self.rejects({ $0.punchHole = .init() }, code: .invalidArgument, containing: "required")
        self.rejects({ $0.markWritten = .init() }, code: .invalidArgument, containing: "required")
    }

    @Test("a malformed reply from a server is a typed error on the client")
    func malformedReplies() {
        var response = WireResponse()
        #expect(throws: LeaseholdError.self) { try Reply(wire: response) }
        response.layoutReturned.remaining = [.with { $0.start = 5; $0.end = 1 }]
        #expect(throws: LeaseholdError.self) { try Reply(wire: response) }
        response.helloOk = .init()
        #expect(throws: LeaseholdError.self) { try Reply(wire: response) }
        response.volumeStatus.pinSetting = .unspecified
        #expect(throws: LeaseholdError.self) { try Reply(wire: response) }
    }

    // MARK: Helpers

    static let allResponseNames = 35

    static func name(of response: Response) -> String {
        switch response {
        case .sessionOpened: "sessionOpened"
        case .keptAlive: "keptAlive"
        case .sessionResumed: "sessionResumed"
        case .sessionClosed: "sessionClosed"
        case .pushesAcknowledged: "pushesAcknowledged"
        case .waitsCancelled: "waitsCancelled"
        case .inodeCreated: "inodeCreated"
        case .mappingChanged: "mappingChanged"
        case .allocated: "allocated"
        case .markedWritten: "markedWritten"
        case .pinned: "pinned"
        case .unpinned: "unpinned"
        case .layout: "layout"
        case .layoutReturned: "layoutReturned"
        case .layoutCommitted: "layoutCommitted"
        case .recallProlonged: "recallProlonged"
        case .targetRegistered: "targetRegistered"
        case .fenceAcknowledged: "fenceAcknowledged"
        case .fences: "fences"
        case .sessionEvicted: "sessionEvicted"
        case .targetDeregistered: "targetDeregistered"
        case .forceReleased: "forceReleased"
        case .quarantineDeleted: "quarantineDeleted"
        case .pinSettingChanged: "pinSettingChanged"
        case .status: "status"
        case .busyExtents: "busyExtents"
        case .freeExtents: "freeExtents"
        case .pins: "pins"
        case .layouts: "layouts"
        case .sessions: "sessions"
        case .inodes: "inodes"
        case .inode: "inode"
        case .targets: "targets"
        case .invariants: "invariants"
        case .events: "events"
        }
    }
}
