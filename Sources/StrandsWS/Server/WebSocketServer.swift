import Synchronization

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
    /// The open connections and counters of each loop, each touched only by its loop.
    let registries: [LoopBound<ConnectionRegistry>]
    private let listeners = Locked<[TCPServer]>([])
    let topicTable: TopicTable
    /// Each loop's inbox of messages published on other threads, by loop index.
    let topicInboxes: [TopicInbox]
    /// What a ``RedisBridge`` sends out (on the first loop, after the loops' links in a message).
    let bridgeInbox: TopicInbox
    /// Whether a bridge takes what is pushed to `bridgeInbox`.
    let bridgeAttached = Atomic<Bool>(false)
    /// The compressor for topic messages published off the loops (``makeMessage(_:_:_:on:)``).
    let offLoopDeflate = Locked(OffLoopDeflate())
    /// Link words in each message: one per loop and one for the bridge.
    var messageLinks: Int { self.topicInboxes.count + 1 }

    public init(group: LoopGroup, configuration: WebSocketConfiguration = WebSocketConfiguration(),
                handler: any WebSocketHandler) {
        self.group = group
        self.configuration = configuration
        self.handler = handler
        let table = TopicTable(loopCount: group.loops.count)
        self.topicTable = table
        let inboxes = group.loops.enumerated().map { TopicInbox(loop: $1, index: $0) }
        self.topicInboxes = inboxes
        self.bridgeInbox = TopicInbox(loop: group.loops[0], index: inboxes.count)
        // Each registry is made on its own loop: it holds that loop's context.
        self.registries = group.loops.enumerated().map { index, loop in
            let made = loop.runAndWait {
                let registry = ConnectionRegistry(handler: handler, configuration: configuration,
                                                  context: WebSocketLoopContext.on(loop), isClient: false)
                registry.topics = LoopTopics(table: table, inbox: inboxes[index])
                return LoopBound(registry, loop: loop)
            }
            guard let made else { preconditionFailure("a WebSocketServer needs a running LoopGroup") }
            return made
        }
        table.server = self
    }

    /// Listens on `host:port` on every loop of the group (see ``LoopGroup/listen(host:port:backlog:onAccept:)``).
    /// Port 0 picks a free port: read it from the result.
    ///
    /// - Parameter sharedPort: Serve a port that other processes of this user serve too, the kernel
    ///   spreading connections over all their sockets (`SO_REUSEPORT`), for a set of server processes
    ///   started together (`echoserver -procs`). Without it, a port already served is refused as in use,
    ///   so that a second server started by mistake does not silently take half the connections.
    @discardableResult
    public func listen(host: String, port: Int, backlog: Int = 1024, sharedPort: Bool = false) throws(UVError) -> TCPServer {
        let configuration = self.configuration
        let registries = self.registries
        let server = try self.group.listen(
            host: host, port: port, backlog: backlog, sharedPort: sharedPort,
            make: { loop throws(UVError) in
                try WebSocket(loop: loop, role: .server, registry: registries[loop.index].value)
            },
            onAccept: { connection in
                let socket = unsafeDowncast(connection, to: WebSocket.self)
                socket.coldState.head = HTTPHeadReader(limits: configuration.httpLimits)
                socket.registry.add(socket)
                socket.shared.setDeadline(socket, after: configuration.handshakeTimeout)
                if let tls = configuration.tls {
                    do {
                        try tls.secure(socket, serverName: nil) { error in
                            guard let error else { return }
                            socket.noteError(.handshake, "TLS handshake failed: \(error)")
                            socket.coldState.errorCounted = true
                        }
                    } catch {
                        socket.noteError(.handshake, "TLS set-up failed: \(error)")
                        socket.tcpClose()
                        return
                    }
                }
                socket.tcpStartReading()
            })
        self.listeners.withLock { $0.append(server) }
        self.configuration.log?(.notice, "listening on \(host):\(server.port)",
                                ["loops": "\(self.group.loops.count)", "tls": configuration.tls == nil ? "no" : "yes"])
        return server
    }

    /// Stops accepting new connections; open ones stay. Safe from any thread.
    public func stopListening() {
        let listeners = self.listeners.withLock { list in
            defer { list = [] }
            return list
        }
        for listener in listeners { listener.close() }
        if !listeners.isEmpty { self.configuration.log?(.notice, "stopped listening") }
    }

    /// Counts summed over every loop. Safe from any thread, loops included; the values are recent, not a
    /// snapshot taken at one instant.
    public func statistics() -> WebSocketStatistics {
        // Off the loops, the registries' counters alone are read: atomics, meant for it.
        var statistics = self.registries.reduce(WebSocketStatistics()) { $0 + $1.unsafeValue.statistics }
        for loop in self.group.loops {
            let bytes = loop.tcpByteCounts
            statistics.bytesReceived += bytes.read
            statistics.bytesSent += bytes.written
        }
        return statistics
    }

    /// Starts the closing handshake with every connection: open ones get a close frame (1001 by default,
    /// for a server going away); ones still in the handshake get the close as soon as they open, or a
    /// 503 instead of the upgrade. `completion` runs once, on some loop, when none is left; connections
    /// that do not answer are dropped at the configured close timeout. Safe from any thread; a second call
    /// keeps the first one's completion (each runs).
    public func closeAll(code: CloseCode = .goingAway, reason: String = "server shutting down",
                         completion: (@Sendable () -> Void)? = nil) {
        let remaining = Locked(self.registries.count)
        let log = self.configuration.log
        log?(.notice, "closing every connection with \(code.rawValue)", ["reason": reason])
        let loopDone: @Sendable () -> Void = {
            let last = remaining.withLock { count -> Bool in
                count -= 1
                return count == 0
            }
            if last {
                log?(.notice, "every connection closed")
                completion?()
            }
        }
        for registry in self.registries {
            let accepted = registry.loop.execute {
                let registry = registry.value
                registry.shutdown(code: code, reason: reason, completion: loopDone)
            }
            if !accepted { loopDone() }  // A loop that is shutting down has nothing left to close.
        }
    }
}

