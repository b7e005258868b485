/// Sends on a ``WebSocket`` from any thread: each call is carried to the connection's loop with
/// ``Loop/execute(_:)`` (one closure allocation and a copy of the payload per call).
public struct WebSocketSender: @unchecked Sendable {  // Safe: `socket` is only touched on its loop.
    let socket: WebSocket

    public var loop: Loop { self.socket.loop }

    public func send(text: String) {
        self.socket.loop.execute { [self] in _ = self.socket.send(text: text) }
    }

    public func send(binary bytes: [UInt8]) {
        self.socket.loop.execute { [self] in _ = self.socket.send(binary: bytes) }
    }

    public func close(code: CloseCode = .normalClosure, reason: String = "") {
        self.socket.loop.execute { [self] in _ = self.socket.close(code: code, reason: reason) }
    }
}
