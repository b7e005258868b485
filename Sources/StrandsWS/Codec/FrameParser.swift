/// An incremental RFC 6455 frame parser that copes with any split of the byte stream.
///
/// Frames are unmasked in place in the caller's buffer. A data frame that arrives whole, unfragmented, in
/// one buffer is handed to the sink straight from that buffer: no copy, no allocation. Everything a frame
/// or message that spans buffers needs (a split header of at most 14 bytes, the frame's position, its
/// mask phase, the UTF-8 state, the reassembly and control buffers) lives in a ``FrameParserState`` that
/// exists only while something is incomplete: between messages a parser is three configuration fields and
/// a nil pointer. Call ``release()`` when done with a parser that may hold some.
///
/// Checks, each failing with its RFC close code: reserved bits no negotiated extension owns (1002), reserved
/// opcodes (1002), fragmented or oversized control frames (1002), masking wrong for the role (1002),
/// 64-bit lengths with the top bit set (1002), continuation without a message or a new message inside
/// one (1002), messages over ``maxMessageSize`` (1009, decided from the header, before the payload
/// arrives), text that is not UTF-8 (1007, at the first impossible byte), and close frames with a 1-byte
/// payload, a code peers may not send, or a reason that is not UTF-8 (1002 / 1002 / 1007).
public struct FrameParser {
    /// Whether frames must be masked (a server's view of a client) or must not be (a client's view).
    public let expectMasked: Bool
    /// The RSV bits (0x40 RSV1, 0x20 RSV2, 0x10 RSV3) a negotiated extension owns; a frame with any
    /// other reserved bit fails with 1002. 0 without extensions.
    public var allowedRSV: UInt8
    /// The largest message, in payload bytes summed over its fragments.
    public var maxMessageSize: Int
    /// What an incomplete frame or message needs; `nil` between messages.
    var state: FrameParserState?

    public init(expectMasked: Bool, maxMessageSize: Int, allowedRSV: UInt8 = 0) {
        self.expectMasked = expectMasked
        self.maxMessageSize = maxMessageSize
        self.allowedRSV = allowedRSV & 0x70
    }

    /// True while a message or frame is partly received (storage is held).
    public var isMidMessage: Bool { self.state?.isMidMessage ?? false }

    /// Frees any partial-message storage.
    public mutating func release() { self.state = nil }

    /// Parses `input`, unmasking it in place, and reports messages and control frames to `sink`.
    public mutating func parse<Sink: FrameParserSink>(
        _ input: UnsafeMutableRawBufferPointer,
        into sink: inout Sink
    ) -> FrameParseResult {
        Self.parse(input, expectMasked: self.expectMasked, maxMessageSize: self.maxMessageSize,
                   allowedRSV: self.allowedRSV, state: &self.state, into: &sink)
    }

    /// The parser itself, over state kept wherever the caller keeps it (a connection holds only the
    /// `state` pointer; its limits come from its server's configuration).
    @inline(__always)
    static func parse<Sink: FrameParserSink>(
        _ input: UnsafeMutableRawBufferPointer,
        expectMasked: Bool,
        maxMessageSize: Int,
        allowedRSV: UInt8,
        state: inout FrameParserState?,
        into sink: inout Sink
    ) -> FrameParseResult {
        guard let base = input.baseAddress else { return .consumedAll }
        let count = input.count
        var p = 0
        while state == nil {
            if let result = Self.parseOrdinary(base, count, &p, expectMasked: expectMasked,
                                               maxMessageSize: maxMessageSize, into: &sink) {
                if case .failed = result { state = FrameParserState(failure: result) }
                return result
            }
            if p == count { return .consumedAll }
            // A frame the ordinary loop does not take (a control frame, reserved bits, a 64-bit length)
            // needs no state either when all of it is here and it is not part of a fragmented message.
            guard let header = HeaderFields.parse(base + p, available: count - p),
                  header.payloadLength >= 0, header.payloadLength <= count - p - header.length,
                  header.opcode.isControl || (header.fin && header.opcode != .continuation)
            else { break }
            if let failure = FrameParserState.check(header, messageOpcode: nil, messageSize: 0,
                                                    expectMasked: expectMasked, maxMessageSize: maxMessageSize,
                                                    allowedRSV: allowedRSV) {
                state = FrameParserState(failure: failure)
                return failure
            }
            p += header.length
            if let result = FrameParserState.deliverWhole(header, base + p, into: &sink) {
                if case .failed = result { state = FrameParserState(failure: result) }
                if case .stopped = result { return .stopped(consumed: p + header.payloadLength) }
                return result
            }
            p += header.payloadLength
        }
        if state == nil { state = FrameParserState() }
        let parsing = state.unsafelyUnwrapped
        let result = parsing.parse(base, count, p, expectMasked: expectMasked, maxMessageSize: maxMessageSize,
                                   allowedRSV: allowedRSV, into: &sink)
        // Storage exists only while something is incomplete (or to remember a failure).
        if !parsing.isMidMessage && parsing.failure == nil { state = nil }
        return result
    }


