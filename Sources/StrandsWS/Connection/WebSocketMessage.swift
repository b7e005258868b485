/// A received message, borrowed from the read buffer (or the reassembly buffer) for one call.
public struct WebSocketMessage {
    /// ``Opcode/text`` or ``Opcode/binary``.
    public let opcode: Opcode
    /// The payload, unmasked. Valid only during the handler call; copy what must outlive it.
    public let bytes: UnsafeRawBufferPointer

    public init(opcode: Opcode, bytes: UnsafeRawBufferPointer) {
        self.opcode = opcode
        self.bytes = bytes
    }

    /// The payload as a `String` (copied; text messages are valid UTF-8 by the time they get here).
    public var text: String { String(decoding: self.bytes, as: UTF8.self) }

    /// The payload as an array (copied).
    public var data: [UInt8] { Array(self.bytes) }
}

@available(*, unavailable)
extension WebSocketMessage: Sendable {}
