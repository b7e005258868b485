import StrandsWS

/// `-pubsub`: a connection on /ws/room/NAME joins room NAME and what it sends goes to every member,
/// itself too; other paths under /ws/ echo, and HTTP is the echo handler's. A handler of its own, so
/// plain echo pays nothing for rooms.
final class RoomHandler: WebSocketHandler {
    let echo: EchoHandler

    init(echo: EchoHandler) { self.echo = echo }

    func shouldUpgrade(_ request: HTTPRequest) -> UpgradeDecision { self.echo.shouldUpgrade(request) }
    func respond(to request: HTTPRequest) -> HTTPResponse { self.echo.respond(to: request) }

    func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) {
        guard request.path.hasPrefix("/ws/room/"), let server = self.echo.server.withLock({ $0 }) else { return }
        let name = String(request.path.dropFirst("/ws/room/".count))
        guard !name.isEmpty else { return }
        let topic = server.topic(name)
        guard socket.subscribe(topic) else { return }
        // The room rides in userData, unretained: the connection's subscription keeps the topic alive
        // for as long as it is open, and only an open connection receives messages.
        socket.userData = UInt64(UInt(bitPattern: Unmanaged.passUnretained(topic).toOpaque()))
    }

    func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
        guard let room = UnsafeRawPointer(bitPattern: UInt(socket.userData)) else {
            socket.send(message.opcode, message.bytes)
            return
        }
        socket.publish(Unmanaged<Topic>.fromOpaque(room).takeUnretainedValue(), message.opcode, message.bytes)
    }
}
