/// RFC 6455 §5.3 masking: byte *i* of the payload is XORed with byte *(i mod 4)* of the 4-byte key.
public enum Masking {
    /// XORs `buffer` in place with `key`, starting at key byte `phase` (0...3); returns the phase after it.
    ///
    /// The key is the four mask bytes as they sit in the frame, loaded little-endian (byte 0 lowest).
    /// Eight bytes per step with unaligned loads; a payload split across reads continues at `phase`.
    @inline(__always)
    @discardableResult
    public static func apply(key: UInt32, phase: Int, to buffer: UnsafeMutableRawBufferPointer) -> Int {
        let count = buffer.count
        guard count > 0, let base = buffer.baseAddress else { return phase }
        let shift = UInt32(phase & 3) * 8
        // Rotate so that byte 0 of `rotated` is the key byte this buffer starts with.
        let rotated = shift == 0 ? key : (key >> shift) | (key << (32 - shift))
        let wide = UInt64(rotated) | UInt64(rotated) << 32
        var offset = 0
        while offset + 32 <= count {
            // Four words per step lets the compiler keep them in flight together.
            let p = base + offset
            p.storeBytes(of: p.loadUnaligned(as: UInt64.self) ^ wide, as: UInt64.self)
            (p + 8).storeBytes(of: (p + 8).loadUnaligned(as: UInt64.self) ^ wide, as: UInt64.self)
            (p + 16).storeBytes(of: (p + 16).loadUnaligned(as: UInt64.self) ^ wide, as: UInt64.self)
            (p + 24).storeBytes(of: (p + 24).loadUnaligned(as: UInt64.self) ^ wide, as: UInt64.self)
            offset += 32
        }
        while offset + 8 <= count {
            let p = base + offset
            p.storeBytes(of: p.loadUnaligned(as: UInt64.self) ^ wide, as: UInt64.self)
            offset += 8
        }
        var tail = rotated
        while offset < count {
            let p = base + offset
            p.storeBytes(of: p.load(as: UInt8.self) ^ UInt8(truncatingIfNeeded: tail), as: UInt8.self)
            tail = (tail >> 8) | (tail << 24)
            offset += 1
        }
        return (phase + count) & 3
    }

    /// Copies `source` into `destination` (same length) masked with `key` from phase 0.
    @inline(__always)
    public static func copy(_ source: UnsafeRawBufferPointer, maskedWith key: UInt32,
                            into destination: UnsafeMutableRawBufferPointer) {
        precondition(destination.count == source.count)
        guard source.count > 0 else { return }
        destination.baseAddress!.copyMemory(from: source.baseAddress!, byteCount: source.count)
        Masking.apply(key: key, phase: 0, to: destination)
    }
}