    /// The run of frames that nearly every read is: whole, unfragmented text or binary messages with no
    /// reserved bits, masked as the role expects, with 7- or 16-bit lengths, each entirely in `base`
    /// from `p` on. Decided from the first two header bytes, with no header record built and no frame
    /// state touched. Stops (`nil`, `p` at the first frame it did not take) at anything else, which the
    /// general path then handles; returns a result only when the sink stops or a text is not UTF-8.
    ///
    /// Only while no message, frame or header is in progress: the sink's calls cannot change that.
    @inline(__always)
    static func parseOrdinary<Sink: FrameParserSink>(
        _ base: UnsafeMutableRawPointer, _ count: Int, _ p: inout Int, expectMasked: Bool, maxMessageSize: Int,
        into sink: inout Sink
    ) -> FrameParseResult? {
        let maskBit: UInt8 = expectMasked ? 0x80 : 0
        let limit = maxMessageSize
        while count - p >= 2 {
            let byte0 = base.load(fromByteOffset: p, as: UInt8.self)
            let byte1 = base.load(fromByteOffset: p + 1, as: UInt8.self)
            // FIN, RSV 0, text (0x81) or binary (0x82); the mask bit as expected.
            guard byte0 &- 0x81 < 2, byte1 & 0x80 == maskBit else { return nil }
            var length = Int(byte1 & 0x7F)
            var headerLength = 2
            if length >= 126 {
                guard length == 126, count - p >= 4 else { return nil }
                length = Int(UInt16(bigEndian: base.loadUnaligned(fromByteOffset: p + 2, as: UInt16.self)))
                headerLength = 4
            }
            if maskBit != 0 { headerLength += 4 }
            guard length <= limit, headerLength + length <= count - p else { return nil }
            let payload = UnsafeMutableRawBufferPointer(start: base + p + headerLength, count: length)
            if maskBit != 0 {
                let key = base.loadUnaligned(fromByteOffset: p + headerLength - 4, as: UInt32.self)
                Masking.apply(key: key, phase: 0, to: payload)
            }
            p += headerLength + length
            // The ASCII pass inline (a run of short text frames calls it once each); the state machine
            // only for text that has other bytes.
            if byte0 == 0x81 && !UTF8Validator.isASCII(UnsafeRawBufferPointer(payload))
                && !UTF8Validator.isValidBeyondASCII(UnsafeRawBufferPointer(payload))
            {
                return .failed(.invalidPayload, "text message is not valid UTF-8")
            }
            if !sink.parser(didReceiveMessage: Opcode(rawValue: byte0), payload: payload) {
                return .stopped(consumed: p)
            }
        }
        return nil
    }
}

@available(*, unavailable)
extension FrameParser: Sendable {}

