import StrandsTestSupport
@testable import StrandsWS

/// Builds one frame's bytes, masked when `key` is given.
func frame(_ opcode: Opcode, _ payload: [UInt8], fin: Bool = true, key: UInt32? = 0x1234_5678, rsv: UInt8 = 0) -> [UInt8] {
    var header = [UInt8](repeating: 0, count: FrameHeader.maxSize)
    let length = header.withUnsafeMutableBytes {
        FrameHeader.write(opcode: opcode, fin: fin, payloadLength: payload.count, maskKey: key, into: $0.baseAddress!)
    }
    header[0] |= rsv << 4
    var body = payload
    if let key { body.withUnsafeMutableBytes { _ = Masking.apply(key: key, phase: 0, to: $0) } }
    return Array(header[0..<length]) + body
}

/// What a parser reported, in order.
enum Event: Equatable, CustomStringConvertible {
    case message(Opcode, [UInt8])
    case control(Opcode, [UInt8])

    var description: String {
        switch self {
        case .message(let op, let bytes): "message(\(op), \(bytes.count) bytes)"
        case .control(let op, let bytes): "control(\(op), \(bytes.count) bytes)"
        }
    }
}

struct Recorder: FrameParserSink {
    var events: [Event] = []
    var stopAfterClose = false

    mutating func parser(didReceiveMessage opcode: Opcode, payload: UnsafeMutableRawBufferPointer) -> Bool {
        self.events.append(.message(opcode, Array(payload)))
        return true
    }

    mutating func parser(didReceiveControl opcode: Opcode, payload: UnsafeMutableRawBufferPointer) -> Bool {
        self.events.append(.control(opcode, Array(payload)))
        return !(self.stopAfterClose && opcode == .close)
    }
}

/// Feeds `bytes` to a fresh parser in pieces ending at `cuts`; returns the events and the last result.
func parse(_ bytes: [UInt8], cuts: [Int] = [], expectMasked: Bool = true, maxMessageSize: Int = 1 << 20)
    -> (events: [Event], result: FrameParseResult)
{
    var parser = FrameParser(expectMasked: expectMasked, maxMessageSize: maxMessageSize)
    defer { parser.release() }
    var recorder = Recorder()
    var result = FrameParseResult.consumedAll
    var start = 0
    for end in cuts + [bytes.count] where end >= start {
        // Each piece gets its own buffer, as each read would: the parser must keep nothing pointing back.
        var piece = Array(bytes[start..<end])
        result = piece.withUnsafeMutableBytes { parser.parse($0, into: &recorder) }
        start = end
        if result != .consumedAll { break }
    }
    return (recorder.events, result)
}
