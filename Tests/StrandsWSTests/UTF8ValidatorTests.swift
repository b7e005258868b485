import Testing
@testable import StrandsWS

@Suite("UTF8Validator")
struct UTF8ValidatorTests {
    func valid(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { UTF8Validator.isValid($0) } }

    @Test("valid text of every sequence length is accepted", arguments: [
        "", "plain ASCII that is long enough to use the sixteen-byte path twice over",
        "κόσμε", "日本語のテキスト", "emoji 😀🚀", "\u{7F}\u{80}\u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}",
        "\u{D7FF}\u{E000}", String(repeating: "a", count: 1000) + "é",
    ])
    func acceptsValid(text: String) {
        #expect(self.valid(Array(text.utf8)))
    }

    @Test("overlongs, surrogates, code points past U+10FFFF and stray bytes are rejected", arguments: [
        [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xE0, 0x9F, 0xBF], [0xF0, 0x80, 0x80, 0x80],
        [0xF0, 0x8F, 0xBF, 0xBF],  // overlong forms
        [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF],  // UTF-16 surrogates
        [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFF],  // past U+10FFFF, impossible bytes
        [0x80], [0x41, 0xBF], [0xC2, 0x41], [0xE2, 0x82, 0x41],  // stray or missing continuations
    ] as [[UInt8]])
    func rejectsInvalid(bytes: [UInt8]) {
        #expect(!self.valid(bytes))
        #expect(!self.valid(Array(repeating: 0x61, count: 40) + bytes), "after an ASCII run")
    }

    @Test("truncated sequences are incomplete, not invalid, until the message ends")
    func truncation() {
        var validator = UTF8Validator()
        let euro: [UInt8] = [0xE2, 0x82, 0xAC]
        #expect(euro[0..<2].withUnsafeBytes { validator.validate($0) })
        #expect(!validator.isComplete)
        #expect(euro[2...].withUnsafeBytes { validator.validate($0) })
        #expect(validator.isComplete)
        #expect(!self.valid([0xF0, 0x9F, 0x98]))
    }

    @Test("split at any point, the validator decides as it does on the whole")
    func everySplit() {
        let samples: [[UInt8]] = [Array("aé日😀z".utf8), [0x61, 0xED, 0xA0, 0x80], [0xF0, 0x9F, 0x98, 0x80, 0xC0]]
        for bytes in samples {
            let whole = self.valid(bytes)
            for cut in 0...bytes.count {
                var validator = UTF8Validator()
                let first = bytes[0..<cut].withUnsafeBytes { validator.validate($0) }
                let second = first && bytes[cut...].withUnsafeBytes { validator.validate($0) }
                #expect((second && validator.isComplete) == whole, "\(bytes) cut \(cut)")
            }
        }
    }

    @Test("agrees with the standard library on every 1- and 2-byte sequence")
    func agreesWithStandardLibrary() {
        for a in 0...255 {
            let one = [UInt8(a)]
            #expect(self.valid(one) == (String(validating: one, as: UTF8.self) != nil))
            for b in 0...255 {
                let two = [UInt8(a), UInt8(b)]
                #expect(self.valid(two) == (String(validating: two, as: UTF8.self) != nil), "\(two)")
            }
        }
    }

    @Test("the ASCII pass finds a high byte at any position of any length up to 300, and whole messages with one stay checked")
    func asciiPass() {
        for length in 0...300 {
            let ascii = [UInt8](repeating: UInt8(ascii: "x"), count: length)
            #expect(ascii.withUnsafeBytes { UTF8Validator.isASCII($0) }, "length \(length)")
            #expect(self.valid(ascii))
            for position in 0..<length {
                var bytes = ascii
                bytes[position] = 0x80  // A stray continuation byte: not ASCII, and not UTF-8 either.
                #expect(!bytes.withUnsafeBytes { UTF8Validator.isASCII($0) }, "length \(length) at \(position)")
                #expect(!self.valid(bytes), "length \(length) at \(position)")
                if position + 1 < length {
                    bytes[position] = 0xC3  // "é": not ASCII, but valid.
                    bytes[position + 1] = 0xA9
                    #expect(self.valid(bytes), "length \(length) at \(position)")
                }
            }
        }
    }
}
