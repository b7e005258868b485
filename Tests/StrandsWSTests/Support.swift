import StrandsTestSupport
import StrandsWS

/// A server on two loops and a client loop, torn down after `body`.
struct Harness {
    let serverGroup: LoopGroup
    let clientGroup: LoopGroup
    let server: WebSocketServer
    let port: Int

    init(configuration: WebSocketConfiguration = WebSocketConfiguration(), handler: any WebSocketHandler) throws {
        self.serverGroup = try LoopGroup(loopCount: 2)
        self.clientGroup = try LoopGroup(loopCount: 1)
        self.server = WebSocketServer(group: self.serverGroup, configuration: configuration, handler: handler)
        self.port = try self.server.listen(host: "127.0.0.1", port: 0).port
    }

    var loop: Loop { self.clientGroup.loops[0] }
    var url: String { "ws://127.0.0.1:\(self.port)" }

    func shutdown() {
        self.clientGroup.shutdown()
        self.serverGroup.shutdown()
    }

    /// Connects a client; returns the socket (bound to its loop) or the error.
    func connect(_ path: String = "/ws/test", handler: any WebSocketHandler,
                 configuration: WebSocketConfiguration = WebSocketConfiguration(),
                 headers: HTTPHeaders = HTTPHeaders(), subprotocols: [String] = []) async -> Result<LoopBound<WebSocket>, WebSocketError> {
        await connectClient(to: path.hasPrefix("ws") ? path : self.url + path, on: self.loop, handler: handler,
                            configuration: configuration, headers: headers, subprotocols: subprotocols)
    }

    /// Sends raw bytes over TCP and returns everything the server sent until it closed, as text.
    func raw(_ request: [UInt8]) async -> String {
        String(decoding: await self.rawBytes(request), as: UTF8.self)
    }

    /// Sends raw bytes over TCP and returns everything the server sent until it closed.
    func rawBytes(_ request: [UInt8]) async -> [UInt8] {
        await rawExchange(request, port: self.port, on: self.loop)
    }
}

/// A well-formed upgrade request with one part changed.
func upgradeRequest(method: String = "GET", target: String = "/ws/x", version: String = "HTTP/1.1",
                    headers: [(String, String)]? = nil, extra: [(String, String)] = []) -> [UInt8] {
    let fields = headers ?? [
        ("Host", "localhost"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"),
    ]
    var text = "\(method) \(target) \(version)\r\n"
    for (name, value) in fields + extra { text += "\(name): \(value)\r\n" }
    return Array((text + "\r\n").utf8)
}
