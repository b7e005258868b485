/// Receives what a ``FrameParser`` finds. Each payload is borrowed: valid only during the call.
public protocol FrameParserSink {
    /// A complete text or binary message (reassembled if it came in fragments, UTF-8 checked if text).
    /// Return `false` to stop parsing after it.
    mutating func parser(didReceiveMessage opcode: Opcode, payload: UnsafeMutableRawBufferPointer) -> Bool
    /// A complete ping, pong or close frame; a close payload has been validated (code, UTF-8 reason).
    /// Return `false` to stop parsing after it.
    mutating func parser(didReceiveControl opcode: Opcode, payload: UnsafeMutableRawBufferPointer) -> Bool
}

/// What a parse call ended with.
public enum FrameParseResult: Equatable, Sendable {
    /// Every byte was consumed; more may come.
    case consumedAll
    /// The sink asked to stop after `consumed` bytes.
    case stopped(consumed: Int)
    /// The peer broke the protocol: close with `code`. The parser stays failed.
    case failed(CloseCode, String)
}

/// An incremental RFC 6455 frame parser that copes with any split of the byte stream.
///
/// Frames are unmasked in place in the caller's buffer. A data frame that arrives whole, unfragmented, in
/// one buffer is handed to the sink straight from that buffer: no copy, no allocation. Only a header
/// split across buffers (at most 14 bytes, kept inline), a control frame split across buffers (at most
/// 125 bytes) or a message that spans buffers or fragments is copied, into storage that exists only
/// while that message is incomplete. Call ``release()`` when done with a parser that may hold some.
///
/// Checks, each failing with its RFC close code: reserved bits without an extension (1002), reserved
/// opcodes (1002), fragmented or oversized control frames (1002), masking wrong for the role (1002),
/// 64-bit lengths with the top bit set (1002), continuation without a message or a new message inside
/// one (1002), messages over ``maxMessageSize`` (1009, decided from the header, before the payload
/// arrives), text that is not UTF-8 (1007, at the first impossible byte), and close frames with a 1-byte
/// payload, a code peers may not send, or a reason that is not UTF-8 (1002 / 1002 / 1007).
public struct FrameParser {
    // Declared in the order of use: what every frame reads comes first, in one or two cache lines (a
    // server with thousands of connections meets each parser cold); the buffers of split headers and
    // fragmented messages come last.
    private var failure: FrameParseResult?
    /// The largest message, in payload bytes summed over its fragments.
    public var maxMessageSize: Int
    // The frame whose payload is being read.
    private var remaining = 0
    private var maskPhase = 0
    private var messageSize = 0
    private var spillCount = 0
    private var maskKey: UInt32 = 0
    private var utf8 = UTF8Validator()
    /// Whether frames must be masked (a server's view of a client) or must not be (a client's view).
    public let expectMasked: Bool
    private var inPayload = false
    private var frameOpcode = Opcode.continuation
    private var frameFin = false
    private var frameMasked = false
    // The data message being assembled, if any.
    private var messageOpcode: Opcode?
    // Header spill: up to 14 bytes of a header split across buffers, inline.
    private var spill: (UInt64, UInt64) = (0, 0)
    private var message = RawBuffer()
    private var control = RawBuffer()

    public init(expectMasked: Bool, maxMessageSize: Int) {
        self.expectMasked = expectMasked
        self.maxMessageSize = maxMessageSize
    }

    /// True while a message or frame is partly received (storage may be held).
    public var isMidMessage: Bool { self.messageOpcode != nil || self.inPayload || self.spillCount > 0 }

    /// Frees any partial-message storage.
    public mutating func release() {
        self.message.free()
        self.control.free()
    }

