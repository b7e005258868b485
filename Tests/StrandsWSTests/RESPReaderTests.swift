@testable import StrandsWS
import Testing

@Suite("RESP reader")
struct RESPReaderTests {
    func read(_ text: String, at offset: Int = 0) throws -> RESPReader.Reply? {
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBytes { raw in try RESPReader.read(raw, at: offset) }
    }

    func string(_ text: String, _ value: RESPReader.Value?) -> String? {
        guard let value, !value.isNull else { return nil }
        let bytes = Array(text.utf8)
        return String(decoding: bytes[value.start..<(value.start + value.count)], as: UTF8.self)
    }

    @Test("a pub/sub message, RESP2 and RESP3: kind, channel and payload as ranges of the input")
    func message() throws {
        for text in ["*3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$12\r\nhello\r\nthere\r\n",
                     ">3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$12\r\nhello\r\nthere\r\n"] {
            let reply = try #require(try self.read(text))
            #expect(reply.value.count == 3)
            #expect(reply.end == text.utf8.count)
            #expect(self.string(text, reply.element(0)) == "message")
            #expect(self.string(text, reply.element(1)) == "room")
            #expect(self.string(text, reply.element(2)) == "hello\r\nthere")  // Bulk strings are binary-safe.
        }
    }

    @Test("every other type: simple strings, errors, integers, null bulk and null array, nested arrays")
    func types() throws {
        let ok = try #require(try self.read("+OK\r\n"))
        #expect(ok.value.kind == .simpleString && self.string("+OK\r\n", ok.value) == "OK" && ok.end == 5)
        let error = try #require(try self.read("-ERR unknown\r\n"))
        #expect(error.value.kind == .error && self.string("-ERR unknown\r\n", error.value) == "ERR unknown")
        #expect(try self.read(":-42\r\n")?.value.integer == -42)
        #expect(try self.read("$-1\r\n")?.value.isNull == true)
        #expect(try self.read("*-1\r\n")?.value.isNull == true)
        let text = "*3\r\n$9\r\nsubscribe\r\n*2\r\n:1\r\n*1\r\n+deep\r\n:7\r\n+next\r\n"
        let nested = try #require(try self.read(text))
        #expect(nested.element(1)?.kind == .array && nested.element(1)?.count == 2)
        #expect(nested.element(2)?.integer == 7)
        #expect(try self.read(text, at: nested.end)?.value.kind == .simpleString)  // The next reply.
    }

    @Test("every prefix of a reply is incomplete, never an error")
    func partial() throws {
        let text = "*3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$5\r\nhello\r\n"
        let bytes = Array(text.utf8)
        for length in 0..<bytes.count {
            let prefix = Array(bytes[0..<length])
            let reply = try prefix.withUnsafeBytes { raw in try RESPReader.read(raw, at: 0) }
            #expect(reply == nil, "\(length) bytes")
        }
        #expect(try self.read(text) != nil)
    }

    @Test("malformed input is an error: bad type byte, bad numbers, missing CRLF, too deep, too long")
    func malformed() {
        let cases = ["?x\r\n", ":12a\r\n", ":\r\n", "$3\r\nabcd\r\n", "*-2\r\n", "+a\nb\r\n", "+a\rb\r\n",
                     "$999999999999\r\n", String(repeating: "*1\r\n", count: 12) + ":1\r\n",
                     "+" + String(repeating: "a", count: RESPReader.maxLineLength + 1)]
        for text in cases {
            #expect(throws: RESPReader.Failure.self, "\(text.prefix(20))") { _ = try self.read(text) }
        }
    }
}