/// The state of a frame or message that spans buffers. Allocated when a read ends inside one (or a
/// message is fragmented), freed when it completes; kept after a failure, which it then repeats.
final class FrameParserState {
    // Declared in the order of use: the frame's position first, the buffers last.
    var failure: FrameParseResult?
    // The frame whose payload is being read.
    var remaining = 0
    var maskPhase = 0
    var messageSize = 0
    var spillCount = 0
    var maskKey: UInt32 = 0
    var utf8 = UTF8Validator()
    var inPayload = false
    var frameOpcode = Opcode.continuation
    var frameFin = false
    var frameMasked = false
    // The data message being assembled, if any, and the reserved bits of its first frame.
    var messageOpcode: Opcode?
    var messageRSV: UInt8 = 0
    // Header spill: up to 14 bytes of a header split across buffers.
    var spill: (UInt64, UInt64) = (0, 0)
    var message = RawBuffer()
    var control = RawBuffer()

    init(failure: FrameParseResult? = nil) { self.failure = failure }

    deinit {
        self.message.free()
        self.control.free()
    }

    var isMidMessage: Bool { self.messageOpcode != nil || self.inPayload || self.spillCount > 0 }

    /// The general path, from `p` on: headers in place or through the spill, payloads in pieces.
    func parse<Sink: FrameParserSink>(
        _ base: UnsafeMutableRawPointer, _ count: Int, _ start: Int, expectMasked: Bool, maxMessageSize: Int,
        allowedRSV: UInt8, into sink: inout Sink
    ) -> FrameParseResult {
        if let failure = self.failure { return failure }
        var p = start
        while p < count {
            if !self.inPayload && self.spillCount == 0 && self.messageOpcode == nil {
                if let result = FrameParser.parseOrdinary(base, count, &p, expectMasked: expectMasked,
                                                          maxMessageSize: maxMessageSize, into: &sink) {
                    if case .failed = result { self.failure = result }
                    return result
                }
                if p == count { break }
            }
            if !self.inPayload {
                // A header: parse it in place, or through the spill when it is split.
                var header = HeaderFields()
                if self.spillCount == 0, let parsed = HeaderFields.parse(base + p, available: count - p) {
                    header = parsed
                    p += header.length
                } else {
                    p += self.fillSpill(base + p, available: count - p)
                    guard let parsed = self.parseSpill() else { return .consumedAll }
                    header = parsed
                    self.spillCount = 0
                }
                if let failure = Self.check(header, messageOpcode: self.messageOpcode, messageSize: self.messageSize,
                                            expectMasked: expectMasked, maxMessageSize: maxMessageSize,
                                            allowedRSV: allowedRSV) {
                    return self.fail(failure)
                }

                // A whole unfragmented data frame, or a whole control frame, in this buffer: handed over
                // from where it lies. The frame state below is for frames that continue past this buffer.
                if header.payloadLength <= count - p
                    && (header.opcode.isControl || (header.fin && self.messageOpcode == nil))
                {
                    if let result = Self.deliverWhole(header, base + p, into: &sink) {
                        if case .failed = result { return self.fail(result) }
                        if case .stopped = result { return .stopped(consumed: p + header.payloadLength) }
                        return result
                    }
                    p += header.payloadLength
                    continue
                }
                self.frameOpcode = header.opcode
                self.frameFin = header.fin
                self.frameMasked = header.masked
                self.maskKey = header.maskKey
                self.maskPhase = 0
                self.remaining = header.payloadLength
                self.inPayload = true
                if !header.opcode.isControl && header.opcode != .continuation {
                    self.messageOpcode = header.opcode
                    self.messageRSV = header.rsv
                    self.messageSize = 0
                    self.utf8 = UTF8Validator()
                }
            }

            // Payload of the current frame, possibly only part of it.
            let take = min(self.remaining, count - p)
            let chunk = UnsafeMutableRawBufferPointer(start: base + p, count: take)
            if self.frameMasked { self.maskPhase = Masking.apply(key: self.maskKey, phase: self.maskPhase, to: chunk) }
            p += take
            self.remaining -= take
            if self.frameOpcode.isControl {
                self.control.append(UnsafeRawBufferPointer(chunk))
            } else {
                if self.messageOpcode == .text && self.messageRSV == 0 && !self.utf8.validate(UnsafeRawBufferPointer(chunk)) {
                    return self.fail(.failed(.invalidPayload, "text message is not valid UTF-8"))
                }
                self.message.append(UnsafeRawBufferPointer(chunk))
                self.messageSize += take
            }
            guard self.remaining == 0 else { continue }
            self.inPayload = false
            if self.frameOpcode.isControl {
                let payload = self.control.mutableBytes
                if let failure = Self.checkControl(self.frameOpcode, payload) { return self.fail(failure) }
                let keepGoing = sink.parser(didReceiveControl: self.frameOpcode, payload: payload)
                self.control.free()
                if !keepGoing { return .stopped(consumed: p) }
            } else if self.frameFin {
                if self.messageOpcode == .text && self.messageRSV == 0 && !self.utf8.isComplete {
                    return self.fail(.failed(.invalidPayload, "text message ends inside a UTF-8 sequence"))
                }
                let opcode = self.messageOpcode!
                self.messageOpcode = nil
                let keepGoing = self.messageRSV == 0
                    ? sink.parser(didReceiveMessage: opcode, payload: self.message.mutableBytes)
                    : sink.parser(didReceiveMessage: opcode, rsv: self.messageRSV, payload: self.message.mutableBytes)
                // Storage exists only while a message is incomplete.
                self.message.free()
                if !keepGoing { return .stopped(consumed: p) }
            }
        }
        return .consumedAll
    }


