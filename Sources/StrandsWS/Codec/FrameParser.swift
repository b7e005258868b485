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
