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
