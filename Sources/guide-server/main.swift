import StrandsWS

/// One handler object serves every connection of the server, on every loop: keep it stateless (or
/// guard what it shares). Per-connection state goes in `socket.context`.
final class Chat: WebSocketHandler {
    func shouldUpgrade(_ request: HTTPRequest) -> UpgradeDecision {
        guard request.path.hasPrefix("/ws/") else { return .reject(status: 404) }
        // Choose one of the subprotocols the client offered, if you speak one.
        let offered = request.headers.tokens("Sec-WebSocket-Protocol")
        return .accept(subprotocol: offered.contains("chat.v1") ? "chat.v1" : nil)
    }

    func respond(to request: HTTPRequest) -> HTTPResponse {
        // Requests that are not upgrades land here; the connection closes after the response.
        request.path == "/health" ? HTTPResponse(status: 200, contentType: "application/json", body: "{\"status\":\"ok\"}")
            : .status(404)
    }

    func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) {
        socket.context = Session(room: String(request.query ?? "lobby"))
    }

    func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
        // `message.bytes` is borrowed from the read buffer: answer from it, or copy it.
        socket.send(message.opcode, message.bytes)
    }

    func webSocket(_ socket: WebSocket, didCloseWith code: CloseCode, reason: String) {
        // 1000/1001/…: the peer's code; 1005: close without a code; 1006: TCP ended without a close.
    }
}

final class Session {
    let room: String
    init(room: String) { self.room = room }
}

let port = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 8082
let group = try LoopGroup()                      // one loop per core, pinned
let server = WebSocketServer(group: group, handler: Chat())
let listener = try server.listen(host: "0.0.0.0", port: port)
print("listening on 0.0.0.0:\(listener.port) (ws://localhost:\(listener.port)/ws/)")
server.run()                                     // until SIGINT or SIGTERM, then closes every client with 1001
