import Testing
@testable import StrandsWS

@Suite("ChaCha20 mask keys")
struct ChaCha20Tests {
    func hex(_ bytes: UnsafeRawBufferPointer) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    /// RFC 8439 §2.3.2: key 00 01 … 1f, nonce 00 00 00 09 00 00 00 4a 00 00 00 00, block counter 1. The
    /// three blocks after it are what `openssl enc -chacha20` gives for the same key, nonce and counter.
    @Test("the keystream is RFC 8439's, block after block")
    func rfcVector() {
        // Bytes 00 01 … 1f as little-endian words: 0x03020100, 0x07060504, …
        let key: [UInt32] = (0..<8).map { (i: Int) -> UInt32 in UInt32(0x0302_0100) &+ UInt32(i) &* 0x0404_0404 }
        var generator = ChaCha20(key: key, nonce: [0x0900_0000, 0x4A00_0000, 0], counter: 1)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 512, alignment: 16)
        defer { buffer.deallocate() }
        generator.fill(buffer)
        let blocks = (0..<8).map { self.hex(UnsafeRawBufferPointer(rebasing: buffer[($0 * 64)..<($0 * 64 + 64)])) }
        #expect(blocks[0] == "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
            + "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e")
        #expect(blocks[1] == "0a88837739d7bf4ef8ccacb0ea2bb9d69d56c394aa351dfda5bf459f0a2e9fe8"
            + "e721f89255f9c486bf21679c683d4f9c5cf2fa27865526005b06ca374c86af3b")
        #expect(blocks[2] == "dcbfbdcb83be65862ed5c20eae5a43241d6a92da6dca9a156be25297f51c2718"
            + "8a861e93cc3aeb129a76598baccd27453ac6941b4b4e1e5153a9fee95d1ba00e")
        #expect(blocks[3] == "69d09f0d336478ca9068335ae2b3090905fb0fe5d45115371d126e5ba85e9924"
            + "32729aa7d77ddc5e3cc689d8445c1ab754a7409ee8befc2bdd3868d27f6e1ad8")
        // The second call goes on from block 5: no block twice.
        #expect(Set(blocks).count == 8)
    }

    @Test("generators keyed from the kernel differ, and rekeying keeps the stream going")
    func keyedFromKernel() {
        var a = ChaCha20()
        var b = ChaCha20()
        let size = 256 * (ChaCha20.blocksPerKey / 4 + 2)  // Past one key's blocks: a rekey on the way.
        let x = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        let y = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        defer { x.deallocate(); y.deallocate() }
        a.fill(x)
        b.fill(y)
        #expect(!x.elementsEqual(y))
        // Every 64-byte block of the stream is distinct, the ones after the rekey too.
        let blocks = (0..<(size / 64)).map { self.hex(UnsafeRawBufferPointer(rebasing: x[($0 * 64)..<($0 * 64 + 64)])) }
        #expect(Set(blocks).count == blocks.count)
        // Roughly half the bits are set (a stuck generator would fail this by far).
        let ones = x.reduce(0) { $0 + $1.nonzeroBitCount }
        #expect(abs(Double(ones) / Double(size * 8) - 0.5) < 0.01)
    }
}