    private func fail(_ result: FrameParseResult) -> FrameParseResult {
        self.failure = result
        self.message.free()
        self.control.free()
        return result
    }

    /// Unmasks and delivers a frame that is whole at `payload`; `nil` to go on, `.stopped(consumed: 0)`
    /// when the sink stops (the caller knows where), or the failure.
    @inline(__always)
    static func deliverWhole<Sink: FrameParserSink>(
        _ header: HeaderFields, _ start: UnsafeMutableRawPointer, into sink: inout Sink
    ) -> FrameParseResult? {
        let payload = UnsafeMutableRawBufferPointer(start: start, count: header.payloadLength)
        if header.masked { Masking.apply(key: header.maskKey, phase: 0, to: payload) }
        let keepGoing: Bool
        if header.opcode.isControl {
            if let failure = Self.checkControl(header.opcode, payload) { return failure }
            keepGoing = sink.parser(didReceiveControl: header.opcode, payload: payload)
        } else if header.rsv != 0 {
            keepGoing = sink.parser(didReceiveMessage: header.opcode, rsv: header.rsv, payload: payload)
        } else {
            if header.opcode == .text && !UTF8Validator.isValid(UnsafeRawBufferPointer(payload)) {
                return .failed(.invalidPayload, "text message is not valid UTF-8")
            }
            keepGoing = sink.parser(didReceiveMessage: header.opcode, payload: payload)
        }
        return keepGoing ? nil : .stopped(consumed: 0)
    }

    /// Rules that the header alone decides, given the message in progress (if any).
    static func check(_ header: HeaderFields, messageOpcode: Opcode?, messageSize: Int, expectMasked: Bool,
                      maxMessageSize: Int, allowedRSV: UInt8) -> FrameParseResult? {
        if header.rsv & ~allowedRSV != 0 {
            return .failed(.protocolError, "reserved bits set without a negotiated extension")
        }
        if header.opcode.isReserved { return .failed(.protocolError, "reserved opcode \(header.opcode.rawValue)") }
        if header.masked != expectMasked {
            return .failed(.protocolError, expectMasked ? "client frame is not masked" : "server frame is masked")
        }
        if header.payloadLength < 0 { return .failed(.protocolError, "64-bit payload length has its top bit set") }
        if header.opcode.isControl {
            // RFC 7692 §6: extensions' bits are for data frames; a control frame never carries them.
            if header.rsv != 0 { return .failed(.protocolError, "reserved bits set on a control frame") }
            if !header.fin { return .failed(.protocolError, "fragmented control frame") }
            if header.payloadLength > 125 { return .failed(.protocolError, "control frame longer than 125 bytes") }
            return nil
        }
        if header.opcode == .continuation {
            if messageOpcode == nil { return .failed(.protocolError, "continuation frame without a message") }
            // RFC 7692 §6.1: only a message's first frame says it is compressed.
            if header.rsv != 0 { return .failed(.protocolError, "reserved bits set on a continuation frame") }
        } else if messageOpcode != nil {
            return .failed(.protocolError, "new message inside a fragmented message")
        }
        let soFar = header.opcode == .continuation ? messageSize : 0
        if header.payloadLength > maxMessageSize - soFar {
            return .failed(.messageTooBig, "message larger than \(maxMessageSize) bytes")
        }
        return nil
    }

