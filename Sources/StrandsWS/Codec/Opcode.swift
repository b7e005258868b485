/// A WebSocket frame opcode (RFC 6455 §5.2), the low four bits of a frame's first byte.
///
/// A struct rather than a closed enum: a parser meets every 4-bit value, and the reserved ones must be
/// representable to be rejected with close code 1002.
public struct Opcode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8

    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue & 0x0F }

    // Computed and inlinable, so that a use in another module is a constant, not a call to the
    // accessor of a lazily initialized global.
    @inlinable public static var continuation: Opcode { Opcode(rawValue: 0x0) }
    @inlinable public static var text: Opcode { Opcode(rawValue: 0x1) }
    @inlinable public static var binary: Opcode { Opcode(rawValue: 0x2) }
    @inlinable public static var close: Opcode { Opcode(rawValue: 0x8) }
    @inlinable public static var ping: Opcode { Opcode(rawValue: 0x9) }
    @inlinable public static var pong: Opcode { Opcode(rawValue: 0xA) }

    /// Close, ping and pong: at most 125 bytes of payload, never fragmented (RFC 6455 §5.5).
    @inlinable public var isControl: Bool { self.rawValue & 0x8 != 0 }

    /// 0x3–0x7 and 0xB–0xF are reserved; a frame carrying one is a protocol error (RFC 6455 §5.2).
    public var isReserved: Bool { !(self.rawValue <= 0x2 || (0x8...0xA).contains(self.rawValue)) }

    public var description: String {
        switch self.rawValue {
        case 0x0: "continuation"
        case 0x1: "text"
        case 0x2: "binary"
        case 0x8: "close"
        case 0x9: "ping"
        case 0xA: "pong"
        default: "reserved(0x\(String(self.rawValue, radix: 16)))"
        }
    }
}
