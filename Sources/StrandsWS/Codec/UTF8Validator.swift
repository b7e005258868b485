/// Incremental UTF-8 validation (RFC 3629), fed a message piece by piece as it arrives.
///
/// Rejects overlong forms, UTF-16 surrogates (U+D800–U+DFFF) and code points past U+10FFFF at the first
/// byte that makes the sequence impossible, so a bad text message is refused as early as RFC 6455 §8.1
/// allows. ASCII runs are skipped eight bytes at a time.
public struct UTF8Validator: Sendable {
    /// Continuation bytes still expected by the sequence in progress. 4 bytes in all.
    private var remaining: UInt8 = 0
    private var lower: UInt8 = 0x80
    private var upper: UInt8 = 0xBF

    public init() {}

    /// True when no multi-byte sequence is left open: the text so far could end here.
    public var isComplete: Bool { self.remaining == 0 }

    /// Checks the next piece; `false` as soon as the bytes so far cannot be UTF-8.
    public mutating func validate(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let count = bytes.count
        var i = 0
        while i < count {
            if self.remaining == 0 {
                // Safe: each load reads bytes [i, i + 8) or [i, i + 16) inside the buffer.
                while i + 16 <= count {
                    let a = (base + i).loadUnaligned(as: UInt64.self)
                    let b = (base + i + 8).loadUnaligned(as: UInt64.self)
                    if (a | b) & 0x8080_8080_8080_8080 != 0 { break }
                    i += 16
                }
                while i + 8 <= count && (base + i).loadUnaligned(as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                    i += 8
                }
                if i >= count { break }
                let byte = base.load(fromByteOffset: i, as: UInt8.self)
                i += 1
                if byte < 0x80 { continue }
                switch byte {
                case 0xC2...0xDF: (self.remaining, self.lower, self.upper) = (1, 0x80, 0xBF)
                case 0xE0: (self.remaining, self.lower, self.upper) = (2, 0xA0, 0xBF)  // no overlongs
                case 0xED: (self.remaining, self.lower, self.upper) = (2, 0x80, 0x9F)  // no surrogates
                case 0xE1...0xEF: (self.remaining, self.lower, self.upper) = (2, 0x80, 0xBF)
                case 0xF0: (self.remaining, self.lower, self.upper) = (3, 0x90, 0xBF)  // no overlongs
                case 0xF1...0xF3: (self.remaining, self.lower, self.upper) = (3, 0x80, 0xBF)
                case 0xF4: (self.remaining, self.lower, self.upper) = (3, 0x80, 0x8F)  // ≤ U+10FFFF
                default: return false  // 0x80–0xC1 (stray continuation, overlong lead) and 0xF5–0xFF
                }
            } else {
                let byte = base.load(fromByteOffset: i, as: UInt8.self)
                i += 1
                guard byte >= self.lower && byte <= self.upper else { return false }
                (self.lower, self.upper) = (0x80, 0xBF)
                self.remaining -= 1
            }
        }
        return true
    }

    /// Validates a whole text at once.
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        Self.isASCII(bytes) || Self.isValidBeyondASCII(bytes)
    }

    /// ``isValid(_:)`` without the ASCII pass, for a caller that has run it inline.
    @inline(never)
    static func isValidBeyondASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var validator = UTF8Validator()
        return validator.validate(bytes) && validator.isComplete
    }

    /// True when every byte is below 0x80. ORs whole 64-byte blocks (four vectors) and tests once per
    /// block; the last block, and a text shorter than one, is read as overlapping pieces that end at the
    /// last byte (OR does not mind reading a byte twice), so no tail is handled byte by byte. A message
    /// of 64 to 128 bytes costs two blocks. At the first block that is not ASCII it gives up, having read
    /// at most 64 bytes past the ASCII prefix, and the state machine checks the text from the start.
    @inline(__always)
    static func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let count = bytes.count
        guard let base = bytes.baseAddress, count > 0 else { return true }
        let high: UInt64 = 0x8080_8080_8080_8080
        @inline(__always) func vector(_ offset: Int) -> SIMD2<UInt64> {
            (base + offset).loadUnaligned(as: SIMD2<UInt64>.self)
        }
        @inline(__always) func block(_ offset: Int) -> SIMD2<UInt64> {
            vector(offset) | vector(offset + 16) | vector(offset + 32) | vector(offset + 48)
        }
        if count >= 64 {
            var i = 0
            while i + 64 < count {
                let pair = block(i)
                if (pair[0] | pair[1]) & high != 0 { return false }
                i += 64
            }
            let pair = block(count - 64)
            return (pair[0] | pair[1]) & high == 0
        }
        if count >= 16 {
            // 16 to 63 bytes: the first and last 16, and for more than 32 the two pieces inside them.
            var pair = vector(0) | vector(count - 16)
            if count > 32 { pair |= vector(16) | vector(count - 32) }
            return (pair[0] | pair[1]) & high == 0
        }
        if count >= 8 {
            let word = base.loadUnaligned(as: UInt64.self) | base.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
            return word & high == 0
        }
        if count >= 4 {
            let word = base.loadUnaligned(as: UInt32.self) | base.loadUnaligned(fromByteOffset: count - 4, as: UInt32.self)
            return word & 0x8080_8080 == 0
        }
        var any: UInt8 = 0
        for i in 0..<count { any |= base.load(fromByteOffset: i, as: UInt8.self) }
        return any & 0x80 == 0
    }
}
