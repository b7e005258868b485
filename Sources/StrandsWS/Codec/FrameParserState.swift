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