    /// Parses `input`, unmasking it in place, and reports messages and control frames to `sink`.
    public mutating func parse<Sink: FrameParserSink>(
        _ input: UnsafeMutableRawBufferPointer,
        into sink: inout Sink
    ) -> FrameParseResult {
        if let failure = self.failure { return failure }
        guard let base = input.baseAddress else { return .consumedAll }
        let count = input.count
        var p = 0
        while p < count {
            if !self.inPayload && self.spillCount == 0 && self.messageOpcode == nil {
                if let result = self.parseOrdinary(base, count, &p, into: &sink) { return result }
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
                if let failure = self.check(header) { return self.fail(failure) }

                // The common case: a whole unfragmented data frame, or a whole control frame, in this
                // buffer. Hand it over from where it lies; the frame state below is for frames that
                // continue past this buffer, so this path leaves it alone.
                if header.payloadLength <= count - p
                    && (header.opcode.isControl || (header.fin && self.messageOpcode == nil))
                {
                    let payload = UnsafeMutableRawBufferPointer(start: base + p, count: header.payloadLength)
                    if header.masked { Masking.apply(key: header.maskKey, phase: 0, to: payload) }
                    p += header.payloadLength
                    let keepGoing: Bool
                    if header.opcode.isControl {
                        if let failure = Self.checkControl(header.opcode, payload) { return self.fail(failure) }
                        keepGoing = sink.parser(didReceiveControl: header.opcode, payload: payload)
                    } else {
                        if header.opcode == .text && !UTF8Validator.isValid(UnsafeRawBufferPointer(payload)) {
                            return self.fail(.failed(.invalidPayload, "text message is not valid UTF-8"))
                        }
                        keepGoing = sink.parser(didReceiveMessage: header.opcode, payload: payload)
                    }
                    if !keepGoing { return .stopped(consumed: p) }
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
                if self.messageOpcode == .text && !self.utf8.validate(UnsafeRawBufferPointer(chunk)) {
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
                if self.messageOpcode == .text && !self.utf8.isComplete {
                    return self.fail(.failed(.invalidPayload, "text message ends inside a UTF-8 sequence"))
                }
                let opcode = self.messageOpcode!
                self.messageOpcode = nil
                let keepGoing = sink.parser(didReceiveMessage: opcode, payload: self.message.mutableBytes)
                // Storage exists only while a message is incomplete.
                self.message.free()
                if !keepGoing { return .stopped(consumed: p) }
            }
        }
        return .consumedAll
    }

    /// The run of frames that nearly every read is: whole, unfragmented text or binary messages with no
    /// reserved bits, masked as the role expects, with 7- or 16-bit lengths, each entirely in `base`
    /// from `p` on. Decided from the first two header bytes, with no header record built and no frame
    /// state touched. Stops (`nil`, `p` at the first frame it did not take) at anything else, which the
    /// general path then handles; returns a result only when the sink stops or a text is not UTF-8.
    ///
    /// Only while no message, frame or header is in progress: the sink's calls cannot change that.
    @inline(__always)
    private mutating func parseOrdinary<Sink: FrameParserSink>(
        _ base: UnsafeMutableRawPointer, _ count: Int, _ p: inout Int, into sink: inout Sink
    ) -> FrameParseResult? {
        let maskBit: UInt8 = self.expectMasked ? 0x80 : 0
        let limit = self.maxMessageSize
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
                return self.fail(.failed(.invalidPayload, "text message is not valid UTF-8"))
            }
            if !sink.parser(didReceiveMessage: Opcode(rawValue: byte0), payload: payload) {
                return .stopped(consumed: p)
            }
        }
        return nil
    }

    private mutating func fail(_ result: FrameParseResult) -> FrameParseResult {
        self.failure = result
        self.release()
        return result
    }

    /// Rules that the header alone decides.
    private func check(_ header: HeaderFields) -> FrameParseResult? {
        if header.rsv != 0 { return .failed(.protocolError, "reserved bits set without a negotiated extension") }
        if header.opcode.isReserved { return .failed(.protocolError, "reserved opcode \(header.opcode.rawValue)") }
        if header.masked != self.expectMasked {
            return .failed(.protocolError, self.expectMasked ? "client frame is not masked" : "server frame is masked")
        }
        if header.payloadLength < 0 { return .failed(.protocolError, "64-bit payload length has its top bit set") }
        if header.opcode.isControl {
            if !header.fin { return .failed(.protocolError, "fragmented control frame") }
            if header.payloadLength > 125 { return .failed(.protocolError, "control frame longer than 125 bytes") }
            return nil
        }
        if header.opcode == .continuation {
            if self.messageOpcode == nil { return .failed(.protocolError, "continuation frame without a message") }
        } else if self.messageOpcode != nil {
            return .failed(.protocolError, "new message inside a fragmented message")
        }
        let soFar = header.opcode == .continuation ? self.messageSize : 0
        if header.payloadLength > self.maxMessageSize - soFar {
            return .failed(.messageTooBig, "message larger than \(self.maxMessageSize) bytes")
        }
        return nil
    }

    /// RFC 6455 §5.5.1: a close payload is empty, or a 2-byte code and a UTF-8 reason.
    private static func checkControl(_ opcode: Opcode, _ payload: UnsafeMutableRawBufferPointer) -> FrameParseResult? {
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
    private mutating func fillSpill(_ source: UnsafeMutableRawPointer, available: Int) -> Int {
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

    private mutating func parseSpill() -> HeaderFields? {
        withUnsafeMutableBytes(of: &self.spill) { spill in
            HeaderFields.parse(spill.baseAddress!, available: self.spillCount)
        }
    }
}

@available(*, unavailable)
extension FrameParser: Sendable {}

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
