import StrandsWS

/// Echo under /ws/, JSON health at /health, 404 for the rest. One instance serves every connection.
final class EchoHandler: WebSocketHandler {
    /// Set once the server exists; read by /health on any loop.
    let server = Locked<WebSocketServer?>(nil)

    func shouldUpgrade(_ request: HTTPRequest) -> UpgradeDecision {
        request.path.hasPrefix("/ws/") ? .accept() : .reject(status: 404)
    }

    func respond(to request: HTTPRequest) -> HTTPResponse {
        guard request.path == "/health" else { return .status(404) }
        let stats = self.server.withLock { $0 }?.statistics() ?? WebSocketStatistics()
        let body = "{\"status\":\"ok\",\"connections\":\(stats.open),\"messages\":\(stats.messagesReceived),\"errors\":\(stats.errors)}"
        return HTTPResponse(status: 200, contentType: "application/json", body: body)
    }

    func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
        // The reply is framed into the loop's cork and leaves with the others of this read.
        socket.send(message.opcode, message.bytes)
    }
}
