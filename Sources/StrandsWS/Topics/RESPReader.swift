/// Reads Redis replies (RESP2, and RESP3's push type `>`) in place, from bytes as they arrive, for the
/// pub/sub bridge: no allocation per reply. A reply is found whole or not at all; its first few
/// elements (a pub/sub message has three: kind, channel, payload) are returned as ranges of the input.
///
/// Limits keep a hostile or broken server from making us buffer or recurse without end: a bulk string
/// of at most ``maxBulkLength`` bytes, arrays nested at most ``maxDepth`` deep, a line (simple string,
/// error, integer) of at most ``maxLineLength`` bytes.
struct RESPReader {
    static let maxBulkLength = 512 << 20
    static let maxDepth = 8
    static let maxLineLength = 64 << 10
    /// Elements of a top-level array that ``Reply`` keeps; the rest are checked and skipped.
    static let keptElements = 4

    enum Kind: UInt8, Equatable {
        case simpleString = 43  // +
        case error = 45  // -
        case integer = 58  // :
        case bulkString = 36  // $
        case array = 42  // *
        case push = 62  // >
    }

    /// One value: its kind and, for strings and errors, where its bytes are; for integers, its value;
    /// for arrays and pushes, how many elements (-1: a null array); a null bulk string has `isNull`.
    struct Value: Equatable {
        var kind: Kind
        var start = 0
        var count = 0
        var integer = 0
        var isNull = false
    }

    /// A whole top-level reply: the value, its first ``keptElements`` elements when it is an array or
    /// push (nested arrays among them are given by their header only), and where the next reply starts.
    struct Reply: Equatable {
        var value: Value
        var elements: (Value?, Value?, Value?, Value?) = (nil, nil, nil, nil)
        var end: Int

        static func == (a: Reply, b: Reply) -> Bool {
            a.value == b.value && a.end == b.end && a.elements.0 == b.elements.0 && a.elements.1 == b.elements.1
                && a.elements.2 == b.elements.2 && a.elements.3 == b.elements.3
        }

        func element(_ index: Int) -> Value? {
            switch index {
            case 0: self.elements.0
            case 1: self.elements.1
            case 2: self.elements.2
            case 3: self.elements.3
            default: nil
            }
        }
    }

    enum Failure: Error, Equatable {
        case malformed(String)
    }

    /// The reply that starts at `offset`, `nil` when more bytes are needed, or why the bytes are not RESP.
    static func read(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(Failure) -> Reply? {
        guard let (value, end) = try Self.value(bytes, at: offset) else { return nil }
        var reply = Reply(value: value, end: end)
        guard value.kind == .array || value.kind == .push, value.count > 0 else { return reply }
        var position = end
        for index in 0..<value.count {
            guard let (element, next) = try Self.value(bytes, at: position) else { return nil }
            var nextPosition = next
            if element.kind == .array || element.kind == .push {
                guard let skipped = try Self.skipElements(bytes, count: element.count, at: next, depth: 2) else { return nil }
                nextPosition = skipped
            }
            switch index {
            case 0: reply.elements.0 = element
            case 1: reply.elements.1 = element
            case 2: reply.elements.2 = element
            case 3: reply.elements.3 = element
            default: break
            }
            position = nextPosition
        }
        reply.end = position
        return reply
    }

    /// Past `count` values from `offset`, or `nil` if they are not all there.
    private static func skipElements(_ bytes: UnsafeRawBufferPointer, count: Int, at offset: Int,
                                     depth: Int) throws(Failure) -> Int? {
        guard depth <= Self.maxDepth else { throw .malformed("arrays nested deeper than \(Self.maxDepth)") }
        var position = offset
        var left = max(count, 0)
        while left > 0 {
            guard let (value, next) = try Self.value(bytes, at: position) else { return nil }
            position = next
            if value.kind == .array || value.kind == .push {
                guard let skipped = try Self.skipElements(bytes, count: value.count, at: next, depth: depth + 1) else { return nil }
                position = skipped
            }
            left -= 1
        }
        return position
    }

    /// One value's header (and, for a bulk string, its body) at `offset`: the value and where what
    /// follows it starts (an array's elements follow its header).
    private static func value(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(Failure) -> (Value, Int)? {
        guard offset < bytes.count else { return nil }
        guard let kind = Kind(rawValue: bytes[offset]) else {
            throw .malformed("unexpected type byte 0x\(String(bytes[offset], radix: 16))")
        }
        guard let lineEnd = try Self.lineEnd(bytes, from: offset + 1) else { return nil }
        let start = offset + 1
        switch kind {
        case .simpleString, .error:
            return (Value(kind: kind, start: start, count: lineEnd - start), lineEnd + 2)
        case .integer:
            return (Value(kind: kind, integer: try Self.number(bytes, start, lineEnd)), lineEnd + 2)
        case .array, .push:
            let count = try Self.number(bytes, start, lineEnd)
            guard count >= -1 else { throw .malformed("negative array length") }
            return (Value(kind: kind, count: count, isNull: count == -1), lineEnd + 2)
        case .bulkString:
            let length = try Self.number(bytes, start, lineEnd)
            if length == -1 { return (Value(kind: kind, isNull: true), lineEnd + 2) }
            guard length >= 0 && length <= Self.maxBulkLength else { throw .malformed("bulk string length \(length)") }
            let body = lineEnd + 2
            guard body + length + 2 <= bytes.count else { return nil }
            guard bytes[body + length] == 13 && bytes[body + length + 1] == 10 else {
                throw .malformed("bulk string not ended by CRLF")
            }
            return (Value(kind: kind, start: body, count: length), body + length + 2)
        }
    }

    /// Where the CR of the line starting at `start` is, `nil` if the line is not complete yet.
    private static func lineEnd(_ bytes: UnsafeRawBufferPointer, from start: Int) throws(Failure) -> Int? {
        var index = start
        let limit = min(bytes.count, start + Self.maxLineLength)
        while index < limit {
            let byte = bytes[index]
            if byte == 13 {
                guard index + 1 < bytes.count else { return nil }
                guard bytes[index + 1] == 10 else { throw .malformed("CR without LF") }
                return index
            }
            if byte == 10 { throw .malformed("LF without CR") }
            index += 1
        }
        if limit - start >= Self.maxLineLength { throw .malformed("line longer than \(Self.maxLineLength) bytes") }
        return nil
    }

    /// A decimal integer, optionally negative, filling `start..<end`.
    private static func number(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) throws(Failure) -> Int {
        var index = start
        var negative = false
        if index < end && bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        guard index < end, end - index <= 18 else { throw .malformed("bad integer") }
        var value = 0
        while index < end {
            let digit = Int(bytes[index]) - 48
            guard digit >= 0 && digit <= 9 else { throw .malformed("bad integer") }
            value = value * 10 + digit
            index += 1
        }
        return negative ? -value : value
    }
}
