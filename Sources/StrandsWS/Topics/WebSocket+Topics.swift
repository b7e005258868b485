// Topics (publish/subscribe) on a server's connections. A publish frames the message once, into one
// immutable buffer handed to each loop that has subscribers (a bit per loop in the topic): pushed onto
// that loop's lock-free inbox, or queued directly on the publisher's own loop. Each loop delivers once
// per turn, a run of messages for a topic in one write per subscriber, held to the send caps.
// Subscriptions end when a connection closes. Deflate subscribers get the message deflated once (see
// makeMessage), or plain when their agreed window is smaller.

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
        guard topic.table === self.topicTable else { return 0 }
        let loop = self.topicInboxes.firstIndex { $0.loop.inEventLoop }
        return self.publish(self.makeMessage(topic, opcode, payload, on: loop), skipping: -1)
    }

    @discardableResult
    public func publish(_ topic: Topic, text: String) -> Int {
        var text = text
        return text.withUTF8 { self.publish(topic, .text, UnsafeRawBufferPointer($0)) }
    }

    /// `payload` framed for `topic`, and deflated once too when the topic has deflate subscribers and
    /// the payload is at least the threshold long (and shrinks): with the loop's shared compressor on
    /// one of the server's loops (`loop`), with the server's own, under a lock, from any other thread.
    func makeMessage(_ topic: Topic, _ opcode: Opcode, _ payload: UnsafeRawBufferPointer, on loop: Int?) -> TopicMessage {
        let links = self.messageLinks
        guard let settings = self.configuration.compression, payload.count >= settings.threshold,
              topic.deflateSubscribers.load(ordering: .relaxed) > 0
        else { return TopicMessage.make(topic, opcode, payload, loops: links) }
        let windowBits = WebSocketCompression.deflateWindow(settings.windowBits)
        func deflate(_ stream: DeflateStream?, _ output: inout RawBuffer) -> TopicMessage {
            guard let stream, stream.compress(payload, into: &output), output.count < payload.count else {
                stream?.reset()
                return TopicMessage.make(topic, opcode, payload, loops: links)
            }
            stream.reset()
            return TopicMessage.make(topic, opcode, payload, loops: links, deflated: output.bytes, windowBits: windowBits)
        }
        if let loop {
            let state = self.registries[loop].unsafeValue.context.deflateState
            defer { state.trimDeflated() }
            return deflate(state.sharedCompressor(settings, windowBits: windowBits), &state.deflated)
        }
        return self.offLoopDeflate.withLock { state in
            if state.stream == nil {
                state.stream = DeflateStream(level: settings.level, windowBits: windowBits, memoryLevel: settings.memoryLevel)
            }
            defer { if state.output.capacity > 1 << 20 { state.output.free() } }
            return deflate(state.stream, &state.output)
        }
    }

    /// Hands `message` to every loop with subscribers but `skipping` (a loop index; it has it already).
    /// No lock: one atomic load of the topic's loop mask, then a push per loop reached (and one to the
    /// Redis bridge, when there is one and the message did not come from it).
    func publish(_ message: TopicMessage, skipping: Int, toBridge: Bool = true) -> Int {
        let topic = message.topic
        topic.countPublished()
        var mask = topic.loopMask.load(ordering: .acquiring)
        var reached = 0
        let inboxes = self.topicInboxes
        while mask != 0 {
            let bit = mask.trailingZeroBitCount
            mask &= mask - 1
            // Loops past the 63rd share bit 63: all of them are reached when it is set.
            let loops = bit < 63 ? bit..<(bit + 1) : 63..<max(64, inboxes.count)
            for index in loops where index < inboxes.count && index != skipping {
                let inbox = inboxes[index]
                if inbox.loop.inEventLoop {
                    self.registries[index].unsafeValue.topics?.enqueue(message)
                } else {
                    inbox.push(message)
                }
                reached += 1
            }
        }
        if toBridge && self.bridgeAttached.load(ordering: .relaxed) { self.bridgeInbox.push(message) }
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
        guard opcode == .text || opcode == .binary, let topics = self.registry.topics, topic.table === topics.table,
              let server = topics.table.server else { return false }
        let message = server.makeMessage(topic, opcode, payload, on: topics.loopIndex)
        if topic.loopMask.load(ordering: .relaxed) & topics.loopBit != 0 { topics.enqueue(message) }
        _ = server.publish(message, skipping: topics.loopIndex)
        return true
    }

    @discardableResult
    public func publish(_ topic: Topic, text: String) -> Bool {
        var text = text
        return text.withUTF8 { self.publish(topic, .text, UnsafeRawBufferPointer($0)) }
    }
}
