import CZlib
import Foundation
import Histogram

/// HdrHistogram's standard transportable form, the one its Java, C, Go, Python and JavaScript libraries
/// read and write: the V2 encoding (a 40-byte big-endian header, then the counts as ZigZag LEB128
/// numbers, a run of zeros written as minus its length), compressed with zlib behind an 8-byte
/// header, in base64: a string that starts "HISTF". perftest writes its latency histograms this way
/// in `-json` (values in nanoseconds) and reads them back in `merge`.
enum HistogramCodec {
    /// The V2 cookies with the word-size nibble the libraries set (0x10).
    static let encodingCookie: UInt32 = 0x1c84_9313
    static let compressedCookie: UInt32 = 0x1c84_9314
    /// The cookies without that nibble, as the libraries compare them.
    private static let encodingCookieBase: UInt32 = 0x1c84_9303
    private static let compressedCookieBase: UInt32 = 0x1c84_9304
    private static let headerSize = 40
    /// The largest decompressed form accepted: 16 MiB of counts is far past any real latency layout.
    private static let maxDecodedBytes = 16 << 20

    struct DecodeError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    // MARK: Encoding

    /// `histogram` (perftest's layout: 1 ns to ``LoopRun/highestLatency``, three digits) as "HISTF…".
    static func encode(_ histogram: Histogram<UInt64>) -> String {
        var counts: [UInt64] = []
        if histogram.totalCount > 0 {
            counts = (0...LatencyCounts.index(histogram.max)).map { histogram.countForValue(LatencyCounts.lowestValue(atIndex: $0)) }
        }
        return counts.withUnsafeBufferPointer { Self.encode(counts: $0) }
    }

    /// Counts in perftest's layout (``LatencyCounts``'s indices), as "HISTF…": what the per-second series
    /// writes without building a histogram.
    static func encode(counts: UnsafeBufferPointer<UInt64>) -> String {
        var payload: [UInt8] = []
        var last = counts.count - 1
        while last >= 0 && counts[last] == 0 { last -= 1 }
        var index = 0
        while index <= last {
            let count = counts[index]
            index += 1
            if count == 0 {
                var zeros: Int64 = 1
                while index <= last && counts[index] == 0 {
                    zeros += 1
                    index += 1
                }
                Self.putZigZag(zeros > 1 ? -zeros : 0, into: &payload)
            } else {
                Self.putZigZag(Int64(clamping: count), into: &payload)
            }
        }
        var plain: [UInt8] = []
        plain.reserveCapacity(Self.headerSize + payload.count)
        Self.put(Self.encodingCookie, into: &plain)
        Self.put(UInt32(payload.count), into: &plain)
        Self.put(UInt32(0), into: &plain)  // normalizing index offset
        Self.put(UInt32(3), into: &plain)  // significant digits: LatencyCounts' layout
        Self.put(UInt64(1), into: &plain)  // lowest discernible value
        Self.put(LoopRun.highestLatency, into: &plain)
        Self.put((1.0 as Double).bitPattern, into: &plain)  // integer-to-double conversion ratio
        plain += payload

        var compressedLength = compressBound(uLong(plain.count))
        var compressed = [UInt8](repeating: 0, count: Int(compressedLength))
        let status = compressed.withUnsafeMutableBufferPointer { out in
            plain.withUnsafeBufferPointer { compress2(out.baseAddress, &compressedLength, $0.baseAddress, uLong($0.count), Z_DEFAULT_COMPRESSION) }
        }
        precondition(status == Z_OK, "zlib compress2 failed (\(status)) with a buffer of compressBound's size")
        var out: [UInt8] = []
        Self.put(Self.compressedCookie, into: &out)
        Self.put(UInt32(compressedLength), into: &out)
        out += compressed[..<Int(compressedLength)]
        return Data(out).base64EncodedString()
    }

