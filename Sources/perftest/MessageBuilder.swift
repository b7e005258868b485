/// Builds the Go tool's message, `{"type":"echo","id":N,"ts":S.UUUUUU,"data":"xxx…"}`, by writing the
/// digits of `id` and `ts` in front of a prepared tail: no JSON encoder, no allocation per message.
///
/// `ts` is Unix seconds with microseconds, written as Go's `encoding/json` writes that float64: the
/// shortest decimal that round-trips, so trailing zeros of the fraction are dropped (and the point too
/// when the fraction is zero). At today's magnitudes one microsecond is larger than the spacing of
/// float64 values, so the six-decimal form, trimmed, is that shortest decimal.
struct MessageBuilder {
    /// Room for the head: `{"type":"pingpong","id":` + 20 digits + `,"ts":` + 20 digits + `.` + 6 + `,"data":"`.
    private static let headRoom = 96
    private let storage: UnsafeMutableRawBufferPointer
    private let prefix: [UInt8]
    private let tailStart: Int

    init(type: String, payload: Int) {
        self.prefix = Array("{\"type\":\"\(type)\",\"id\":".utf8)
        let tail = Array(",\"data\":\"".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: payload) + Array("\"}".utf8)
        self.storage = .allocate(byteCount: Self.headRoom + tail.count, alignment: 8)
        self.tailStart = Self.headRoom
        _ = UnsafeMutableRawBufferPointer(rebasing: self.storage[self.tailStart...]).initializeMemory(as: UInt8.self, from: tail)
    }

    func free() { self.storage.deallocate() }

    /// The message for `id` and `microseconds`, valid until the next call.
    @inline(__always)
    func build(id: UInt64, microseconds: UInt64) -> UnsafeRawBufferPointer {
        var p = self.tailStart
        let base = self.storage.baseAddress!
        func put(_ byte: UInt8) {
            p -= 1
            base.storeBytes(of: byte, toByteOffset: p, as: UInt8.self)
        }
        func putDigits(_ value: UInt64) {
            var value = value
            repeat {
                put(UInt8(truncatingIfNeeded: value % 10) + 48)
                value /= 10
            } while value > 0
        }
        // ts, right to left: fraction without trailing zeros, then the seconds.
        var fraction = microseconds % 1_000_000
        if fraction != 0 {
            var width = 6
            while fraction % 10 == 0 {
                fraction /= 10
                width -= 1
            }
            let start = p
            putDigits(fraction)
            while start - p < width { put(48) }  // Leading zeros of the fraction: .000123
            put(UInt8(ascii: "."))
        }
        putDigits(microseconds / 1_000_000)
        for byte in ",\"ts\":".utf8.reversed() { put(byte) }
        putDigits(id)
        for byte in self.prefix.reversed() { put(byte) }
        return UnsafeRawBufferPointer(rebasing: self.storage[p...])
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
                var j = i + 5
                var value: UInt64 = 0
                var digits = 0
                while j < bytes.count, bytes[j] >= 48, bytes[j] <= 57, digits < 19 {
                    value = value * 10 + UInt64(bytes[j] - 48)
                    j += 1
                    digits += 1
                }
                return digits > 0 ? value : nil
            }
            i += 1
        }
        return nil
    }
}
