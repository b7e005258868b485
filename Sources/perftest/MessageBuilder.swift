/// Builds the Go tool's message, `{"type":"echo","id":N,"ts":S.UUUUUU,"data":"xxx…"}`, by writing the
/// digits of `id` and `ts` in front of a prepared tail: no JSON encoder, no allocation per message.
///
/// `ts` is Unix seconds with microseconds, written as Go's `encoding/json` writes that float64: the
/// shortest decimal that round-trips, so trailing zeros of the fraction are dropped (and the point too
/// when the fraction is zero). At today's magnitudes one microsecond is larger than the spacing of
/// float64 values, so the six-decimal form, trimmed, is that shortest decimal.
///
/// A message is written right to left. The whole seconds change once a second, so `,"ts":SSSSSSSSSS`
/// is rendered once and copied; digits go two at a time from a table. The result is byte for byte what
/// digit-by-digit formatting gives (the tests compare them).
struct MessageBuilder {
    /// Room for the head: `{"type":"pingpong","id":` + 20 digits + `,"ts":` + 20 digits + `.` + 6 + `,"data":"`.
    private static let headRoom = 96
    /// "00" to "99", two bytes each.
    private let pairs: UnsafeMutableRawPointer
    private let storage: UnsafeMutableRawBufferPointer
    /// The length of `{"type":"…","id":`: 16 to 32 bytes (20 to 24 for perftest's modes).
    private let prefixLength: Int
    /// The prefix's first and last 16 bytes, which overlap below 32: it is written with two vector
    /// stores and compared with two loads.
    private let prefixHead: SIMD2<UInt64>
    private let prefixTail: SIMD2<UInt64>
    private let tailStart: Int
    /// The seconds `secondsText` holds, and `,"ts":` followed by their digits (at most 6 + 20 bytes),
    /// at the end of its 32 bytes so that it is copied as two vectors.
    private var cachedSeconds = UInt64.max
    private let secondsText: UnsafeMutableRawBufferPointer
    private var secondsLength = 0
    /// The time the storage's `,"ts":…` holds, and where it starts: messages built at the same
    /// microsecond (echo and blast send their bursts that way) share it and write only id and prefix.
    private var cachedMicroseconds = UInt64.max
    private var timeStart = 0
    /// `-data text`: records to copy the data field from, at an offset that changes with each message.
    private let corpus: UnsafeMutableRawBufferPointer?

    init(type: String, payload: Int, data: DataKind = .x) {
        let prefix = Array("{\"type\":\"\(type)\",\"id\":".utf8)
        let tail = Array(",\"data\":\"".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: payload) + Array("\"}".utf8)
        self.tailStart = Self.headRoom + prefix.count
        self.storage = .allocate(byteCount: self.tailStart + tail.count, alignment: 8)
        _ = UnsafeMutableRawBufferPointer(rebasing: self.storage[self.tailStart...]).initializeMemory(as: UInt8.self, from: tail)
        precondition((16...32).contains(prefix.count), "a message type of at most 16 bytes")
        self.prefixLength = prefix.count
        (self.prefixHead, self.prefixTail) = prefix.withUnsafeBytes {
            ($0.loadUnaligned(as: SIMD2<UInt64>.self), $0.loadUnaligned(fromByteOffset: prefix.count - 16, as: SIMD2<UInt64>.self))
        }
        self.secondsText = .allocate(byteCount: 32, alignment: 8)
        self.pairs = .allocate(byteCount: 200, alignment: 8)
        if data == .text && payload > 0 {
            let records = DataKind.records(count: payload + DataKind.corpusSlack)
            let corpus = UnsafeMutableRawBufferPointer.allocate(byteCount: records.count, alignment: 8)
            _ = corpus.initializeMemory(as: UInt8.self, from: records)
            self.corpus = corpus
            _ = UnsafeMutableRawBufferPointer(rebasing: self.storage[(self.tailStart + 9)...])
                .initializeMemory(as: UInt8.self, from: records.prefix(payload))
        } else {
            self.corpus = nil
        }
        for value in 0..<100 {
            self.pairs.storeBytes(of: UInt8(48 + value / 10), toByteOffset: 2 * value, as: UInt8.self)
            self.pairs.storeBytes(of: UInt8(48 + value % 10), toByteOffset: 2 * value + 1, as: UInt8.self)
        }
    }

    func free() {
        self.corpus?.deallocate()
        self.storage.deallocate()
        self.secondsText.deallocate()
        self.pairs.deallocate()
    }

