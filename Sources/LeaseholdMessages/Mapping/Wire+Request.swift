import Foundation
import LeaseholdCore

// MARK: - Requests: message -> Core (server side)

extension WireRequestBody {
    /// Decodes and validates a request message.
    /// - Throws: `protocolError` when no command this version knows is set;
    ///   `invalidArgument` for a value the Core's types cannot hold.
    public init(wire request: Leasehold_V1_Request) throws(LeaseholdError) {
        self.session = optionalID(request.session)
        self.tag = request.hasTag ? SlotTag(slot: request.tag.slot, sequence: request.tag.sequence) : nil
        guard let command = request.command else {
            throw .protocolError("the request carries no command this server knows (protocol \(WireProtocol.major).\(WireProtocol.minor))")
        }
        self.command = try WireCommand(wire: command)
    }
}

extension WireCommand {
    init(wire command: Leasehold_V1_Request.OneOf_Command) throws(LeaseholdError) {
        func ranges(_ wire: [Leasehold_V1_ByteRange]) -> [ByteRange] { wire.map(ByteRange.init(wire:)) }
        func generation<M>(_ message: M, _ has: (M) -> Bool, _ value: (M) -> UInt64) -> UInt64? {
            has(message) ? value(message) : nil
        }
        func page(_ wire: Leasehold_V1_Page) -> Page {
            Page(after: wire.after, limit: wire.limit == 0 ? Page().limit : Int(wire.limit))
        }
        switch command {
        case .hello(let hello):
            self = .hello(major: hello.protocolMajor, minor: hello.protocolMinor, clientName: hello.clientName)
        case .openSession(let open):
            self = .openSession(
                name: open.name,
                ttl: open.hasTtlNanos ? Duration(wireNanos: open.ttlNanos) : nil,
                slots: open.hasSlots ? Int(open.slots) : nil
            )
        case .keepAlive:
            self = .core(.keepAlive)
        case .resumeSession(let resume):
            self = .core(.resumeSession(SessionID(rawValue: resume.session), secret: try SessionSecret(wire: resume.secret)))
        case .closeSession:
            self = .core(.closeSession)
        case .acknowledgePushes(let ack):
            self = .core(.acknowledgePushes(upTo: ack.upTo))
        case .createInode:
            self = .core(.createInode)
        case .deleteInode(let delete):
            self = .core(
                .deleteInode(
                    InodeID(rawValue: delete.inode),
                    policy: TruncatePolicy(wire: delete.policy),
                    expectedGeneration: generation(delete, \.hasExpectedGeneration, \.expectedGeneration)
                )
            )
        case .allocate(let allocate):
            guard allocate.hasRange else { throw .badField("allocate.range", "is required") }
            self = .core(
                .allocate(
                    InodeID(rawValue: allocate.inode),
                    ByteRange(wire: allocate.range),
                    waitForBusy: allocate.hasWaitForBusyNanos ? Duration(wireNanos: allocate.waitForBusyNanos) : nil,
                    expectedGeneration: generation(allocate, \.hasExpectedGeneration, \.expectedGeneration)
                )
            )
        case .markWritten(let mark):
            guard mark.hasRange else { throw .badField("markWritten.range", "is required") }
            self = .core(.markWritten(InodeID(rawValue: mark.inode), ByteRange(wire: mark.range)))
        case .pin(let pin):
            self = .core(
                .pin(
                    PinRequest(
                        inode: InodeID(rawValue: pin.inode),
                        ranges: ranges(pin.ranges),
                        kind: try PinKind(wire: pin.kind, ttl: pin.hasTtlNanos ? pin.ttlNanos : nil, field: "pin.kind"),
                        allocate: pin.allocate,
                        wait: pin.hasWaitNanos ? Duration(wireNanos: pin.waitNanos) : nil
                    )
                )
            )
        case .unpin(let unpin):
            self = .core(.unpin(PinID(rawValue: unpin.pin)))
        case .truncate(let truncate):
            self = .core(
                .truncate(
                    InodeID(rawValue: truncate.inode),
                    size: truncate.size,
                    policy: TruncatePolicy(wire: truncate.policy),
                    expectedGeneration: generation(truncate, \.hasExpectedGeneration, \.expectedGeneration)
                )
            )
        case .punchHole(let punch):
            guard punch.hasRange else { throw .badField("punchHole.range", "is required") }
            self = .core(
                .punchHole(
                    InodeID(rawValue: punch.inode),
                    ByteRange(wire: punch.range),
                    policy: TruncatePolicy(wire: punch.policy),
                    expectedGeneration: generation(punch, \.hasExpectedGeneration, \.expectedGeneration)
                )
            )
        case .layoutGet(let get):
            self = .core(.layoutGet(InodeID(rawValue: get.inode), ranges: ranges(get.ranges), iomode: try IOMode(wire: get.iomode)))
        case .layoutReturn(let ret):
            self = .core(.layoutReturn(LayoutStateID(wire: ret.stateID), ranges: ret.ranges.isEmpty ? nil : ranges(ret.ranges)))
        case .layoutCommit(let commit):
            self = .core(
                .layoutCommit(
                    LayoutStateID(wire: commit.stateID),
                    newSize: commit.hasNewSize ? commit.newSize : nil,
                    written: ranges(commit.written)
                )
            )
        case .prolongRecall(let prolong):
            self = .core(.prolongRecall(RecallID(rawValue: prolong.recall)))
        case .subscribeFences(let subscribe):
            self = .subscribeFences(after: FenceRevision(rawValue: subscribe.afterRevision))
        case .acknowledgeFence(let ack):
            self = .core(.acknowledgeFence(FenceRevision(rawValue: ack.revision)))
        case .readFences(let read):
            self = .core(.readFences(after: FenceRevision(rawValue: read.afterRevision)))
        case .evictSession(let evict):
            self = .core(.evictSession(SessionID(rawValue: evict.session)))
        case .deregisterTarget(let deregister):
            self = .core(.deregisterTarget(name: deregister.name))
        case .forceRelease(let release):
            guard release.hasRange else { throw .badField("forceRelease.range", "is required") }
            self = .core(.forceRelease(try BlockRange(wire: release.range, field: "forceRelease.range")))
        case .deleteQuarantineInode(let delete):
            self = .core(.deleteQuarantineInode(InodeID(rawValue: delete.inode)))
        case .setPinSetting(let set):
            self = .core(.setPinSetting(try PinSetting(wire: set.setting)))
        case .createSnapshot:
            self = .createSnapshot
        case .readSnapshot(let read):
            self = .readSnapshot(name: read.name, offset: read.offset, length: read.length)
        case .clusterStatus:
            self = .clusterStatus
        case .status:
            self = .core(.status)
        case .listBusyExtents(let list):
            self = .core(.listBusyExtents(page(list.page)))
        case .listFreeExtents(let list):
            self = .core(.listFreeExtents(page(list.page)))
        case .listPins(let list):
            self = .core(.listPins(page(list.page)))
        case .listLayouts(let list):
            self = .core(.listLayouts(page(list.page)))
        case .listSessions(let list):
            self = .core(.listSessions(page(list.page)))
        case .listInodes(let list):
            self = .core(.listInodes(page(list.page)))
        case .showInode(let show):
            self = .core(.showInode(InodeID(rawValue: show.inode)))
        case .listTargets:
            self = .core(.listTargets)
        case .checkInvariants:
            self = .core(.checkInvariants)
        case .readEvents(let read):
            self = .core(.readEvents(after: EventRevision(rawValue: read.afterRevision), limit: read.limit == 0 ? 1_000 : Int(read.limit)))
        case .watchEvents(let watch):
            self = .watchEvents(after: EventRevision(rawValue: watch.afterRevision))
        }
    }
}

