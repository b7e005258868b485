import Testing
@testable import StrandsWS

@Suite("Handshake")
struct HandshakeTests {
    @Test("the accept value of RFC 6455's example key")
    func acceptValue() {
        #expect(Handshake.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test("SHA-1 and base64 match their published test vectors")
    func primitives() {
        let hex = { (bytes: [UInt8]) in bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined() }
        #expect(hex(SHA1.digest(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(hex(SHA1.digest([])) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(hex(SHA1.digest(long)) == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        for (plain, encoded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            #expect(Base64.encode(Array(plain.utf8)) == encoded)
            #expect(Base64.decode(encoded) == Array(plain.utf8))
        }
        for bad in ["Zg=", "Zm9v!", "Z===", "Zh==", "Zm9=", "===="] { #expect(Base64.decode(bad) == nil, "\(bad)") }
    }

    func check(_ bytes: [UInt8], limits: HTTPLimits = HTTPLimits()) -> Result<HTTPRequest, HTTPHeadError> {
        let reader = HTTPHeadReader(limits: limits)
        defer { reader.release() }
        do throws(HTTPHeadError) {
            let appended = bytes.withUnsafeBytes { raw in Result { () throws(HTTPHeadError) in try reader.append(raw) } }
            guard let length = try appended.get() else {
                return .failure(HTTPHeadError(status: 0, reason: "incomplete"))
            }
            let (line, headers) = try reader.split(length: length)
            return .success(try HTTPRequest.parse(startLine: line, headers: headers))
        } catch {
            return .failure(error)
        }
    }

    @Test("a request head parses: method, target, path, query, case-insensitive and repeated headers")
    func parsesRequest() throws {
        let bytes = upgradeRequest(target: "/ws/chat?room=1&x=2", extra: [("X-Many", "a"), ("x-many", "b, c")])
        let request = try self.check(bytes).get()
        #expect(request.method == "GET")
        #expect(request.path == "/ws/chat")
        #expect(request.query == "room=1&x=2")
        #expect(request.headers.first("HOST") == "localhost")
        #expect(request.headers["X-MANY"] == ["a", "b, c"])
        #expect(request.headers.tokens("x-many") == ["a", "b", "c"])
        #expect(request.headers.contains("connection", token: "UPGRADE"))
        #expect(Handshake.validate(request) == nil)
    }

    @Test("limits and malformed heads give the right status", arguments: [
        (Array(("GET /" + String(repeating: "a", count: 9000)).utf8), 414),
        (Array(("GET /" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\n\r\n").utf8), 414),
        (upgradeRequest(extra: (0..<120).map { ("X-\($0)", "v") }), 431),
        (upgradeRequest(extra: [("X-Big", String(repeating: "v", count: 17_000))]), 431),
        (Array("GARBAGE\r\n\r\n".utf8), 400),
        (Array("GET /x HTTP/2.0\r\n\r\n".utf8), 505),
        (Array("GET x HTTP/1.1\r\n\r\n".utf8), 400),
        (Array("GET /x HTTP/1.1\r\nNo colon here\r\n\r\n".utf8), 400),
        (Array("GET /x HTTP/1.1\r\n folded: header\r\n\r\n".utf8), 400),
        (Array("GET /x HTTP/1.1\r\nBad Name: v\r\n\r\n".utf8), 400),
        (Array("GET /x HTTP/1.1\r\nA: b\rc\r\n\r\n".utf8), 400),
    ] as [([UInt8], Int)])
    func rejectsHeads(bytes: [UInt8], status: Int) {
        guard case .failure(let error) = self.check(bytes) else {
            Issue.record("accepted")
            return
        }
        #expect(error.status == status, "\(error.reason)")
    }

    @Test("RFC 6455 §4.2.1 checks give the right status", arguments: [
        (upgradeRequest(method: "POST"), 405),
        (upgradeRequest(version: "HTTP/1.0"), 400),
        (upgradeRequest(headers: [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                  ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")]), 400),
        (upgradeRequest(headers: [("Host", "h"), ("Upgrade", "websocket"), ("Connection", "keep-alive"),
                                  ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")]), 400),
        (upgradeRequest(headers: [("Host", "h"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                  ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "8")]), 426),
        (upgradeRequest(headers: [("Host", "h"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                  ("Sec-WebSocket-Key", "c2hvcnQ="), ("Sec-WebSocket-Version", "13")]), 400),
        (upgradeRequest(headers: [("Host", "h"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                  ("Sec-WebSocket-Version", "13")]), 400),
    ] as [([UInt8], Int)])
    func validation(bytes: [UInt8], status: Int) throws {
        let request = try self.check(bytes).get()
        #expect(Handshake.validate(request)?.status == status)
    }

    @Test("ws:// URLs parse; others are refused with a reason")
    func urls() throws {
        #expect(try WebSocketURL("ws://example.com") == WebSocketURL(host: "example.com", port: 80, target: "/"))
        #expect(try WebSocketURL("ws://127.0.0.1:8082/ws/perf?x=1") == WebSocketURL(host: "127.0.0.1", port: 8082, target: "/ws/perf?x=1"))
        #expect(try WebSocketURL("WS://[::1]:9001?q") == WebSocketURL(host: "::1", port: 9001, target: "/?q"))
        #expect(try WebSocketURL("ws://[::1]:9001/").hostHeader == "[::1]:9001")
        let secure = try WebSocketURL("wss://example.com/feed")
        #expect(secure.isSecure && secure.port == 443 && secure.target == "/feed" && secure.hostHeader == "example.com")
        #expect(try WebSocketURL("wss://example.com:8443").hostHeader == "example.com:8443")
        #expect(try WebSocketURL("ws://example.com:443").hostHeader == "example.com:443")
        for bad in ["http://x", "wss://", "ws://", "ws://host:0", "ws://host:99999", "ws://[::1", "ws://u@h", "ws://h/a b"] {
            #expect(throws: WebSocketError.self, "\(bad)") { try WebSocketURL(bad) }
        }
    }
}

extension WebSocketURL {
    init(host: String, port: Int, target: String) {
        self = try! WebSocketURL("ws://placeholder")
        self.host = host
        self.port = port
        self.target = target
    }
}