    private static func put(_ value: UInt32, into bytes: inout [UInt8]) {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    private static func put(_ value: UInt64, into bytes: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    /// ZigZag, then LEB128 in at most 9 bytes (the ninth holds 8 bits), as HdrHistogram writes it.
    private static func putZigZag(_ value: Int64, into bytes: inout [UInt8]) {
        var rest = UInt64(bitPattern: (value << 1) ^ (value >> 63))
        for _ in 0..<8 {
            if rest < 0x80 {
                bytes.append(UInt8(rest))
                return
            }
            bytes.append(UInt8(truncatingIfNeeded: rest & 0x7f) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: rest))
    }

    // MARK: Decoding

    /// A "HISTF…" string (compressed V2, from any HdrHistogram library) as a histogram of perftest's
    /// layout. A layout with fewer digits or a coarser unit is recorded at each count's lowest value.
    static func decode(_ text: String) throws(DecodeError) -> Histogram<UInt64> {
        guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw DecodeError("not base64")
        }
        let bytes = [UInt8](data)
        guard bytes.count >= 8 else { throw DecodeError("too short for a histogram (\(bytes.count) bytes)") }
        let cookie = Self.uint32(bytes, 0)
        let plain: [UInt8]
        if cookie & ~0xf0 == Self.compressedCookieBase {
            let length = Int(Self.uint32(bytes, 4))
            guard length <= bytes.count - 8 else { throw DecodeError("compressed length \(length) past the end (\(bytes.count - 8) bytes)") }
            plain = try Self.inflate(Array(bytes[8..<(8 + length)]))
        } else if cookie & ~0xf0 == Self.encodingCookieBase {
            plain = bytes
        } else {
            throw DecodeError("not an HdrHistogram V2 encoding (cookie 0x\(String(cookie, radix: 16)))")
        }
        guard plain.count >= Self.headerSize, Self.uint32(plain, 0) & ~0xf0 == Self.encodingCookieBase else {
            throw DecodeError("no V2 header inside")
        }
        let payloadLength = Int(Self.uint32(plain, 4))
        let offset = Int32(bitPattern: Self.uint32(plain, 8))
        let digits = Int(Self.uint32(plain, 12))
        let lowest = Self.uint64(plain, 16)
        guard payloadLength <= plain.count - Self.headerSize else { throw DecodeError("payload length \(payloadLength) past the end") }
        guard offset == 0 else { throw DecodeError("a normalizing index offset (\(offset)) is not supported") }
        guard (0...5).contains(digits), lowest >= 1 else { throw DecodeError("bad layout: \(digits) digits, lowest value \(lowest)") }

        // The source's layout, as every HdrHistogram computes it.
        let subBucketCount = 1 << Int(ceil(log2(2 * pow(10, Double(digits)))))
        let halfMagnitude = subBucketCount.trailingZeroBitCount - 1
        let unitMagnitude = 63 - lowest.leadingZeroBitCount
        func value(at index: Int) -> UInt64? {
            var bucket = (index >> halfMagnitude) - 1
            var subBucket = (index & (1 << halfMagnitude - 1)) + 1 << halfMagnitude
            if bucket < 0 {
                subBucket -= 1 << halfMagnitude
                bucket = 0
            }
            let shift = bucket + unitMagnitude
            guard shift < UInt64(subBucket).leadingZeroBitCount else { return nil }  // It would overflow.
            return UInt64(subBucket) << UInt64(shift)
        }

        var histogram = LoopRun.makeHistogram()
        var position = Self.headerSize
        let end = Self.headerSize + payloadLength
        var index = 0
        while position < end {
            let number = try Self.getZigZag(plain, &position, end)
            if number < 0 {
                guard number > -(1 << 40) else { throw DecodeError("a run of \(-number) zeros") }
                index += Int(-number)
                continue
            }
            if number > 0 {
                guard let value = value(at: index), histogram.record(value, count: UInt64(number)) else {
                    throw DecodeError("a value past perftest's range (index \(index))")
                }
            }
            index += 1
        }
        return histogram
    }

    private static func inflate(_ compressed: [UInt8]) throws(DecodeError) -> [UInt8] {
        var capacity = min(max(4096, compressed.count * 8), Self.maxDecodedBytes)
        while true {
            var length = uLongf(capacity)
            var out = [UInt8](repeating: 0, count: capacity)
            let status = out.withUnsafeMutableBufferPointer { buffer in
                compressed.withUnsafeBufferPointer { uncompress(buffer.baseAddress, &length, $0.baseAddress, uLong($0.count)) }
            }
            switch status {
            case Z_OK: return Array(out[..<Int(length)])
            case Z_BUF_ERROR where capacity < Self.maxDecodedBytes: capacity *= 4
            default: throw DecodeError("the compressed histogram does not inflate (zlib \(status))")
            }
        }
    }

    private static func getZigZag(_ bytes: [UInt8], _ position: inout Int, _ end: Int) throws(DecodeError) -> Int64 {
        var raw: UInt64 = 0
        for byteIndex in 0..<9 {
            guard position < end else { throw DecodeError("a number cut short at the payload's end") }
            let byte = bytes[position]
            position += 1
            if byteIndex == 8 {
                raw |= UInt64(byte) << 56
                break
            }
            raw |= UInt64(byte & 0x7f) << UInt64(7 * byteIndex)
            if byte & 0x80 == 0 { break }
        }
        return Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1)
    }

    private static func uint32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 << 8 | UInt32(bytes[at + $1]) }
    }

    private static func uint64(_ bytes: [UInt8], _ at: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 << 8 | UInt64(bytes[at + $1]) }
    }
}