// MARK: - Requests: Core -> message (client side)

extension WireRequestBody {
    /// The request message.
    /// - Throws: `invalidArgument` for a Core command that has no wire form
    ///   (`cancelWaits`, `registerTarget` alone: the server does them itself).
    public func wire() throws(LeaseholdError) -> Leasehold_V1_Request {
        var request = Leasehold_V1_Request()
        if let session = self.session { request.session = session.rawValue }
        if let tag = self.tag {
            request.tag.slot = tag.slot
            request.tag.sequence = tag.sequence
        }
        request.command = try self.command.wire()
        return request
    }
}

extension WireCommand {
    func wire() throws(LeaseholdError) -> Leasehold_V1_Request.OneOf_Command {
        func pageWire(_ page: Page) -> Leasehold_V1_Page {
            var wire = Leasehold_V1_Page()
            wire.after = page.after
            wire.limit = UInt32(clamping: page.limit)
            return wire
        }
        switch self {
        case .hello(let major, let minor, let clientName):
            var hello = Leasehold_V1_Hello()
            hello.protocolMajor = major
            hello.protocolMinor = minor
            hello.clientName = clientName
            return .hello(hello)
        case .openSession(let name, let ttl, let slots):
            var open = Leasehold_V1_OpenSession()
            open.name = name
            if let ttl { open.ttlNanos = ttl.wireNanos }
            if let slots { open.slots = UInt32(clamping: slots) }
            return .openSession(open)
        case .subscribeFences(let after):
            var subscribe = Leasehold_V1_SubscribeFences()
            subscribe.afterRevision = after.rawValue
            return .subscribeFences(subscribe)
        case .watchEvents(let after):
            var watch = Leasehold_V1_WatchEvents()
            watch.afterRevision = after.rawValue
            return .watchEvents(watch)
        case .createSnapshot:
            return .createSnapshot(Leasehold_V1_CreateSnapshot())
        case .readSnapshot(let name, let offset, let length):
            var read = Leasehold_V1_ReadSnapshot()
            read.name = name
            read.offset = offset
            read.length = length
            return .readSnapshot(read)
        case .clusterStatus:
            return .clusterStatus(Leasehold_V1_ClusterStatusRequest())
        case .core(let command):
            return try command.wireCommand(page: pageWire)
        }
    }
}

