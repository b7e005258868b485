// Topics (publish/subscribe) on a server's connections. A publish frames the message once and hands the
// one immutable frame to each loop that has subscribers (a bit per loop in the topic); each loop writes
// it to its subscribers, held to their send caps. Subscriptions end when a connection closes.
//
// This is the first step: loops other than the publisher's are reached through `Loop.execute` (its
// inbox lock, once per loop per publish); deflate subscribers get the frame uncompressed (RSV1 clear,
// which RFC 7692 allows on any message).

extension WebSocketServer {
    /// The topic called `name`, made on first use; the same handle for the same name, from any thread.
    public func topic(_ name: String) -> Topic { self.topicTable.topic(name) }

    /// Every topic made so far, for metrics.
    public var topics: [Topic] { self.topicTable.all }

    /// Publishes a whole text or binary message to every subscriber of `topic` on every loop. Any thread;
    /// the bytes are copied (framed) before this returns. Returns how many loops it was handed to.
    @discardableResult
    public func publish(_ topic: Topic, _ opcode: Opcode, _ payload: UnsafeRawBufferPointer) -> Int {
        precondition(opcode == .text || opcode == .binary, "publish text or binary messages")
        return self.publish(topic, TopicMessage(opcode: opcode, payload: payload), skipping: -1)
    }

    @discardableResult
    public func publish(_ topic: Topic, text: String) -> Int {
        var text = text
        return text.withUTF8 { self.publish(topic, .text, UnsafeRawBufferPointer($0)) }
    }

    /// Hands `message` to every loop with subscribers but `skipping` (a loop index; it delivered already).
    func publish(_ topic: Topic, _ message: TopicMessage, skipping: Int) -> Int {
        topic.countPublished()
        var mask = topic.loopMask.load(ordering: .acquiring)
        var reached = 0
        while mask != 0 {
            let bit = mask.trailingZeroBitCount
            mask &= mask - 1
            // Loops past the 63rd share bit 63: all of them are reached when it is set.
            let loops = bit < 63 ? bit..<(bit + 1) : 63..<max(64, self.registries.count)
            for index in loops where index < self.registries.count && index != skipping {
                let registry = self.registries[index]
                if registry.loop.execute({ registry.value.topics?.deliver(message, to: topic) }) { reached += 1 }
            }
        }
        return reached
    }
}

extension WebSocket {
    /// Subscribes this (server) connection to `topic`: it receives every message published on it from
    /// then on, until it unsubscribes or closes. False on a client connection or when subscribed already.
    @discardableResult
    public func subscribe(_ topic: Topic) -> Bool {
        guard self.state.isOpen, let topics = self.registry.topics else { return false }
        return topics.subscribe(self, to: topic)
    }

    /// Subscribes to the topic of this name on this connection's server.
    @discardableResult
    public func subscribe(_ name: String) -> Bool {
        guard let topics = self.registry.topics else { return false }
        return self.subscribe(topics.table.topic(name))
    }

    @discardableResult
    public func unsubscribe(_ topic: Topic) -> Bool {
        guard let topics = self.registry.topics else { return false }
        return topics.unsubscribe(self, from: topic)
    }

    /// The topics this connection subscribes to.
    public var subscribedTopics: [Topic] { self.cold?.subscriptions.map(\.topic) ?? [] }

    /// Publishes a message to every subscriber of `topic` (this connection too, if it subscribes), on
    /// every loop of the server: this loop's at once, the others' when they next run.
    @discardableResult
    public func publish(_ topic: Topic, _ opcode: Opcode, _ payload: UnsafeRawBufferPointer) -> Bool {
        guard opcode == .text || opcode == .binary, let topics = self.registry.topics, let server = topics.table.server else { return false }
        let message = TopicMessage(opcode: opcode, payload: payload)
        topics.deliver(message, to: topic)
        _ = server.publish(topic, message, skipping: topics.loopIndex)
        return true
    }

    @discardableResult
    public func publish(_ topic: Topic, text: String) -> Bool {
        var text = text
        return text.withUTF8 { self.publish(topic, .text, UnsafeRawBufferPointer($0)) }
    }
}
