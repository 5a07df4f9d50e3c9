// The fuzz target: every input is a byte stream as a connection would deliver it. It is
// split into frames (as many as it holds, the last one possibly truncated or oversized),
// each frame decoded as an envelope, and each envelope's request, response or push mapped
// to Core values, exactly as the server (requests) and the client library (responses,
// pushes) do. Errors are expected; a crash, a hang or a sanitizer report is a finding.
//
// With LEASEHOLD_FUZZ_SEEDS=DIR set, the first call writes a seed corpus of real frames
// into DIR (one framed request per command kind, and responses and pushes), and no call
// fuzzes anything (scripts/fuzz runs it so with -runs=1).

import Foundation
import LeaseholdCore
import LeaseholdMessages
import LeaseholdWire
import NIOCore

/// The frame limit of the server's default configuration, small enough that an input can
/// reach it.
let maxFrameLength = 64 << 10

/// Where to write the seeds, read once: the environment is copied on every read, which
/// would cost each input an allocation storm (and once, under load, a timeout report).
let seedsDirectory = ProcessInfo.processInfo.environment["LEASEHOLD_FUZZ_SEEDS"]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecoder(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    if let directory = seedsDirectory {
        // Not `exit`: libFuzzer would report an exit inside the target as a finding.
        if !Seeds.written {
            Seeds.written = true
            Seeds.write(to: directory)
        }
        return 0
    }
    var buffer = ByteBufferAllocator().buffer(capacity: count)
    buffer.writeBytes(UnsafeRawBufferPointer(start: start, count: count))
    let processor = NIOSingleStepByteToMessageProcessor(FrameDecoder(maxFrameLength: maxFrameLength))
    do {
        try processor.process(buffer: buffer) { frame in decodeFrame(frame) }
        try processor.finishProcessing(seenEOF: true) { frame in decodeFrame(frame) }
    } catch {
        // An oversized or truncated frame: the server closes the connection.
    }
    return 0
}

func decodeFrame(_ frame: ByteBuffer) {
    guard let envelope = try? EnvelopeCodec.decode(frame) else { return }
    switch envelope.body {
    case .request(let request)?:
        if let body = try? WireRequestBody(wire: request) {
            // What decodes must encode again (the client library's direction).
            _ = try? body.wire()
        }
    case .response(let response)?:
        _ = try? Reply(wire: response)
    case .push(let push)?:
        switch push.body {
        case .sessionPush(let session)?: _ = try? Push(wire: session)
        case .event(let event)?: _ = try? Event(wire: event)
        default: break
        }
    case nil:
        break
    }
}

/// Real frames to start from.
enum Seeds {
    /// Whether this process wrote the seeds already (libFuzzer calls the target on one thread).
    nonisolated(unsafe) static var written = false

    static func write(to directory: String) {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let range = ByteRange(offset: 0, length: 8 * 4_096)
        let blocks = BlockRange(start: 2, count: 6)
        let stateID = LayoutStateID(id: 3, seqid: 2)
        let commands: [WireCommand] = [
            .hello(major: 1, minor: 0, clientName: "fuzz"),
            .openSession(name: "s", ttl: .seconds(10), slots: 64),
            .core(.keepAlive), .core(.resumeSession(4, secret: SessionSecret(high: 1, low: 2))), .core(.closeSession),
            .core(.acknowledgePushes(upTo: 7)), .core(.createInode), .core(.deleteInode(3, policy: .busy, expectedGeneration: 2)),
            .core(.allocate(3, range, waitForBusy: .seconds(1), expectedGeneration: nil)), .core(.markWritten(3, range)),
            .core(.pin(PinRequest(inode: 3, ranges: [range], kind: .longTerm, allocate: true))), .core(.unpin(5)),
            .core(.truncate(3, size: 4_096, policy: .wait(timeout: .seconds(2)), expectedGeneration: 1)),
            .core(.punchHole(3, range, policy: .quarantine(keep: true), expectedGeneration: nil)),
            .core(.layoutGet(3, ranges: [range], iomode: .readWrite)), .core(.layoutReturn(stateID, ranges: [range])),
            .core(.layoutCommit(stateID, newSize: 8_192, written: [range])), .core(.prolongRecall(6)),
            .subscribeFences(after: 2), .core(.acknowledgeFence(4)), .core(.evictSession(8)), .core(.deregisterTarget(name: "t")),
            .core(.forceRelease(blocks)), .core(.deleteQuarantineInode(11)), .core(.setPinSetting(.shortTermOnly)),
            .core(.status), .core(.listBusyExtents(Page(after: 0, limit: 10))), .core(.listFreeExtents(Page(after: 0, limit: 10))),
            .core(.listPins(Page())), .core(.listLayouts(Page())), .core(.listSessions(Page())), .core(.listInodes(Page())),
            .core(.showInode(3)), .core(.listTargets), .core(.checkInvariants), .core(.readEvents(after: 5, limit: 20)),
            .watchEvents(after: 0), .createSnapshot, .readSnapshot(name: "snapshot-1", offset: 0, length: 4_096),
        ]
        var frames: [ByteBuffer] = []
        for (index, command) in commands.enumerated() {
            let tag = command.isMutationRequest ? SlotTag(slot: 1, sequence: UInt64(index + 1)) : nil
            guard let request = try? WireRequestBody(session: 4, tag: tag, command: command).wire() else { continue }
            frames.append(EnvelopeCodec.encode(EnvelopeCodec.request(id: UInt64(index + 1), request)))
        }
        let replies: [Reply] = [
            .success(.keptAlive(ttl: .seconds(10))), .success(.inodeCreated(3)),
            .success(.freeExtents([blocks])), .failure(LeaseholdError(code: .notLeader, message: "a standby")),
        ]
        for (index, reply) in replies.enumerated() { frames.append(EnvelopeCodec.encode(EnvelopeCodec.response(id: UInt64(index + 1), reply.wire))) }
        let pushes = [
            Push(number: 3, body: .layoutRecall(LayoutRecallNotice(recall: 1, stateID: stateID, inode: 3, range: blocks, deadlineIn: .seconds(10)))),
            Push(number: 4, body: .pinRecall(PinRecallNotice(recall: 2, pin: 7, inode: 3, deadlineIn: .seconds(9)))),
        ]
        for push in pushes {
            var wire = Leasehold_V1_Push()
            wire.sessionPush = push.wire(session: 4)
            frames.append(EnvelopeCodec.encode(EnvelopeCodec.push(wire)))
        }
        for (index, frame) in frames.enumerated() {
            let framed = framedStream([frame])
            let path = (directory as NSString).appendingPathComponent(String(format: "seed-%03d", index))
            _ = FileManager.default.createFile(atPath: path, contents: Data(framed.readableBytesView))
        }
        // Two requests in one stream, as a pipelining client sends them.
        if frames.count >= 2 {
            let both = framedStream(Array(frames.prefix(2)))
            _ = FileManager.default.createFile(atPath: (directory as NSString).appendingPathComponent("seed-pipelined"), contents: Data(both.readableBytesView))
        }
    }

    /// `payloads` as a connection carries them, framed by the server's own encoder.
    static func framedStream(_ payloads: [ByteBuffer]) -> ByteBuffer {
        var stream = ByteBufferAllocator().buffer(capacity: 0)
        for payload in payloads { try! FrameEncoder().encode(data: payload, out: &stream) }
        return stream
    }
}

extension WireCommand {
    var isMutationRequest: Bool {
        if case .core(let command) = self { return command.isMutation }
        return false
    }
}
