import StrandsTestSupport
import Testing
@testable import StrandsWS

@Suite("Server and client over loopback", .serialized, .timeLimit(.minutes(1)))
struct EndToEndTests {
    @Test("text and binary echo, fragmented sends, ping/pong, and the close handshake from the client")
    func echoAndClose() async throws {
        let serverSide = Probe(echo: true)
        let harness = try Harness(handler: serverSide)
        defer { harness.shutdown() }
        let client = Probe()
        let socket = try await harness.connect("/ws/echo?x=1", handler: client).get()
        #expect(await client.events.next() == .opened(path: "/ws/echo?x=1", subprotocol: nil))
        #expect(await serverSide.events.next() == .opened(path: "/ws/echo?x=1", subprotocol: nil))

        let big = pattern(200_000)
        socket.loop.execute {
            let ws = socket.value
            ws.send(text: "hello ☃")
            ws.send(binary: big)
            // A fragmented text message with a ping between its fragments.
            _ = Array("frag".utf8).withUnsafeBytes { ws.send(.text, $0, fin: false) }
            _ = Array("ping!".utf8).withUnsafeBytes { ws.sendPing($0) }
            _ = Array("mented".utf8).withUnsafeBytes { ws.send(.continuation, $0, fin: true) }
        }
        #expect(await serverSide.events.next() == .text("hello ☃"))
        #expect(await client.events.next() == .text("hello ☃"))
        #expect(await serverSide.events.next() == .binary(big))
        #expect(await client.events.next() == .binary(big))
        #expect(await client.events.next() == .pong(Array("ping!".utf8)))
        #expect(await serverSide.events.next() == .text("fragmented"))
        #expect(await client.events.next() == .text("fragmented"))

        socket.loop.execute { socket.value.close(code: .normalClosure, reason: "done") }
        #expect(await serverSide.events.next() == .closed(1000, "done"))
        #expect(await client.events.next() == .closed(1000, ""))
        let stats = harness.server.statistics()
        #expect(stats.opened == 1)
        #expect(stats.open == 0)
        #expect(stats.messagesReceived == 3)
        #expect(stats.messagesSent == 3)
        #expect(stats.errors == 0)
    }

