/// The ChaCha20 block function (RFC 8439 §2.3), four blocks at a time: the generator of client mask keys.
///
/// RFC 6455 §5.3 wants every mask key unpredictable to the application and to anyone on the path, so
/// keys come from a cryptographic generator. Drawing them from the kernel (`getrandom`) cost a system
/// call per 1,024 keys and, inside it, the kernel's ChaCha20 in plain scalar code: about 3 % of a
/// client's CPU time when it sends small messages as fast as it can. This is the same generator in the
/// process, keyed from `getrandom` (``System/fillRandom(_:)``) and rekeyed after every
/// ``blocksPerKey`` blocks, with the four blocks of a call computed side by side in 128-bit vectors
/// (one lane per block): about 35 instructions per mask key.
///
/// Only the keystream is used; nothing is encrypted with it.
struct ChaCha20 {
    /// The 16 input words: constants, key (8 words), block counter, nonce (3 words).
    private var input: (SIMD4<UInt32>, SIMD4<UInt32>, SIMD4<UInt32>, SIMD4<UInt32>)
    private var blocksLeft = 0

    /// Blocks made under one key before a fresh one is drawn from the kernel (256 KiB of keystream).
    static let blocksPerKey = 4096

    /// A generator keyed from the kernel's CSPRNG.
    init() {
        self.input = (.zero, .zero, .zero, .zero)
        self.rekey()
    }

    /// A generator with a given key and nonce (for tests against the RFC's vectors); never rekeyed.
    init(key: [UInt32], nonce: [UInt32], counter: UInt32) {
        precondition(key.count == 8 && nonce.count == 3)
        self.input = (Self.constants, SIMD4(key[0], key[1], key[2], key[3]), SIMD4(key[4], key[5], key[6], key[7]),
                      SIMD4(counter, nonce[0], nonce[1], nonce[2]))
        self.blocksLeft = Int.max
    }

    /// "expand 32-byte k".
    private static let constants = SIMD4<UInt32>(0x6170_7865, 0x3320_646E, 0x7962_2D32, 0x6B20_6574)

    private mutating func rekey() {
        let fresh = UnsafeMutableRawBufferPointer.allocate(byteCount: 48, alignment: 16)
        defer {
            fresh.initializeMemory(as: UInt8.self, repeating: 0)  // The key does not outlive its use here.
            fresh.deallocate()
        }
        System.fillRandom(fresh)
        let words = fresh.baseAddress!
        let nonce = words.loadUnaligned(fromByteOffset: 32, as: SIMD4<UInt32>.self)
        self.input = (Self.constants, words.loadUnaligned(as: SIMD4<UInt32>.self),
                      words.loadUnaligned(fromByteOffset: 16, as: SIMD4<UInt32>.self),
                      SIMD4(0, nonce[1], nonce[2], nonce[3]))
        self.blocksLeft = Self.blocksPerKey
    }

    /// Fills `buffer` (a multiple of 256 bytes) with the next blocks of keystream, in stream order.
    mutating func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count % 256 == 0)
        guard let base = buffer.baseAddress else { return }
        var offset = 0
        while offset < buffer.count {
            if self.blocksLeft < 4 { self.rekey() }
            self.fourBlocks(into: base + offset)
            self.blocksLeft -= 4
            self.input.3[0] &+= 4
            offset += 256
        }
    }

    /// `x` rotated left by `n` in every lane. Written with `&+` (the two halves share no bit): written
    /// with `|`, the compiler recognises a rotation, which SSE2 lacks, and takes the vector apart into
    /// four scalar rotations; this way it stays two vector shifts and an OR.
    @inline(__always)
    private static func rotate(_ x: SIMD4<UInt32>, _ n: UInt32) -> SIMD4<UInt32> {
        (x &<< n) &+ (x &>> (32 - n))
    }

    @inline(__always)
    private static func quarterRound(_ a: inout SIMD4<UInt32>, _ b: inout SIMD4<UInt32>, _ c: inout SIMD4<UInt32>,
                                     _ d: inout SIMD4<UInt32>) {
        a &+= b; d ^= a; d = Self.rotate(d, 16)
        c &+= d; b ^= c; b = Self.rotate(b, 12)
        a &+= b; d ^= a; d = Self.rotate(d, 8)
        c &+= d; b ^= c; b = Self.rotate(b, 7)
    }

    /// Blocks `counter` to `counter + 3`, 64 bytes each, little-endian words (RFC 8439 §2.3).
    private func fourBlocks(into out: UnsafeMutableRawPointer) {
        // Word j of the state of all four blocks: lane i belongs to block counter + i.
        let (row0, row1, row2, row3) = self.input
        let s0 = SIMD4(repeating: row0[0]), s1 = SIMD4(repeating: row0[1])
        let s2 = SIMD4(repeating: row0[2]), s3 = SIMD4(repeating: row0[3])
        let s4 = SIMD4(repeating: row1[0]), s5 = SIMD4(repeating: row1[1])
        let s6 = SIMD4(repeating: row1[2]), s7 = SIMD4(repeating: row1[3])
        let s8 = SIMD4(repeating: row2[0]), s9 = SIMD4(repeating: row2[1])
        let s10 = SIMD4(repeating: row2[2]), s11 = SIMD4(repeating: row2[3])
        let s12 = SIMD4(repeating: row3[0]) &+ SIMD4<UInt32>(0, 1, 2, 3), s13 = SIMD4(repeating: row3[1])
        let s14 = SIMD4(repeating: row3[2]), s15 = SIMD4(repeating: row3[3])
        var (x0, x1, x2, x3, x4, x5, x6, x7) = (s0, s1, s2, s3, s4, s5, s6, s7)
        var (x8, x9, x10, x11, x12, x13, x14, x15) = (s8, s9, s10, s11, s12, s13, s14, s15)
        for _ in 0..<10 {
            // Columns, then diagonals.
            Self.quarterRound(&x0, &x4, &x8, &x12)
            Self.quarterRound(&x1, &x5, &x9, &x13)
            Self.quarterRound(&x2, &x6, &x10, &x14)
            Self.quarterRound(&x3, &x7, &x11, &x15)
            Self.quarterRound(&x0, &x5, &x10, &x15)
            Self.quarterRound(&x1, &x6, &x11, &x12)
            Self.quarterRound(&x2, &x7, &x8, &x13)
            Self.quarterRound(&x3, &x4, &x9, &x14)
        }
        @inline(__always) func store(_ j: Int, _ word: SIMD4<UInt32>) {
            for lane in 0..<4 {
                out.storeBytes(of: word[lane].littleEndian, toByteOffset: lane * 64 + j * 4, as: UInt32.self)
            }
        }
        store(0, x0 &+ s0); store(1, x1 &+ s1); store(2, x2 &+ s2); store(3, x3 &+ s3)
        store(4, x4 &+ s4); store(5, x5 &+ s5); store(6, x6 &+ s6); store(7, x7 &+ s7)
        store(8, x8 &+ s8); store(9, x9 &+ s9); store(10, x10 &+ s10); store(11, x11 &+ s11)
        store(12, x12 &+ s12); store(13, x13 &+ s13); store(14, x14 &+ s14); store(15, x15 &+ s15)
    }
}