    /// The message for `id` and `microseconds`, valid until the next call.
    @inline(__always)
    mutating func build(id: UInt64, microseconds: UInt64) -> UnsafeRawBufferPointer {
        let base = self.storage.baseAddress!
        if let corpus = self.corpus { self.copyData(from: corpus, id: id, base) }
        var p = self.tailStart
        if microseconds == self.cachedMicroseconds {
            p = self.timeStart
        } else {
            p = self.writeTime(microseconds, base)
        }
        self.putDigits(id, base, &p)
        p -= self.prefixLength
        (base + p).storeBytes(of: self.prefixHead, as: SIMD2<UInt64>.self)
        (base + p + self.prefixLength - 16).storeBytes(of: self.prefixTail, as: SIMD2<UInt64>.self)
        return UnsafeRawBufferPointer(rebasing: self.storage[p...])
    }

    /// `-data text`: the data field from the corpus, at an offset picked by the id (a multiplicative hash),
    /// so consecutive messages differ as a stream of events does.
    @inline(never)
    private func copyData(from corpus: UnsafeMutableRawBufferPointer, id: UInt64, _ base: UnsafeMutableRawPointer) {
        let count = corpus.count - DataKind.corpusSlack
        let offset = Int(truncatingIfNeeded: (id &* 0x9E37_79B9_7F4A_7C15) >> 48) % DataKind.corpusSlack
        (base + self.tailStart + 9).copyMemory(from: corpus.baseAddress! + offset, byteCount: count)
    }

    /// Writes `,"ts":S.UUUUUU` to end where the tail starts; returns where it starts.
    ///
    /// Pingpong stamps nearly every message with a new microsecond, so this runs once per message
    /// there: no loop and no call. The six fraction digits come zero-padded from one eight-digit word,
    /// their trailing zeros are shifted out of it, and `,"ts":` + seconds is stored as two vectors.
    private mutating func writeTime(_ microseconds: UInt64, _ base: UnsafeMutableRawPointer) -> Int {
        var p = self.tailStart
        let seconds = microseconds / 1_000_000
        let fraction = microseconds &- seconds &* 1_000_000
        if fraction != 0 {
            // Bytes `00UUUUUU`, first digit lowest; a zero digit at the end is a zero byte at the top
            // (fraction is not 0, so at most five of them).
            let word = UInt64(littleEndian: Self.eightDigits(fraction).word)
            let trailing = (word ^ 0x3030_3030_3030_3030).leadingZeroBitCount / 8
            // Shifted up by the trailing zeros, the last digit kept is the word's top byte. The store
            // covers up to 7 bytes before the digits, which the point and the seconds then cover.
            base.storeBytes(of: (word << (8 * UInt64(trailing))).littleEndian, toByteOffset: p - 8, as: UInt64.self)
            p -= 6 - trailing
            p -= 1
            base.storeBytes(of: UInt8(ascii: "."), toByteOffset: p, as: UInt8.self)
        }
        if seconds != self.cachedSeconds { self.renderSeconds(seconds) }
        // `secondsText` ends with the text: 32 bytes stored end at `p`, and what they put before the
        // text is covered by the id and the prefix, which are written next.
        let text = UnsafeRawPointer(self.secondsText.baseAddress!)
        (base + p - 32).storeBytes(of: text.loadUnaligned(as: SIMD2<UInt64>.self), as: SIMD2<UInt64>.self)
        (base + p - 16).storeBytes(of: text.loadUnaligned(fromByteOffset: 16, as: SIMD2<UInt64>.self), as: SIMD2<UInt64>.self)
        p -= self.secondsLength
        self.cachedMicroseconds = microseconds
        self.timeStart = p
        return p
    }

    private mutating func renderSeconds(_ seconds: UInt64) {
        var digits = [UInt8]()
        var value = seconds
        repeat {
            digits.append(UInt8(truncatingIfNeeded: value % 10) + 48)
            value /= 10
        } while value > 0
        let text = Array(",\"ts\":".utf8) + digits.reversed()
        self.secondsLength = text.count
        // Right-aligned in its 32 bytes (`,"ts":` and at most 20 digits).
        self.secondsText.initializeMemory(as: UInt8.self, repeating: 0)
        _ = UnsafeMutableRawBufferPointer(rebasing: self.secondsText[(32 - text.count)...])
            .initializeMemory(as: UInt8.self, from: text)
        self.cachedSeconds = seconds
    }