    @Test("the handler hears when a read's messages are all delivered, and what it sends then goes out")
    func finishRead() async throws {
        final class Batches: WebSocketHandler {
            let events = Events<String>()
            func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) { self.events.post(message.text) }
            func webSocketDidFinishRead(_ socket: WebSocket) {
                self.events.post("|")
                if socket.role == .server { socket.send(text: "read done") }
            }
        }
        let serverSide = Batches()
        let harness = try Harness(handler: serverSide)
        defer { harness.shutdown() }
        let client = Probe()
        let socket = try await harness.connect("/ws/batches", handler: client).get()
        #expect(await client.events.next() == .opened(path: "/ws/batches", subprotocol: nil))
        // Three messages in one write arrive in one read: three deliveries, then one end of read.
        socket.loop.execute {
            let ws = socket.value
            ws.withCork {
                for text in ["a", "b", "c"] { ws.send(text: text) }
            }
        }
        for expected in ["a", "b", "c", "|"] { #expect(await serverSide.events.next() == expected) }
        #expect(await client.events.next() == .text("read done"))
        socket.loop.execute { socket.value.send(text: "d") }
        for expected in ["d", "|"] { #expect(await serverSide.events.next() == expected) }
        #expect(await client.events.next() == .text("read done"))
    }

    @Test("a burst corked inside another connection's read leaves in one write, after that connection's frames so far")
    func corkLentInsideRead() async throws {
        /// On a server of one loop, a "go" from any connection sends a burst to the connection on /ws/b.
        final class Relay: WebSocketHandler, @unchecked Sendable {  // Safe: `b` is touched on the one loop only.
            let corked = Events<Int>()
            weak var b: WebSocket?  // Weak: the connection holds this handler.
            func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) {
                if request.target == "/ws/b" { self.b = socket }
            }
            func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
                guard message.text == "go", let b = self.b else { return }
                socket.send(text: "before")
                b.withCork {
                    for text in ["x", "y", "z"] { b.send(text: text) }
                    // The cork holds the burst alone: "before" went out when the cork was lent.
                    self.corked.post(b.loop.cork.pointee.buffer.count)
                }
                socket.send(text: "after")
            }
        }
        final class Reads: WebSocketHandler {
            let events = Events<String>()
            func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) { self.events.post(message.text) }
            func webSocketDidFinishRead(_ socket: WebSocket) { self.events.post("|") }
        }
        let serverGroup = try LoopGroup(loopCount: 1)
        let clientGroup = try LoopGroup(loopCount: 1)
        defer {
            clientGroup.shutdown()
            serverGroup.shutdown()
        }
        let relay = Relay()
        let server = WebSocketServer(group: serverGroup, configuration: WebSocketConfiguration(), handler: relay)
        let port = try server.listen(host: "127.0.0.1", port: 0).port
        let bSide = Reads()
        _ = try await connectClient(to: "ws://127.0.0.1:\(port)/ws/b", on: clientGroup.loops[0], handler: bSide).get()
        let aSide = Probe()
        let a = try await connectClient(to: "ws://127.0.0.1:\(port)/ws/a", on: clientGroup.loops[0], handler: aSide).get()
        #expect(await aSide.events.next() == .opened(path: "/ws/a", subprotocol: nil))
        a.loop.execute { a.value.send(text: "go") }
        #expect(await relay.corked.next() == 3 * 3)  // Three frames of a 2-byte header and 1 byte.
        for expected in ["x", "y", "z", "|"] { #expect(await bSide.events.next() == expected) }
        #expect(await aSide.events.next() == .text("before"))
        #expect(await aSide.events.next() == .text("after"))
    }

    @Test("a client can send from its connect completion, and its handler hears the open after it")
    func sendFromCompletion() async throws {
        let serverSide = Probe(echo: true)
        let harness = try Harness(handler: serverSide)
        defer { harness.shutdown() }
        let client = Probe()
        let loop = harness.loop
        let url = harness.url + "/ws/first"
        let sent = Events<Bool>()
        loop.execute {
            WebSocketClient.connect(to: url, on: loop, handler: client) { result in
                sent.post((try? result.get())?.send(text: "first") == .sent)
            }
        }
        #expect(await sent.next())
        #expect(await client.events.next() == .opened(path: "/ws/first", subprotocol: nil))
        #expect(await client.events.next() == .text("first"))
    }

    @Test("the server closes with a code and reason; the client sees them")
    func serverCloses() async throws {
        final class Closer: WebSocketHandler {
            func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
                socket.close(code: .goingAway, reason: "bye now")
            }
        }
        let harness = try Harness(handler: Closer())
        defer { harness.shutdown() }
        let client = Probe()
        let socket = try await harness.connect(handler: client).get()
        _ = await client.events.next()
        socket.loop.execute { socket.value.send(text: "close please") }
        #expect(await client.events.next() == .closed(1001, "bye now"))
    }

    @Test("the upgrade hook sees path, query, headers and address; picks a subprotocol; can reject")
    func upgradeHook() async throws {
        let seen = Events<String>()
        let probe = Probe(upgrade: { request in
            seen.post("\(request.path)|\(request.query ?? "")|\(request.headers.first("X-Token") ?? "")|"
                + "\(request.remoteAddress?.host ?? "")")
            if request.headers.first("X-Token") != "secret" { return .reject(status: 403) }
            return .accept(subprotocol: request.headers.tokens("Sec-WebSocket-Protocol").last, headers: ["X-Extra": "1"])
        })
        let harness = try Harness(handler: probe)
        defer { harness.shutdown() }
        let client = Probe()
        let accepted = await harness.connect("/ws/room?id=7", handler: client, headers: ["X-Token": "secret"],
                                             subprotocols: ["chat.v1", "chat.v2"])
        #expect(accepted.isSuccess)
        #expect(await seen.next() == "/ws/room|id=7|secret|127.0.0.1")
        #expect(await client.events.next() == .opened(path: "/ws/room?id=7", subprotocol: "chat.v2"))

        let refused = await harness.connect("/ws/room", handler: Probe())
        _ = await seen.next()
        #expect(refused.failure?.kind == .handshakeFailed)
        #expect(refused.failure?.message == "handshake failed: server answered '403 Forbidden'")

        // The headers the hook adds reach the client in the 101.
        // (The client closes at once, so the server ends the connection.)
        let response = await harness.raw(upgradeRequest(target: "/ws/room", extra: [
            ("X-Token", "secret"), ("Sec-WebSocket-Protocol", "chat.v1"),
        ]) + frame(.close, [0x03, 0xE8]))
        _ = await seen.next()
        #expect(response.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        #expect(response.contains("\r\nX-Extra: 1\r\n"))
        #expect(response.contains("\r\nSec-WebSocket-Protocol: chat.v1\r\n"))
    }

    @Test("requests that are not upgrades go to the HTTP handler, 404 by default")
    func plainHTTP() async throws {
        let probe = Probe(http: { request in
            request.path == "/health" ? HTTPResponse(status: 200, contentType: "application/json", body: "{\"status\":\"ok\"}")
                : .status(404)
        })
        let harness = try Harness(handler: probe)
        defer { harness.shutdown() }
        let health = await harness.raw(Array("GET /health HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(health.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(health.contains("Content-Length: 15\r\n"))
        #expect(health.hasSuffix("\r\n\r\n{\"status\":\"ok\"}"))
        let missing = await harness.raw(Array("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(missing.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
    }

    @Test("bad upgrade requests get their status over the wire and the connection closes", arguments: [
        (upgradeRequest(method: "POST"), "405 Method Not Allowed"),
        (upgradeRequest(headers: [("Host", "h"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                  ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "7")]),
         "426 Upgrade Required"),
        (upgradeRequest(extra: (0..<150).map { ("X-\($0)", "v") }), "431 Request Header Fields Too Large"),
        (Array(("GET /" + String(repeating: "a", count: 10_000)).utf8), "414 URI Too Long"),
        (Array("NONSENSE\r\n\r\n".utf8), "400 Bad Request"),
    ] as [([UInt8], String)])
    func badRequests(bytes: [UInt8], status: String) async throws {
        let harness = try Harness(handler: Probe())
        defer { harness.shutdown() }
        let response = await harness.raw(bytes)
        #expect(response.hasPrefix("HTTP/1.1 \(status)\r\n"), "\(response.prefix(60))")
        if status.hasPrefix("426") { #expect(response.contains("Sec-WebSocket-Version: 13\r\n")) }
        #expect(harness.server.statistics().errors == 1)
    }

    @Test("a client that sends nothing is dropped at the configured handshake timeout, not the default")
    func handshakeTimeout() async throws {
        var configuration = WebSocketConfiguration()
        configuration.handshakeTimeout = .milliseconds(200)
        let harness = try Harness(configuration: configuration, handler: Probe())
        defer { harness.shutdown() }
        let started = ContinuousClock.now
        let silent = await harness.raw([])
        #expect(silent == "")
        let slow = await harness.raw(Array("GET /ws/x HTTP/1.1\r\nHost: x\r\n".utf8))  // never finishes
        #expect(slow == "")
        // Two timeouts of 200 ms (plus the 50 ms sweep): far from two of the 10 s default.
        let elapsed = ContinuousClock.now - started
        #expect(elapsed >= .milliseconds(300) && elapsed < .seconds(3), "\(elapsed)")
        #expect(harness.server.statistics().errors == 2)
    }

    @Test("a message over the limit closes with 1009; one at the limit is echoed")
    func messageTooBig() async throws {
        var configuration = WebSocketConfiguration()
        configuration.maxMessageSize = 64 * 1024
        let serverSide = Probe(echo: true)
        let harness = try Harness(configuration: configuration, handler: serverSide)
        defer { harness.shutdown() }
        let client = Probe()
        var clientConfiguration = WebSocketConfiguration()
        clientConfiguration.maxMessageSize = 1 << 20
        let socket = try await harness.connect(handler: client, configuration: clientConfiguration).get()
        _ = await client.events.next()
        socket.loop.execute { socket.value.send(binary: pattern(64 * 1024)) }
        #expect(await client.events.next() == .binary(pattern(64 * 1024)))
        socket.loop.execute { socket.value.send(binary: pattern(64 * 1024 + 1)) }
        #expect(await client.events.next() == .closed(1009, "message larger than 65536 bytes"))
    }

    @Test("sends from another thread hop to the connection's loop, in order")
    func sendFromAnyThread() async throws {
        let serverSide = Probe()
        let harness = try Harness(handler: serverSide)
        defer { harness.shutdown() }
        let socket = try await harness.connect(handler: Probe()).get()
        _ = await serverSide.events.next()
        let sender = await withCheckedContinuation { continuation in
            socket.loop.execute { continuation.resume(returning: socket.value.sender) }
        }
        for i in 0..<100 { sender.send(text: "\(i)") }  // from this (non-loop) thread
        for i in 0..<100 { #expect(await serverSide.events.next() == .text("\(i)")) }
    }

    @Test("a peer that never answers our close is dropped at the close timeout")
    func closeTimeout() async throws {
        var configuration = WebSocketConfiguration()
        configuration.closeTimeout = .milliseconds(200)
        final class CloseAtOnce: WebSocketHandler {
            func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) { socket.close(code: .goingAway) }
        }
        let harness = try Harness(configuration: configuration, handler: CloseAtOnce())
        defer { harness.shutdown() }
        // A raw client: it upgrades, then ignores the close frame and keeps the connection open.
        let started = ContinuousClock.now
        let bytes = await harness.rawBytes(upgradeRequest())
        let elapsed = ContinuousClock.now - started
        #expect(elapsed >= .milliseconds(150) && elapsed < .seconds(2), "\(elapsed): the default is 5 s")
        let response = String(decoding: bytes.dropLast(4), as: UTF8.self)
        #expect(response.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        #expect(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"))
        // The close frame (0x88, length 2, 1001) followed, then the server ended the connection itself.
        #expect(bytes.suffix(4) == [0x88, 0x02, 0x03, 0xE9])
    }

    @Test("client errors: bad URL, refused connection, and responses that fail validation")
    func clientErrors() async throws {
        let harness = try Harness(handler: Probe())
        defer { harness.shutdown() }
        #expect(await harness.connect("wss://127.0.0.1:1/", handler: Probe()).failure?.kind == .invalidURL)
        let refused = await harness.connect("ws://127.0.0.1:1/", handler: Probe()).failure
        #expect(refused?.kind == .connectFailed)
        #expect(refused?.transportError == .connectionRefused)

        // Fake servers that answer the upgrade wrongly.
        for (answer, expected) in [
            ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "server answered '200 OK'"),
            ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n",
             "wrong Sec-WebSocket-Accept"),
            ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ACCEPT\r\n"
                + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n", "extension 'permessage-deflate'"),
            ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ACCEPT\r\n"
                + "Sec-WebSocket-Protocol: unasked\r\n\r\n", "subprotocol 'unasked'"),
        ] {
            let fake = try FakeServer(on: harness.serverGroup.loops[0], answer: answer)
            let error = await harness.connect("ws://127.0.0.1:\(fake.port)/", handler: Probe()).failure
            #expect(error?.kind == .handshakeFailed)
            #expect(error?.message.contains(expected) == true, "\(String(describing: error))")
            fake.close()
        }

        var configuration = WebSocketConfiguration()
        configuration.handshakeTimeout = .milliseconds(200)
        let mute = try FakeServer(on: harness.serverGroup.loops[0], answer: nil)
        let started = ContinuousClock.now
        let timedOut = await harness.connect("ws://127.0.0.1:\(mute.port)/", handler: Probe(), configuration: configuration)
        #expect(timedOut.failure?.kind == .timedOut)
        #expect(timedOut.failure?.message == "no handshake response within 0.2 seconds")
        let elapsed = ContinuousClock.now - started
        #expect(elapsed >= .milliseconds(150) && elapsed < .seconds(3), "\(elapsed): the default is 10 s")
        mute.close()
    }
}

/// A TCP server that answers any request with `answer` (its `ACCEPT` replaced by the right value), or
/// stays silent when `answer` is nil.
struct FakeServer {
    let server: TCPServer
    var port: Int { self.server.port }

    init(on loop: Loop, answer: String?) throws {
        final class Answer: TCPStreamDelegate {
            let answer: String?
            var request: [UInt8] = []
            init(answer: String?) { self.answer = answer }
            func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) {
                self.request += bytes
                guard var answer = self.answer, self.request.suffix(4) == [13, 10, 13, 10] else { return }
                let text = String(decoding: self.request, as: UTF8.self)
                if let line = text.split(separator: "\r\n").first(where: { $0.hasPrefix("Sec-WebSocket-Key: ") }) {
                    let key = String(line.dropFirst("Sec-WebSocket-Key: ".count))
                    answer = answer.replacingOccurrences(of: "ACCEPT", with: Handshake.acceptValue(forKey: key))
                }
                try? stream.write(Array(answer.utf8))
            }
        }
        let answer = answer
        self.server = try loop.listen(host: "127.0.0.1", port: 0) { stream in
            stream.delegate = Answer(answer: answer)
            stream.startReading()
        }
    }

    func close() { self.server.close() }
}

extension String {
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        self.split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