extension WebSocketServer {
    /// Serves until SIGINT or SIGTERM, then shuts down gracefully and returns the signal: stops
    /// listening, closes every connection with 1001 (``closeAll(code:reason:completion:)``, which also
    /// covers connections still in the handshake), and waits up to `gracePeriod` for them to finish; a
    /// second signal cuts the wait short. The loops keep running; call ``LoopGroup/shutdown()`` after if
    /// the process goes on.
    ///
    /// Blocks the calling thread, which must not be one of the group's loops; usable from top-level code
    /// in Swift 6 (no Dispatch signal source, whose handler top-level code would put on the main actor).
    ///
    /// ```swift
    /// let group = try LoopGroup()
    /// let server = WebSocketServer(group: group, handler: Echo())
    /// try server.listen(host: "0.0.0.0", port: 8082)
    /// server.run()
    /// ```
    /// - Returns: The signal that started the shutdown.
    @discardableResult
    public func run(gracePeriod: Duration = .seconds(10), signals: [Int32] = LoopGroup.shutdownSignals) -> Int32 {
        precondition(!self.group.loops.contains { $0.inEventLoop }, "WebSocketServer.run() would block its own loop")
        enum Event: Sendable { case signal(Int32), closed, timedOut }
        let events = BlockingQueue<Event>()
        guard let watcher = self.group.watchSignals(signals, { events.post(.signal($0)) }) else {
            return 0  // The loops are shutting down.
        }
        let loop = watcher.loop
        guard case .signal(let signo) = events.wait() else { return 0 }
        self.configuration.log?(.notice, "signal \(signo): shutting down", ["grace": "\(gracePeriod)"])
        self.stopListening()
        self.closeAll { events.post(.closed) }
        let timer = loop.runAndWait {
            LoopBound(loop.scheduleTimer(after: gracePeriod) { events.post(.timedOut) }, loop: loop)
        }
        _ = events.wait()  // Closed, the grace period over, or a second signal.
        // Wait for the cancel: if the caller returns from main at once, exit() runs libuv's destructor,
        // which closes the pipe its signal handles lock, and a uv_close still to come aborts.
        _ = loop.runAndWait {
            watcher.value.cancel()
            timer?.value.cancel()
        }
        return signo
    }
}