    /// Writes `value`'s decimal digits so that they end just before `p`, moving `p` to the first.
    /// Below 10⁸ (run ids, fractions of a second) in a few word operations and one 8-byte store, which
    /// may write up to 7 bytes before the digits: the storage's head room, which the prefix then covers.
    @inline(__always)
    private func putDigits(_ value: UInt64, _ base: UnsafeMutableRawPointer, _ p: inout Int) {
        if value < 100_000_000 {
            let (word, count) = Self.eightDigits(value)
            base.storeBytes(of: word, toByteOffset: p - 8, as: UInt64.self)
            p -= count
            return
        }
        var value = value
        while value >= 100 {
            let pair = Int(truncatingIfNeeded: value % 100) &* 2
            value /= 100
            p -= 2
            base.storeBytes(of: self.pairs.load(fromByteOffset: pair, as: UInt16.self), toByteOffset: p, as: UInt16.self)
        }
        if value >= 10 {
            p -= 2
            base.storeBytes(of: self.pairs.load(fromByteOffset: Int(truncatingIfNeeded: value) &* 2, as: UInt16.self),
                            toByteOffset: p, as: UInt16.self)
        } else {
            p -= 1
            base.storeBytes(of: UInt8(truncatingIfNeeded: value) &+ 48, toByteOffset: p, as: UInt8.self)
        }
    }

    /// `value` (below 10⁸) as eight ASCII digits with leading zeros, the first digit in the lowest byte
    /// (the order they have in memory on a little-endian machine), and how many digits it has without them.
    ///
    /// Split in halves of four digits, each half in 32-bit lanes into pairs, each pair in 16-bit lanes
    /// into digits; every quotient comes from a multiplication and a shift that is exact in its range
    /// (x / 100 = x × 10,486 >> 20 below 10⁴, and y / 10 = y × 103 >> 10 below 100), and no lane's
    /// product reaches the next lane.
    @inline(__always)
    static func eightDigits(_ value: UInt64) -> (word: UInt64, count: Int) {
        let high = value / 10_000
        let four = high | (value &- high &* 10_000) << 32  // Digits 1–4 in the low lane, 5–8 in the high.
        let hundreds = ((four &* 10_486) >> 20) & 0x0000_007F_0000_007F
        let two = hundreds | (four &- hundreds &* 100) << 16  // Per lane: the first pair, then the second.
        let tens = ((two &* 103) >> 10) & 0x000F_000F_000F_000F
        let digits = tens | (two &- tens &* 10) << 8
        // Leading zero digits are zero bytes at the low end; the last digit always counts (0 has one).
        let count = 8 - (digits | 1 << 56).trailingZeroBitCount / 8
        return (UInt64(littleEndian: digits | 0x3030_3030_3030_3030), count)
    }

    /// The `ts` of a message (fanout's deliveries), in Unix microseconds: found within the first 96
    /// bytes, seconds and up to six decimals as Go writes them; `nil` if there is none.
    static func timestampMicroseconds(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        let key: (UInt8, UInt8, UInt8, UInt8, UInt8) = (0x22, 0x74, 0x73, 0x22, 0x3A)  // "ts":
        let limit = min(bytes.count, 96) - 5
        guard limit > 0 else { return nil }
        var index = 0
        while index < limit {
            if bytes[index] == key.0 && bytes[index + 1] == key.1 && bytes[index + 2] == key.2
                && bytes[index + 3] == key.3 && bytes[index + 4] == key.4 { break }
            index += 1
        }
        guard index < limit else { return nil }
        index += 5
        var seconds: UInt64 = 0
        var digits = 0
        while index < bytes.count, bytes[index] >= 48 && bytes[index] <= 57, digits < 12 {
            seconds = seconds * 10 + UInt64(bytes[index] - 48)
            index += 1
            digits += 1
        }
        guard digits > 0 else { return nil }
        var fraction: UInt64 = 0
        var places = 0
        if index < bytes.count && bytes[index] == 46 {  // .
            index += 1
            while index < bytes.count, bytes[index] >= 48 && bytes[index] <= 57, places < 6 {
                fraction = fraction * 10 + UInt64(bytes[index] - 48)
                index += 1
                places += 1
            }
        }
        while places < 6 {
            fraction *= 10
            places += 1
        }
        return seconds * 1_000_000 + fraction
    }

    /// The `id` of a reply to a message of this builder: the prefix is compared where it must be, so
    /// an echo costs no search; anything else goes to ``parseID(_:)``.
    @inline(__always)
    func replyID(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        let count = self.prefixLength
        guard bytes.count > count, self.hasPrefix(bytes.baseAddress!) else { return Self.parseID(bytes) }
        return Self.shortDigits(bytes, from: count) ?? Self.digits(bytes, from: count)
    }

