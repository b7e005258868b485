/// The behaviour of a WebSocket server or client: one object for all its connections, called on each
/// connection's loop. Per-connection state goes in ``WebSocket/context``.
///
/// It is shared by every loop of a server, hence `Sendable`: keep it stateless, or guard what it shares.
public protocol WebSocketHandler: AnyObject, Sendable {
    /// Server: an upgrade request passed RFC 6455 validation; accept it (optionally choosing one of the
    /// offered subprotocols and adding response headers) or reject it with a response.
    /// The default accepts every request.
    func shouldUpgrade(_ request: HTTPRequest) -> UpgradeDecision

    /// Server: a request that is not a WebSocket upgrade. The response is sent and the connection closed.
    /// The default answers 404.
    func respond(to request: HTTPRequest) -> HTTPResponse

    /// Server: ``shouldUpgrade(_:)`` with the connection at hand, so that the decision may come later:
    /// return ``UpgradeDecision/later`` and call ``WebSocket/decideUpgrade(_:)`` once it is made. The
    /// default asks ``shouldUpgrade(_:)``.
    func shouldUpgrade(_ request: HTTPRequest, on socket: WebSocket) -> UpgradeDecision

    /// Server: ``respond(to:)`` with the connection at hand; nil to answer later with
    /// ``WebSocket/respond(_:)`` (before the handshake timeout). The default asks ``respond(to:)``.
    func respond(to request: HTTPRequest, on socket: WebSocket) -> HTTPResponse?

    /// The connection is open. `request` is the upgrade request (for a client: the one it sent).
    func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest)

    /// A whole message arrived. `message.bytes` is borrowed: valid only during this call.
    func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage)

    /// Every message of one read from the network has been delivered (in pingpong traffic, one; under
    /// load, dozens; possibly none). Called after each read that found the connection open, even if a
    /// message of it closed or failed the connection. Frames sent from here still leave in that read's
    /// one write. For work done once per read rather than once per message: one clock reading for a
    /// batch of replies, say, or one flush of state the messages built up. The default does nothing.
    func webSocketDidFinishRead(_ socket: WebSocket)

    /// A pong arrived (answers to ``WebSocket/sendPing(_:)``, or unsolicited). Pings are answered for you.
    func webSocket(_ socket: WebSocket, didReceivePong payload: UnsafeRawBufferPointer)

    /// Every byte sent so far has reached the kernel; see ``WebSocket/pendingWriteBytes``.
    func webSocketDidDrain(_ socket: WebSocket)

    /// The connection is closed (TCP included). `code` is the peer's close code, the one this side sent
    /// when it failed the connection, 1005 for a close frame without a code, or 1006 if TCP ended without
    /// a close frame. Called once per opened connection.
    func webSocket(_ socket: WebSocket, didCloseWith code: CloseCode, reason: String)
}

extension WebSocketHandler {
    public func shouldUpgrade(_ request: HTTPRequest) -> UpgradeDecision { .accept() }
    public func respond(to request: HTTPRequest) -> HTTPResponse { .status(404) }
    public func shouldUpgrade(_ request: HTTPRequest, on socket: WebSocket) -> UpgradeDecision { self.shouldUpgrade(request) }
    public func respond(to request: HTTPRequest, on socket: WebSocket) -> HTTPResponse? { self.respond(to: request) }
    public func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) {}
    public func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {}
    public func webSocketDidFinishRead(_ socket: WebSocket) {}
    public func webSocket(_ socket: WebSocket, didReceivePong payload: UnsafeRawBufferPointer) {}
    public func webSocketDidDrain(_ socket: WebSocket) {}
    public func webSocket(_ socket: WebSocket, didCloseWith code: CloseCode, reason: String) {}
}
