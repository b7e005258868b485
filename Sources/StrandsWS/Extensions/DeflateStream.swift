import CZlib

/// One zlib stream, raw deflate or raw inflate, with the two operations permessage-deflate needs:
/// a whole message in, a whole message out, into a buffer the caller reuses. Loop-confined.
final class DeflateStream {
    let stream: UnsafeMutablePointer<z_stream>
    let compresses: Bool

    /// A compressor; `nil` if zlib refuses the settings or is out of memory.
    convenience init?(level: Int, windowBits: Int, memoryLevel: Int) {
        guard let stream = Self.make({ czlib_deflate_init($0, Int32(level), Int32(windowBits), Int32(memoryLevel)) })
        else { return nil }
        self.init(stream: stream, compresses: true)
    }

    /// A decompressor for a peer compressing with a window of up to `windowBits`.
    convenience init?(inflateWindowBits windowBits: Int) {
        guard let stream = Self.make({ czlib_inflate_init($0, Int32(windowBits)) }) else { return nil }
        self.init(stream: stream, compresses: false)
    }

    private init(stream: UnsafeMutablePointer<z_stream>, compresses: Bool) {
        self.stream = stream
        self.compresses = compresses
    }

    /// A stream set up by `initialize`, or `nil` (and nothing held) if zlib refused. The stream is made
    /// before the object: a failed initializer of a fully initialized object would still run `deinit`.
    private static func make(_ initialize: (UnsafeMutablePointer<z_stream>) -> Int32) -> UnsafeMutablePointer<z_stream>? {
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        guard initialize(stream) == Z_OK else {
            stream.deallocate()
            return nil
        }
        return stream
    }

    deinit {
        if self.compresses { deflateEnd(self.stream) } else { inflateEnd(self.stream) }
        self.stream.deallocate()
    }

    /// Forgets the history: the next message stands alone.
    func reset() {
        if self.compresses { deflateReset(self.stream) } else { inflateReset(self.stream) }
    }

    /// The empty stored block that ends a flushed deflate stream; RFC 7692 §7.2.1 strips it from each
    /// message and §7.2.2 puts it back before inflating.
    private static let tail: (UInt8, UInt8, UInt8, UInt8) = (0x00, 0x00, 0xFF, 0xFF)

    /// Compresses one message into `output` (emptied first): deflate with a sync flush, minus the four
    /// tail bytes. Returns false if zlib fails (it cannot, short of memory corruption).
    func compress(_ input: UnsafeRawBufferPointer, into output: inout RawBuffer) -> Bool {
        output.removeAll()
        if input.isEmpty {
            // An empty stored block (RFC 7692 §7.2.3.6). Not through zlib: a second sync flush with no
            // input in between is refused (Z_BUF_ERROR), and the stream is byte-aligned after every
            // message, so this byte leaves its state as it was.
            output.appendUninitialized(1).storeBytes(of: 0, as: UInt8.self)
            return true
        }
        let z = self.stream
        z.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        z.pointee.avail_in = uInt(input.count)
        // Room for the whole result in the usual case: deflate's bound, the flush's empty block, and slack.
        var room = Int(deflateBound(z, uLong(input.count))) + 16
        while true {
            let out = output.appendUninitialized(room)
            z.pointee.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
            z.pointee.avail_out = uInt(room)
            let rc = deflate(z, Z_SYNC_FLUSH)
            output.removeLast(Int(z.pointee.avail_out))
            guard rc == Z_OK || rc == Z_BUF_ERROR else { return false }
            // A sync flush that left room has written everything.
            if z.pointee.avail_out != 0 && z.pointee.avail_in == 0 { break }
            room = max(room, 1024)
        }
        z.pointee.next_in = nil
        z.pointee.next_out = nil
        guard output.count >= 4 else { return false }
        output.removeLast(4)
        return true
    }

    enum InflateResult: Equatable {
        case complete
        /// The output would pass the limit: nothing past it was inflated.
        case tooBig
        case corrupt(String)
    }

    /// Inflates one message (`input` then the four tail bytes) into `output` (emptied first), producing
    /// at most `limit` bytes: a message that inflates past it stops there (a decompression bomb costs
    /// at most `limit` bytes of output and the work to make them). With `keepsHistory`, the window
    /// survives a final block inside the message (rare: senders flush, they do not finish).
    func decompress(_ input: UnsafeRawBufferPointer, limit: Int, keepsHistory: Bool,
                    into output: inout RawBuffer) -> InflateResult {
        output.removeAll()
        var tail = Self.tail
        let result = withUnsafeBytes(of: &tail) { tailBytes -> InflateResult in
            if case let failure? = self.inflate(input, limit: limit, keepsHistory: keepsHistory, into: &output) {
                return failure
            }
            return self.inflate(tailBytes, limit: limit, keepsHistory: keepsHistory, into: &output) ?? .complete
        }
        self.stream.pointee.next_in = nil
        self.stream.pointee.next_out = nil
        if result != .complete { output.removeAll() }  // No partial message is left to misread.
        return result
    }

    private func inflate(_ input: UnsafeRawBufferPointer, limit: Int, keepsHistory: Bool,
                         into output: inout RawBuffer) -> InflateResult? {
        let z = self.stream
        z.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        z.pointee.avail_in = uInt(input.count)
        while true {
            // Room: what is free, else double what is held (from 4 KiB, or four times the input), never
            // more than one byte past the limit, which tells "exactly the limit" from "over it".
            if output.capacity == output.count {
                let wanted = max(output.capacity * 2, input.count * 4, 4096)
                output.reserve(min(wanted, limit &+ 1))
            }
            let room = min(output.capacity - output.count, limit &+ 1 &- output.count)
            if room <= 0 { return .tooBig }
            let out = output.appendUninitialized(room)
            z.pointee.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
            z.pointee.avail_out = uInt(room)
            let rc = CZlib.inflate(z, Z_SYNC_FLUSH)
            let filled = z.pointee.avail_out == 0
            output.removeLast(Int(z.pointee.avail_out))
            if output.count > limit { return .tooBig }
            switch rc {
            case Z_OK:
                if z.pointee.avail_in == 0 && !filled { return nil }
            case Z_BUF_ERROR:
                // No progress possible: all input used (more may come) or the output is full (loop grows it).
                if z.pointee.avail_in == 0 && !filled { return nil }
                if !filled { return .corrupt("compressed data is corrupt") }
            case Z_STREAM_END:
                // A final block: whatever follows it in this message is ignored, and the next message
                // starts a new stream, with the window kept when the peer may refer to it.
                self.restart(keepingHistory: keepsHistory)
                z.pointee.avail_in = 0
                return nil
            case Z_NEED_DICT, Z_DATA_ERROR:
                return .corrupt("compressed data is corrupt")
            default:
                return .corrupt("inflate failed (\(rc))")
            }
        }
    }

    private func restart(keepingHistory: Bool) {
        guard keepingHistory else {
            inflateReset(self.stream)
            return
        }
        var window = [UInt8](repeating: 0, count: 1 << 15)
        var length: uInt = 0
        window.withUnsafeMutableBufferPointer { buffer in
            _ = inflateGetDictionary(self.stream, buffer.baseAddress, &length)
            inflateReset(self.stream)
            _ = inflateSetDictionary(self.stream, buffer.baseAddress, length)
        }
    }
}

@available(*, unavailable)
extension DeflateStream: Sendable {}
