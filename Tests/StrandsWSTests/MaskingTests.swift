import StrandsTestSupport
import Testing
@testable import StrandsWS

@Suite("Masking")
struct MaskingTests {
    /// The definition, one byte at a time (RFC 6455 §5.3).
    func reference(_ bytes: [UInt8], key: [UInt8], phase: Int) -> [UInt8] {
        bytes.enumerated().map { $0.element ^ key[($0.offset + phase) % 4] }
    }

    @Test("matches the byte-at-a-time definition for every length 0...100 and every starting phase")
    func matchesDefinition() {
        let key: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
        let wide = key.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        for length in 0...100 {
            for phase in 0..<4 {
                let input = pattern(length, seed: phase)
                var output = input
                let next = output.withUnsafeMutableBytes { Masking.apply(key: wide, phase: phase, to: $0) }
                #expect(output == self.reference(input, key: key, phase: phase), "length \(length) phase \(phase)")
                #expect(next == (phase + length) % 4)
            }
        }
    }

    @Test("masking a buffer in two pieces equals masking it whole")
    func continuesAcrossPieces() {
        let key: UInt32 = 0xDEAD_BEEF
        let input = pattern(1000)
        var whole = input
        whole.withUnsafeMutableBytes { _ = Masking.apply(key: key, phase: 0, to: $0) }
        for cut in [1, 3, 7, 8, 9, 33, 500, 999] {
            var split = input
            split.withUnsafeMutableBytes { buffer in
                let phase = Masking.apply(key: key, phase: 0, to: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<cut]))
                Masking.apply(key: key, phase: phase, to: UnsafeMutableRawBufferPointer(rebasing: buffer[cut...]))
            }
            #expect(split == whole, "cut \(cut)")
        }
    }

    @Test("an unaligned buffer is masked correctly")
    func unaligned() {
        let key: UInt32 = 0x0102_0304
        var storage = [UInt8](repeating: 0xAA, count: 67)
        _ = storage.withUnsafeMutableBytes { buffer in
            Masking.apply(key: key, phase: 0, to: UnsafeMutableRawBufferPointer(rebasing: buffer[3..<67]))
        }
        let keyBytes: [UInt8] = [0x04, 0x03, 0x02, 0x01]
        #expect(Array(storage[0..<3]) == [0xAA, 0xAA, 0xAA])
        #expect(Array(storage[3...]) == self.reference([UInt8](repeating: 0xAA, count: 64), key: keyBytes, phase: 0))
    }

    @Test("a masked copy matches the definition for every length 0...200, at unaligned offsets, and leaves its source alone")
    func maskedCopy() {
        let key: [UInt8] = [0x91, 0x04, 0x5C, 0xE7]
        let wide = key.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        for length in 0...200 {
            for offset in [0, 1, 5] {
                let input = pattern(length + offset, seed: length)
                var output = [UInt8](repeating: 0xEE, count: length + 3)
                input.withUnsafeBytes { source in
                    output.withUnsafeMutableBytes { destination in
                        Masking.copy(UnsafeRawBufferPointer(rebasing: source[offset...]), maskedWith: wide,
                                     into: UnsafeMutableRawBufferPointer(rebasing: destination[3...]))
                    }
                }
                #expect(Array(output[3...]) == self.reference(Array(input[offset...]), key: key, phase: 0),
                        "length \(length) offset \(offset)")
                #expect(Array(output[0..<3]) == [0xEE, 0xEE, 0xEE])
                #expect(input == pattern(length + offset, seed: length))
            }
        }
    }
}
