/// Writing frame headers (RFC 6455 §5.2).
public enum FrameHeader {
    /// The longest header: 2 bytes, 8 of extended length, 4 of mask key.
    public static let maxSize = 14

    /// The length of the header ``write(opcode:fin:payloadLength:maskKey:into:)`` writes.
    @inline(__always)
    public static func length(payloadLength: Int, masked: Bool) -> Int {
        (payloadLength < 126 ? 2 : payloadLength <= 0xFFFF ? 4 : 10) + (masked ? 4 : 0)
    }

    /// Writes the header of a frame into `buffer` (at least ``maxSize`` bytes) and returns its length.
    /// - Parameters:
    ///   - maskKey: The mask key for a client frame (see ``Masking``), or `nil` for a server frame.
    @inline(__always)
    public static func write(
        opcode: Opcode,
        fin: Bool = true,
        payloadLength: Int,
        maskKey: UInt32?,
        into buffer: UnsafeMutableRawPointer
    ) -> Int {
        buffer.storeBytes(of: (fin ? 0x80 : 0) | opcode.rawValue, as: UInt8.self)
        let maskBit: UInt8 = maskKey == nil ? 0 : 0x80
        var length: Int
        if payloadLength < 126 {
            buffer.storeBytes(of: maskBit | UInt8(payloadLength), toByteOffset: 1, as: UInt8.self)
            length = 2
        } else if payloadLength <= 0xFFFF {
            buffer.storeBytes(of: maskBit | 126, toByteOffset: 1, as: UInt8.self)
            buffer.storeBytes(of: UInt16(payloadLength).bigEndian, toByteOffset: 2, as: UInt16.self)
            length = 4
        } else {
            buffer.storeBytes(of: maskBit | 127, toByteOffset: 1, as: UInt8.self)
            buffer.storeBytes(of: UInt64(payloadLength).bigEndian, toByteOffset: 2, as: UInt64.self)
            length = 10
        }
        if let maskKey {
            buffer.storeBytes(of: maskKey, toByteOffset: length, as: UInt32.self)
            length += 4
        }
        return length
    }
}