    /// RFC 6455 §5.5.1: a close payload is empty, or a 2-byte code and a UTF-8 reason.
    static func checkControl(_ opcode: Opcode, _ payload: UnsafeMutableRawBufferPointer) -> FrameParseResult? {
        guard opcode == .close, payload.count > 0 else { return nil }
        if payload.count == 1 { return .failed(.protocolError, "close frame with a 1-byte payload") }
        let code = CloseCode(UInt16(payload[0]) << 8 | UInt16(payload[1]))
        if !code.isValidOnTheWire { return .failed(.protocolError, "close code \(code.rawValue) may not be sent") }
        if !UTF8Validator.isValid(UnsafeRawBufferPointer(rebasing: payload[2...])) {
            return .failed(.invalidPayload, "close reason is not valid UTF-8")
        }
        return nil
    }

    /// Copies header bytes into the spill until the header is complete or the input runs out.
    private func fillSpill(_ source: UnsafeMutableRawPointer, available: Int) -> Int {
        var used = 0
        withUnsafeMutableBytes(of: &self.spill) { spill in
            var needed = 2
            while true {
                if self.spillCount >= 2 { needed = HeaderFields.length(spill[0], spill[1]) }
                if self.spillCount >= needed || used >= available { break }
                spill[self.spillCount] = source.load(fromByteOffset: used, as: UInt8.self)
                self.spillCount += 1
                used += 1
            }
        }
        return used
    }

    private func parseSpill() -> HeaderFields? {
        withUnsafeMutableBytes(of: &self.spill) { spill in
            HeaderFields.parse(spill.baseAddress!, available: self.spillCount)
        }
    }
}

@available(*, unavailable)
extension FrameParserState: Sendable {}

/// The fields of one frame header.
struct HeaderFields {
    var fin = false
    var rsv: UInt8 = 0
    var opcode = Opcode.continuation
    var masked = false
    var maskKey: UInt32 = 0
    /// -1 when a 64-bit length has its top bit set (a protocol error).
    var payloadLength = 0
    var length = 0

    /// The header length the first two bytes announce.
    @inline(__always)
    static func length(_ byte0: UInt8, _ byte1: UInt8) -> Int {
        let lengthCode = byte1 & 0x7F
        return 2 + (lengthCode == 126 ? 2 : lengthCode == 127 ? 8 : 0) + (byte1 & 0x80 != 0 ? 4 : 0)
    }

    /// Parses a header from `base` if all of it is within `available` bytes.
    @inline(__always)
    static func parse(_ base: UnsafeMutableRawPointer, available: Int) -> HeaderFields? {
        guard available >= 2 else { return nil }
        let byte0 = base.load(as: UInt8.self)
        let byte1 = base.load(fromByteOffset: 1, as: UInt8.self)
        let length = Self.length(byte0, byte1)
        guard available >= length else { return nil }
        var fields = HeaderFields()
        fields.fin = byte0 & 0x80 != 0
        fields.rsv = byte0 & 0x70
        fields.opcode = Opcode(rawValue: byte0 & 0x0F)
        fields.masked = byte1 & 0x80 != 0
        fields.length = length
        var offset = 2
        switch byte1 & 0x7F {
        case 126:
            fields.payloadLength = Int(UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
            offset = 4
        case 127:
            let wide = UInt64(bigEndian: base.loadUnaligned(fromByteOffset: 2, as: UInt64.self))
            fields.payloadLength = wide > UInt64(Int.max) ? -1 : Int(wide)
            offset = 10
        case let short:
            fields.payloadLength = Int(short)
        }
        if fields.masked { fields.maskKey = base.loadUnaligned(fromByteOffset: offset, as: UInt32.self) }
        return fields
    }
}