extension Command {
    fileprivate func wireCommand(page: (Page) -> Leasehold_V1_Page) throws(LeaseholdError) -> Leasehold_V1_Request.OneOf_Command {
        switch self {
        case .openSession(let name, let ttl, let slots, _):
            return try WireCommand.openSession(name: name, ttl: ttl, slots: slots).wire()
        case .keepAlive:
            return .keepAlive(Leasehold_V1_KeepAlive())
        case .resumeSession(let session, let secret):
            var resume = Leasehold_V1_ResumeSession()
            resume.session = session.rawValue
            resume.secret = Data(secret.wire)
            return .resumeSession(resume)
        case .closeSession:
            return .closeSession(Leasehold_V1_CloseSession())
        case .acknowledgePushes(let upTo):
            var ack = Leasehold_V1_AcknowledgePushes()
            ack.upTo = upTo
            return .acknowledgePushes(ack)
        case .cancelWaits:
            throw .invalidArgument("cancelWaits has no wire form: the server cancels waits when a connection closes")
        case .createInode:
            return .createInode(Leasehold_V1_CreateInode())
        case .deleteInode(let inode, let policy, let generation):
            var delete = Leasehold_V1_DeleteInode()
            delete.inode = inode.rawValue
            delete.policy = policy.wire
            if let generation { delete.expectedGeneration = generation }
            return .deleteInode(delete)
        case .allocate(let inode, let range, let waitForBusy, let generation):
            var allocate = Leasehold_V1_Allocate()
            allocate.inode = inode.rawValue
            allocate.range = range.wire
            if let waitForBusy { allocate.waitForBusyNanos = waitForBusy.wireNanos }
            if let generation { allocate.expectedGeneration = generation }
            return .allocate(allocate)
        case .markWritten(let inode, let range):
            var mark = Leasehold_V1_MarkWritten()
            mark.inode = inode.rawValue
            mark.range = range.wire
            return .markWritten(mark)
        case .pin(let request):
            var pin = Leasehold_V1_Pin()
            pin.inode = request.inode.rawValue
            pin.ranges = request.ranges.map(\.wire)
            pin.kind = request.kind.wireKind
            if let ttl = request.kind.wireTTL { pin.ttlNanos = ttl }
            pin.allocate = request.allocate
            if let wait = request.wait { pin.waitNanos = wait.wireNanos }
            return .pin(pin)
        case .unpin(let id):
            var unpin = Leasehold_V1_Unpin()
            unpin.pin = id.rawValue
            return .unpin(unpin)
        case .truncate(let inode, let size, let policy, let generation):
            var truncate = Leasehold_V1_Truncate()
            truncate.inode = inode.rawValue
            truncate.size = size
            truncate.policy = policy.wire
            if let generation { truncate.expectedGeneration = generation }
            return .truncate(truncate)
        case .punchHole(let inode, let range, let policy, let generation):
            var punch = Leasehold_V1_PunchHole()
            punch.inode = inode.rawValue
            punch.range = range.wire
            punch.policy = policy.wire
            if let generation { punch.expectedGeneration = generation }
            return .punchHole(punch)
        case .layoutGet(let inode, let ranges, let iomode):
            var get = Leasehold_V1_LayoutGet()
            get.inode = inode.rawValue
            get.ranges = ranges.map(\.wire)
            get.iomode = iomode.wire
            return .layoutGet(get)
        case .layoutReturn(let stateID, let ranges):
            var ret = Leasehold_V1_LayoutReturn()
            ret.stateID = stateID.wire
            if let ranges {
                guard !ranges.isEmpty else {
                    throw .invalidArgument("layoutReturn with an empty list of ranges; pass nil to return the whole layout")
                }
                ret.ranges = ranges.map(\.wire)
            }
            return .layoutReturn(ret)
        case .layoutCommit(let stateID, let newSize, let written):
            var commit = Leasehold_V1_LayoutCommit()
            commit.stateID = stateID.wire
            if let newSize { commit.newSize = newSize }
            commit.written = written.map(\.wire)
            return .layoutCommit(commit)
        case .prolongRecall(let recall):
            var prolong = Leasehold_V1_ProlongRecall()
            prolong.recall = recall.rawValue
            return .prolongRecall(prolong)
        case .registerTarget:
            throw .invalidArgument("registerTarget has no wire form: subscribeFences registers the target")
        case .acknowledgeFence(let revision):
            var ack = Leasehold_V1_AcknowledgeFence()
            ack.revision = revision.rawValue
            return .acknowledgeFence(ack)
        case .readFences(let after):
            var read = Leasehold_V1_ReadFences()
            read.afterRevision = after.rawValue
            return .readFences(read)
        case .evictSession(let session):
            var evict = Leasehold_V1_EvictSession()
            evict.session = session.rawValue
            return .evictSession(evict)
        case .deregisterTarget(let name):
            var deregister = Leasehold_V1_DeregisterTarget()
            deregister.name = name
            return .deregisterTarget(deregister)
        case .forceRelease(let range):
            var release = Leasehold_V1_ForceRelease()
            release.range = range.wire
            return .forceRelease(release)
        case .deleteQuarantineInode(let inode):
            var delete = Leasehold_V1_DeleteQuarantineInode()
            delete.inode = inode.rawValue
            return .deleteQuarantineInode(delete)
        case .setPinSetting(let setting):
            var set = Leasehold_V1_SetPinSetting()
            set.setting = setting.wire
            return .setPinSetting(set)
        case .status:
            return .status(Leasehold_V1_Status())
        case .listBusyExtents(let p):
            var list = Leasehold_V1_ListBusyExtents()
            list.page = page(p)
            return .listBusyExtents(list)
        case .listFreeExtents(let p):
            var list = Leasehold_V1_ListFreeExtents()
            list.page = page(p)
            return .listFreeExtents(list)
        case .listPins(let p):
            var list = Leasehold_V1_ListPins()
            list.page = page(p)
            return .listPins(list)
        case .listLayouts(let p):
            var list = Leasehold_V1_ListLayouts()
            list.page = page(p)
            return .listLayouts(list)
        case .listSessions(let p):
            var list = Leasehold_V1_ListSessions()
            list.page = page(p)
            return .listSessions(list)
        case .listInodes(let p):
            var list = Leasehold_V1_ListInodes()
            list.page = page(p)
            return .listInodes(list)
        case .showInode(let inode):
            var show = Leasehold_V1_ShowInode()
            show.inode = inode.rawValue
            return .showInode(show)
        case .listTargets:
            return .listTargets(Leasehold_V1_ListTargets())
        case .checkInvariants:
            return .checkInvariants(Leasehold_V1_CheckInvariants())
        case .readEvents(let after, let limit):
            var read = Leasehold_V1_ReadEvents()
            read.afterRevision = after.rawValue
            read.limit = UInt32(clamping: limit)
            return .readEvents(read)
        }
    }
}
