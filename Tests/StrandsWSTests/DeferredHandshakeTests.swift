import StrandsTestSupport
import StrandsWS
import Testing

/// A handler that decides upgrades and answers plain requests later, when the test says so.
final class Later: WebSocketHandler, @unchecked Sendable {  // Safe: `waiting` is touched on the one loop only.
    let asked = Events<String>()
    let closed = Events<UInt16>()
    var waiting: [WebSocket] = []

    func shouldUpgrade(_ request: HTTPRequest, on socket: WebSocket) -> UpgradeDecision {
        self.waiting.append(socket)
        self.asked.post("upgrade \(request.path)")
        return .later
    }

    func respond(to request: HTTPRequest, on socket: WebSocket) -> HTTPResponse? {
        self.waiting.append(socket)
        self.asked.post("\(request.method) \(request.path) \(request.body.count)")
        return nil
    }

    func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) { socket.send(message.opcode, message.bytes) }

    func webSocket(_ socket: WebSocket, didCloseWith code: CloseCode, reason: String) { self.closed.post(code.rawValue) }
}

@Suite("handshakes decided later (callback API)", .timeLimit(.minutes(1)))
struct DeferredHandshakeTests {
    @Test("decideUpgrade and respond answer later; a second answer, or one after the timeout, is refused")
    func later() async throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let handler = Later()
        let server = WebSocketServer(group: group, handler: handler)  // The default 10 s handshake timeout.
        let port = try server.listen(host: "127.0.0.1", port: 0).port
        // A second server whose handshakes time out quickly, for the last part.
        var configuration = WebSocketConfiguration()
        configuration.handshakeTimeout = .milliseconds(200)
        let impatient = WebSocketServer(group: group, configuration: configuration, handler: handler)
        let impatientPort = try impatient.listen(host: "127.0.0.1", port: 0).port

        // An upgrade accepted later: the client opens and is echoed.
        let probe = Probe()
        let connecting = Task { await connectClient(to: "ws://127.0.0.1:\(port)/ws/a", on: loop, handler: probe) }
        #expect(await handler.asked.next() == "upgrade /ws/a")
        let decided = await loop.run { () -> [Bool] in
            let socket = handler.waiting.removeFirst()
            return [socket.decideUpgrade(.accept()), socket.decideUpgrade(.accept())]
        }
        #expect(decided == [true, false], "the first decision counts, a second is refused")
        _ = try await connecting.value.get()
        #expect(await probe.events.next() == .opened(path: "/ws/a", subprotocol: nil))

        // A plain request answered later, with its body read first.
        let answering = Task {
            await rawExchange(Array("POST /later HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello".utf8), port: port, on: loop)
        }
        #expect(await handler.asked.next() == "POST /later 5")
        let answered = await loop.run { () -> [Bool] in
            let socket = handler.waiting.removeFirst()
            return [socket.respond(HTTPResponse(status: 202, contentType: "text/plain", body: "later")),
                    socket.decideUpgrade(.accept())]
        }
        #expect(answered == [true, false])
        let response = String(decoding: await answering.value, as: UTF8.self)
        #expect(response.hasPrefix("HTTP/1.1 202") && response.hasSuffix("later"), "\(response)")

        // Undecided past the handshake timeout: the connection is dropped, and a late decision refused.
        let dropped = Task { await rawExchange(Array("GET /ws/b HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".utf8), port: impatientPort, on: loop) }
        #expect(await handler.asked.next() == "upgrade /ws/b")
        #expect(await dropped.value.isEmpty, "no answer before the timeout closed it")
        let late = await loop.run { handler.waiting.removeFirst().decideUpgrade(.accept()) }
        #expect(late == false)
        #expect(impatient.statistics().errorsByCause.timeout == 1)
        #expect(server.statistics().errorsByCause.timeout == 0)
    }
}
