// Topics from async code: what `WebSocket` offers, for an `AsyncWebSocket`. Each call runs on the
// connection's loop: at once from the connection's task, after a hop from anywhere else.

extension AsyncWebSocket {
    /// The topic called `name` on this connection's server (nil on a client connection).
    nonisolated(nonsending) public func topic(_ name: String) async -> Topic? {
        await self.onLoop(otherwise: nil) { $0.registry.topics?.table.topic(name) }
    }

    /// Subscribes the connection to `topic`: every message published on it from then on is sent to the
    /// peer, until it unsubscribes or closes. False on a client connection or when subscribed already.
    @discardableResult
    nonisolated(nonsending) public func subscribe(_ topic: Topic) async -> Bool {
        await self.onLoop(otherwise: false) { $0.subscribe(topic) }
    }

    /// Subscribes to the topic of this name on the connection's server.
    @discardableResult
    nonisolated(nonsending) public func subscribe(_ name: String) async -> Bool {
        await self.onLoop(otherwise: false) { $0.subscribe(name) }
    }

    @discardableResult
    nonisolated(nonsending) public func unsubscribe(_ topic: Topic) async -> Bool {
        await self.onLoop(otherwise: false) { $0.unsubscribe(topic) }
    }

    /// The topics the connection subscribes to.
    public var subscribedTopics: [Topic] {
        get async { await self.onLoop(otherwise: []) { $0.subscribedTopics } }
    }

    /// Publishes a text message to every subscriber of `topic` on every loop of the server (this
    /// connection too, if it subscribes). False if the connection is not a server's or `topic` is
    /// another server's.
    @discardableResult
    nonisolated(nonsending) public func publish(_ topic: Topic, text: String) async -> Bool {
        await self.onLoop(otherwise: false) { $0.publish(topic, text: text) }
    }

    @discardableResult
    nonisolated(nonsending) public func publish(_ topic: Topic, binary bytes: [UInt8]) async -> Bool {
        await self.onLoop(otherwise: false) { socket in bytes.withUnsafeBytes { socket.publish(topic, .binary, $0) } }
    }

    /// Publishes `message` as it came (same opcode and bytes, no copy before the framing).
    @discardableResult
    nonisolated(nonsending) public func publish(_ topic: Topic, _ message: InboundMessage) async -> Bool {
        await self.onLoop(otherwise: false) { socket in message.withUnsafeBytes { socket.publish(topic, message.opcode, $0) } }
    }

    /// `body` with the connection's socket, on its loop; with the caller's isolation, so that from the
    /// connection's task it is a plain call.
    /// `otherwise` if the loop has shut down.
    nonisolated(nonsending) private func onLoop<T: Sendable>(otherwise: T, _ body: @escaping @Sendable (WebSocket) -> T) async -> T {
        if self.loop.inEventLoop { return body(self.socket) }
        return await self.loop.run { body(self.socket) } ?? otherwise
    }
}
