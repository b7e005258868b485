/// RFC 6455 §5.3 masking: byte *i* of the payload is XORed with byte *(i mod 4)* of the 4-byte key.
public enum Masking {
    /// XORs `buffer` in place with `key`, starting at key byte `phase` (0...3); returns the phase after it.
    ///
    /// The key is the four mask bytes as they sit in the frame, loaded little-endian (byte 0 lowest).
    /// Sixteen bytes per vector with unaligned loads; a payload split across reads continues at `phase`.
    @inline(__always)
    @discardableResult
    public static func apply(key: UInt32, phase: Int, to buffer: UnsafeMutableRawBufferPointer) -> Int {
        let count = buffer.count
        guard count > 0, let base = buffer.baseAddress else { return phase }
        let shift = UInt32(phase & 3) * 8
        // Rotate so that byte 0 of `rotated` is the key byte this buffer starts with.
        let rotated = shift == 0 ? key : (key >> shift) | (key << (32 - shift))
        Self.xor(UnsafeRawPointer(base), into: base, count: count, key: rotated)
        return (phase + count) & 3
    }

    /// Copies `source` into `destination` (same length, not overlapping) masked with `key` from phase 0,
    /// in one pass of 16-byte vectors.
    @inline(__always)
    public static func copy(_ source: UnsafeRawBufferPointer, maskedWith key: UInt32,
                            into destination: UnsafeMutableRawBufferPointer) {
        precondition(destination.count == source.count)
        guard source.count > 0, let from = source.baseAddress, let to = destination.baseAddress else { return }
        Self.xor(from, into: to, count: source.count, key: key, overlappingTail: true)
    }

    /// Writes `count` bytes from `source` XORed with `key` (its byte 0 for the first byte) to
    /// `destination`, which is `source` itself or does not overlap it.
    ///
    /// With `overlappingTail` (only when they do not overlap) and at least 16 bytes, a tail shorter than
    /// a vector is done as one last vector ending at the last byte: it rewrites bytes before the tail
    /// with what they already hold (the source is unchanged), at key phase `count % 4`. In place that
    /// would mask those bytes twice, so the tail goes in 8-, 4- and 1-byte steps.
    @inline(__always)
    private static func xor(_ source: UnsafeRawPointer, into destination: UnsafeMutableRawPointer, count: Int,
                            key: UInt32, overlappingTail: Bool = false) {
        let wide = UInt64(key) | UInt64(key) << 32
        let vector = SIMD2<UInt64>(repeating: wide)
        // 16-byte vectors (SSE2 on x86-64, NEON on arm64), two per step. Wrapping arithmetic: offsets
        // stay below `count`, and an overflow check per step is much of what a step costs.
        var offset = 0
        while offset <= count &- 32 {
            let s = source + offset
            let d = destination + offset
            d.storeBytes(of: s.loadUnaligned(as: SIMD2<UInt64>.self) ^ vector, as: SIMD2<UInt64>.self)
            (d + 16).storeBytes(of: (s + 16).loadUnaligned(as: SIMD2<UInt64>.self) ^ vector, as: SIMD2<UInt64>.self)
            offset &+= 32
        }
        if offset <= count &- 16 {
            (destination + offset).storeBytes(of: (source + offset).loadUnaligned(as: SIMD2<UInt64>.self) ^ vector,
                                              as: SIMD2<UInt64>.self)
            offset &+= 16
        }
        if overlappingTail && count >= 16 {
            guard offset < count else { return }
            let shift = UInt64(count & 3) * 8
            let last = shift == 0 ? wide : (wide >> shift) | (wide << (64 - shift))
            (destination + (count - 16)).storeBytes(of: (source + (count - 16)).loadUnaligned(as: SIMD2<UInt64>.self)
                ^ SIMD2(repeating: last), as: SIMD2<UInt64>.self)
            return
        }
        if offset + 8 <= count {
            (destination + offset).storeBytes(of: (source + offset).loadUnaligned(as: UInt64.self) ^ wide,
                                              as: UInt64.self)
            offset += 8
        }
        // Offsets so far are multiples of 8 (and then of 4), so the key starts again at its byte 0.
        if offset + 4 <= count {
            (destination + offset).storeBytes(of: (source + offset).loadUnaligned(as: UInt32.self) ^ key,
                                              as: UInt32.self)
            offset += 4
        }
        var tail = key
        while offset < count {
            (destination + offset).storeBytes(of: (source + offset).load(as: UInt8.self) ^ UInt8(truncatingIfNeeded: tail),
                                              as: UInt8.self)
            tail = (tail >> 8) | (tail << 24)
            offset += 1
        }
    }
}
