/// A WebSocket server on every loop of a group: the HTTP upgrade, then ``WebSocket`` connections driven
/// by one ``WebSocketHandler``.
///
/// ```swift
/// let server = WebSocketServer(group: group, handler: Echo())
/// try server.listen(host: "0.0.0.0", port: 8082)
/// ```
public final class WebSocketServer: Sendable {
    public let group: LoopGroup
    public let configuration: WebSocketConfiguration
    let handler: any WebSocketHandler
    /// One set of counters per loop, each touched only by its loop.
    private let counters: [LoopBound<WebSocketCounters>]
    private let listeners = Locked<[TCPServer]>([])

    public init(group: LoopGroup, configuration: WebSocketConfiguration = WebSocketConfiguration(),
                handler: any WebSocketHandler) {
        self.group = group
        self.configuration = configuration
        self.handler = handler
        self.counters = group.loops.map { LoopBound(WebSocketCounters(), loop: $0) }
    }

    /// Listens on `host:port` on every loop of the group (see ``LoopGroup/listen(host:port:backlog:onAccept:)``).
    /// Port 0 picks a free port: read it from the result.
    @discardableResult
    public func listen(host: String, port: Int, backlog: Int = 1024) throws(UVError) -> TCPServer {
        let configuration = self.configuration
        let handler = self.handler
        let counters = self.counters
        let server = try self.group.listen(host: host, port: port, backlog: backlog) { stream in
            let socket = WebSocket(stream: stream, role: .server, handler: handler, configuration: configuration,
                                   counters: counters[stream.loop.index].value)
            socket.head = HTTPHeadReader(limits: configuration.httpLimits)
            socket.shared.setDeadline(socket, after: configuration.handshakeTimeout)
            stream.startReading()
        }
        self.listeners.withLock { $0.append(server) }
        return server
    }

    /// Stops accepting new connections; open ones stay. Safe from any thread.
    public func stopListening() {
        let listeners = self.listeners.withLock { list in
            defer { list = [] }
            return list
        }
        for listener in listeners { listener.close() }
    }

    /// Counts summed over every loop. Blocks while each loop reports, so call it from outside the group.
    public func statistics() -> WebSocketStatistics {
        self.counters.reduce(WebSocketStatistics()) { total, counters in
            total + (counters.loop.runAndWait { counters.value.snapshot } ?? WebSocketStatistics())
        }
    }

    /// The counters of one loop, read on that loop (for a stats timer that already runs there).
    public func counters(on loop: Loop) -> WebSocketCounters {
        self.counters[loop.index].value
    }
}
