/// Receives what a ``FrameParser`` finds. Each payload is borrowed: valid only during the call.
public protocol FrameParserSink {
    /// A complete text or binary message (reassembled if it came in fragments, UTF-8 checked if text
    /// and not transformed by an extension). Return `false` to stop parsing after it.
    mutating func parser(didReceiveMessage opcode: Opcode, payload: UnsafeMutableRawBufferPointer) -> Bool
    /// A complete message whose first frame carried reserved bits that a negotiated extension owns
    /// (``FrameParser/allowedRSV``): `rsv` holds them (0x40 is RSV1). Such text is not UTF-8 checked
    /// here: only the extension can tell what the bytes mean. The default hands it on as an ordinary
    /// message.
    mutating func parser(didReceiveMessage opcode: Opcode, rsv: UInt8, payload: UnsafeMutableRawBufferPointer) -> Bool
    /// A complete ping, pong or close frame; a close payload has been validated (code, UTF-8 reason).
    /// Return `false` to stop parsing after it.
    mutating func parser(didReceiveControl opcode: Opcode, payload: UnsafeMutableRawBufferPointer) -> Bool
}

extension FrameParserSink {
    public mutating func parser(didReceiveMessage opcode: Opcode, rsv: UInt8,
                                payload: UnsafeMutableRawBufferPointer) -> Bool {
        self.parser(didReceiveMessage: opcode, payload: payload)
    }
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
