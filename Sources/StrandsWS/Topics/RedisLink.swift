/// One connection to Redis: RESP replies read in place from the loop's read buffer, and only the tail
/// of a reply that a read cut short kept (in `partial`) until the rest comes. Loop-confined.
final class RedisLink: TCPStreamDelegate {
    let stream: TCPStream
    /// Which connection attempt of the bridge it belongs to: a link of an older one is ignored.
    let attempt: Int
    private var partial = RawBuffer()
    /// The largest reply buffered before the link is failed (a broken or hostile server).
    private let maxReply: Int
    private let onReply: (RESPReader.Reply, UnsafeRawBufferPointer) -> Void
    private let onClose: (RedisLink, String) -> Void
    /// Why the link is being closed from this side, for `onClose`.
    private var failure: String?
    /// True once this side closed it on purpose (stop, or the other link failed): no report.
    var closedHere = false

    init(stream: TCPStream, attempt: Int, maxReply: Int,
         onReply: @escaping (RESPReader.Reply, UnsafeRawBufferPointer) -> Void,
         onClose: @escaping (RedisLink, String) -> Void) {
        self.stream = stream
        self.attempt = attempt
        self.maxReply = maxReply
        self.onReply = onReply
        self.onClose = onClose
    }

    func send(_ command: [String]) {
        var buffer = RawBuffer()
        RedisLink.append(command: command, to: &buffer)
        defer { buffer.free() }
        try? self.stream.write(buffer.bytes)
    }

    /// A command as RESP: an array of bulk strings.
    static func append(command: [String], to buffer: inout RawBuffer) {
        RedisLink.append(ascii: "*\(command.count)\r\n", to: &buffer)
        for part in command {
            var part = part
            part.withUTF8 { bytes in
                RedisLink.append(ascii: "$\(bytes.count)\r\n", to: &buffer)
                buffer.append(UnsafeRawBufferPointer(bytes))
                RedisLink.append(ascii: "\r\n", to: &buffer)
            }
        }
    }

    /// `value`'s decimal digits, without making a string.
    static func append(decimal value: Int, to buffer: inout RawBuffer) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: more than Int's 20 digits.
        var count = 0
        var rest = value.magnitude
        withUnsafeMutableBytes(of: &digits) { bytes in
            repeat {
                count += 1
                bytes[bytes.count - count] = UInt8(48 + rest % 10)
                rest /= 10
            } while rest > 0
            buffer.append(UnsafeRawBufferPointer(rebasing: bytes[(bytes.count - count)...]))
        }
    }

    static func append(_ text: StaticString, to buffer: inout RawBuffer) {
        buffer.append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    static func append(ascii: String, to buffer: inout RawBuffer) {
        var text = ascii
        text.withUTF8 { buffer.append(UnsafeRawBufferPointer($0)) }
    }

    func close() {
        self.closedHere = true
        self.partial.free()
        self.stream.close()
    }

    private func fail(_ reason: String) {
        guard self.failure == nil else { return }
        self.failure = reason
        self.partial.free()
        self.stream.close()
    }

    func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) {
        if self.partial.isEmpty {
            let used = self.consume(UnsafeRawBufferPointer(bytes))
            if used < bytes.count && self.failure == nil {
                self.partial.append(UnsafeRawBufferPointer(rebasing: bytes[used...]))
            }
        } else {
            self.partial.append(UnsafeRawBufferPointer(bytes))
            let used = self.consume(self.partial.bytes)
            if self.failure == nil { self.partial.removeFirst(used) }
        }
        if self.partial.count > self.maxReply { self.fail("a Redis reply passed \(self.maxReply) bytes") }
        // A burst's leftovers may be large; keep only a modest buffer once it is drained.
        if self.partial.isEmpty && self.partial.capacity > 1 << 20 { self.partial.free() }
    }

    /// Hands every whole reply in `bytes` on; returns how many bytes they took.
    private func consume(_ bytes: UnsafeRawBufferPointer) -> Int {
        var offset = 0
        while offset < bytes.count && self.failure == nil && !self.closedHere {
            do {
                guard let reply = try RESPReader.read(bytes, at: offset) else { break }
                self.onReply(reply, bytes)
                offset = reply.end
            } catch {
                self.fail("Redis sent what is not RESP: \(error)")
                return bytes.count
            }
        }
        return offset
    }

    func stream(_ stream: TCPStream, didCloseWith error: UVError?) {
        self.partial.free()
        guard !self.closedHere else { return }
        self.onClose(self, self.failure ?? error.map { "\($0)" } ?? "Redis closed the connection")
    }
}

@available(*, unavailable)
extension RedisLink: Sendable {}