extension WebSocketServer {
    /// Serves until SIGINT or SIGTERM (or until the calling task is cancelled), then shuts down as the
    /// blocking ``run(gracePeriod:signals:)`` does and returns: stops listening, closes every connection
    /// with 1001 and waits up to `gracePeriod` for them (a second signal cuts it short). It suspends
    /// the task meanwhile and blocks no thread. (Not an async overload of `run`: top-level code would
    /// pick the blocking one.)
    ///
    /// ```swift
    /// let server = WebSocketServer(group: group) { socket in … }
    /// try server.listen(host: "127.0.0.1", port: 8080)
    /// await server.serve()
    /// await group.shutdownGracefully()
    /// ```
    /// - Returns: The signal that started the shutdown, or 0 if cancellation did.
    @discardableResult
    public func serve(gracePeriod: Duration = .seconds(10), signals: [Int32] = LoopGroup.shutdownSignals) async -> Int32 {
        enum Event: Sendable { case signal(Int32), closed, timedOut, cancelled }
        let events = AsyncMailbox<Event>()
        let loop = self.group.loops[0]
        let watching = await loop.run { () -> LoopBound<SignalWatcher>? in
            (try? loop.watchSignals(signals) { events.post(.signal($0)) }).map { LoopBound($0, loop: loop) }
        }
        guard let watcher = watching ?? nil else { return 0 }  // The loops are shutting down.
        return await withTaskCancellationHandler {
            var signo: Int32 = 0
            if case .signal(let received) = await events.next() { signo = received }
            self.configuration.log?(.notice, signo == 0 ? "cancelled: shutting down" : "signal \(signo): shutting down",
                                    ["grace": "\(gracePeriod)"])
            // Closed, the grace period over, a second signal or cancellation: each ends the wait.
            await self.shutdownGracefully(gracePeriod: gracePeriod, events: events, closed: .closed, timedOut: .timedOut)
            _ = await loop.run { watcher.value.cancel() }
            return signo
        } onCancel: {
            events.post(.cancelled)
        }
    }
}

extension WebSocketServer {
    /// Stops listening, closes every connection with `code` (``closeAll(code:reason:completion:)``) and
    /// returns when none is left or `gracePeriod` has passed, suspending the task meanwhile. What
    /// ``serve(gracePeriod:signals:)`` does after a signal, for code that decides itself when to stop (a
    /// service manager, a test). The loops keep running.
    public func shutdownGracefully(code: CloseCode = .goingAway, reason: String = "server shutting down",
                                   gracePeriod: Duration = .seconds(10)) async {
        let events = AsyncMailbox<Bool>()
        await withTaskCancellationHandler {
            await self.shutdownGracefully(code: code, reason: reason, gracePeriod: gracePeriod, events: events,
                                          closed: true, timedOut: false)
        } onCancel: {
            events.post(false)  // Cancelled: stop waiting (the connections still close).
        }
    }

    /// The shutdown, reporting to `events` (`closed` when every connection has, `timedOut` at the end of
    /// the grace period); the first event that `events` gets, these or another the caller posts (a
    /// second signal, cancellation), ends the wait.
    func shutdownGracefully<Event: Sendable>(code: CloseCode = .goingAway, reason: String = "server shutting down",
                                             gracePeriod: Duration, events: AsyncMailbox<Event>, closed: Event,
                                             timedOut: Event) async {
        self.stopListening()
        self.closeAll(code: code, reason: reason) { events.post(closed) }
        let loop = self.group.loops[0]
        let timer = await loop.run { LoopBound(loop.scheduleTimer(after: gracePeriod) { events.post(timedOut) }, loop: loop) }
        _ = await events.next()
        _ = await loop.run { timer?.value.cancel() }
    }
}

/// A compressor and its output for publishes from threads that are not the server's loops.
final class OffLoopDeflate {
    var stream: DeflateStream?
    var output = RawBuffer()

    deinit { self.output.free() }
}
