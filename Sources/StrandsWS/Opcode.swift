@_exported import StrandsLoop

/// A WebSocket frame opcode (RFC 6455 §5.2), the low four bits of a frame's first byte.
///
/// A struct rather than a closed enum: a parser meets every 4-bit value, and the reserved ones must be
/// representable to be rejected with close code 1002.
public struct Opcode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8

    public init(rawValue: UInt8) { self.rawValue = rawValue & 0x0F }

    public static let continuation = Opcode(rawValue: 0x0)
    public static let text = Opcode(rawValue: 0x1)
    public static let binary = Opcode(rawValue: 0x2)
    public static let close = Opcode(rawValue: 0x8)
    public static let ping = Opcode(rawValue: 0x9)
    public static let pong = Opcode(rawValue: 0xA)

    /// Close, ping and pong: at most 125 bytes of payload, never fragmented (RFC 6455 §5.5).
    public var isControl: Bool { self.rawValue & 0x8 != 0 }

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