    /// The number at `start` when it has 1 to 7 digits and 8 bytes are there to read, else `nil`
    /// (``digits(_:from:)`` then decides): one 8-byte load, the digits found and converted in a few
    /// word operations instead of a loop per digit. Run ids have 6 or 7 digits.
    @inline(__always)
    private static func shortDigits(_ bytes: UnsafeRawBufferPointer, from start: Int) -> UInt64? {
        guard start + 8 <= bytes.count, let base = bytes.baseAddress else { return nil }
        let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: start, as: UInt64.self))
        let high: UInt64 = 0xF0F0_F0F0_F0F0_F0F0
        let zeros: UInt64 = 0x3030_3030_3030_3030
        // A byte is a digit when it is 0x3_ and stays 0x3_ with 6 added (0x30...0x39). A carry out of
        // a byte that is not a digit only disturbs the bytes after it, which do not count.
        let nonDigits = ((word & high) ^ zeros) | (((word &+ 0x0606_0606_0606_0606) & high) ^ zeros)
        guard nonDigits != 0 else { return nil }  // Eight digits or more: the loop.
        let count = nonDigits.trailingZeroBitCount / 8
        guard count > 0 else { return nil }
        // Digit values, the first digit in byte 0; shifted so that the number's digits end in byte 7
        // and the bytes before them are zero, then combined pairwise: 8 digits, then 4, then 2.
        var v = (word &- zeros) << (8 * (8 - count))
        v = (v &* 10) &+ (v >> 8)
        v = (((v & 0x0000_00FF_0000_00FF) &* (100 &+ (1_000_000 << 32)))
            &+ (((v >> 16) & 0x0000_00FF_0000_00FF) &* (1 &+ (10_000 << 32)))) >> 32
        return v
    }

    /// Whether the prefix's bytes are at `start` (at least the prefix's length is readable there).
    @inline(__always)
    private func hasPrefix(_ start: UnsafeRawPointer) -> Bool {
        let difference = (start.loadUnaligned(as: SIMD2<UInt64>.self) ^ self.prefixHead)
            | (start.loadUnaligned(fromByteOffset: self.prefixLength - 16, as: SIMD2<UInt64>.self) ^ self.prefixTail)
        return difference[0] | difference[1] == 0
    }
}

/// What fills a message's data field (`perftest -data`).
enum DataKind: String, Sendable, CaseIterable {
    /// The Go tool's: 'x' repeated, which deflate shrinks to almost nothing.
    case x
    /// Event records of varying values (`id=… user=… symbol=… bid=… side=…;`), JSON-safe: compressible
    /// about as much as real JSON events, which makes compression's figures mean something.
    case text

    /// Bytes of records beyond the payload: the range of offsets a message's data is copied from.
    static let corpusSlack = 1 << 16

    /// `count` bytes of records, the same on every run (a fixed linear congruential generator).
    static func records(count: Int) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(count + 128)
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        func next(_ bound: UInt64) -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (state >> 33) % bound
        }
        let sides = ["buy", "sell"], venues = ["XNAS", "XNYS", "ARCX", "BATS", "IEXG"]
        var id: UInt64 = 100_000
        while out.count < count {
            id += 1 + next(9)
            let record = "id=\(id) user=user-\(next(500)) symbol=SYM\(next(40)) bid=\(100 + next(900)).\(next(100)) "
                + "qty=\(1 + next(2000)) side=\(sides[Int(next(2))]) venue=\(venues[Int(next(5))]); "
            out += record.utf8
        }
        return Array(out.prefix(count))
    }
}

extension MessageBuilder {
    /// The `id` of a reply that echoes a message of this format, or `nil` when it is something else.
    static func parseID(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        // `"id":` sits after `{"type":"…",`; find it within the first few dozen bytes.
        let limit = min(bytes.count, 64)
        var i = 0
        while i + 5 <= limit {
            if bytes[i] == UInt8(ascii: "\"") && bytes[i + 1] == UInt8(ascii: "i") && bytes[i + 2] == UInt8(ascii: "d")
                && bytes[i + 3] == UInt8(ascii: "\"") && bytes[i + 4] == UInt8(ascii: ":")
            {
                return Self.digits(bytes, from: i + 5)
            }
            i += 1
        }
        return nil
    }

    /// The decimal number (at most 19 digits) at `start`, or `nil` when no digit is there.
    @inline(__always)
    private static func digits(_ bytes: UnsafeRawBufferPointer, from start: Int) -> UInt64? {
        guard start < bytes.count, let base = bytes.baseAddress else { return nil }
        let end = min(bytes.count, start + 19)
        var j = start
        var value: UInt64 = 0
        while j < end {
            // Safe: start <= j < end <= bytes.count.
            let digit = base.load(fromByteOffset: j, as: UInt8.self) &- 48
            guard digit < 10 else { break }
            value = value &* 10 &+ UInt64(digit)
            j &+= 1
        }
        return j > start ? value : nil
    }
}

#if canImport(Glibc)
import Glibc
#endif
