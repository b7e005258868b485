/// The callback handler behind the async API: hands each connection's events to its ``AsyncWebSocket``
/// (kept in `WebSocket.context`) and, on a server, runs the user's function for it in a task on the
/// connection's loop.
final class AsyncBridge: WebSocketHandler {
    let serve: (@Sendable (AsyncWebSocket) async throws -> Void)?
    let maxBufferedMessages: Int
    let upgrade: (@Sendable (HTTPRequest) async -> UpgradeDecision)?
    let respond: (@Sendable (HTTPRequest) async -> HTTPResponse)?

    init(maxBufferedMessages: Int, upgrade: (@Sendable (HTTPRequest) async -> UpgradeDecision)?,
         respond: (@Sendable (HTTPRequest) async -> HTTPResponse)? = nil,
         serve: (@Sendable (AsyncWebSocket) async throws -> Void)?) {
        self.serve = serve
        self.maxBufferedMessages = maxBufferedMessages
        self.upgrade = upgrade
        self.respond = respond
    }

    /// The user's decision, made in a task on the connection's loop (it may await I/O); the handshake
    /// waits for it, the loop does not.
    func shouldUpgrade(_ request: HTTPRequest, on socket: WebSocket) -> UpgradeDecision {
        guard let upgrade = self.upgrade else { return .accept() }
        let handOff = AsyncWebSocket.HandOff(socket: socket)
        Task(executorPreference: socket.loop.taskExecutor) {
            let decision = await upgrade(request)
            handOff.onLoop { $0.decideUpgrade(decision) }
        }
        return .later
    }

    /// Plain HTTP requests: answered by the user's function in a task on the loop, or 404.
    func respond(to request: HTTPRequest, on socket: WebSocket) -> HTTPResponse? {
        guard let respond = self.respond else { return .status(404) }
        let handOff = AsyncWebSocket.HandOff(socket: socket)
        Task(executorPreference: socket.loop.taskExecutor) {
            let response = await respond(request)
            handOff.onLoop { $0.respond(response) }
        }
        return nil
    }

    func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) {
        guard let serve = self.serve else { return }  // A client's is made by `connect`.
        let connection = AsyncWebSocket(handOff: .init(socket: socket), request: request, maxBufferedMessages: self.maxBufferedMessages)
        // The task prefers the loop: it starts there (the first job goes to the loop's own queue) and its
        // nonisolated code, the user's included, runs there.
        Task(executorPreference: socket.loop.taskExecutor) {
            var code = CloseCode.normalClosure
            var reason = ""
            do {
                withUnsafeCurrentTask { connection.coveredTask = $0 }
                defer { connection.coveredTask = nil }
                try await withTaskCancellationHandler {
                    try await serve(connection)
                } onCancel: {
                    _ = connection.loop.execute { connection.closeForCancellation() }
                }
            } catch let error as WebSocketError {
                if error.kind != .closed { (code, reason) = (.internalError, "\(error)") }
            } catch is CancellationError {
                (code, reason) = (.goingAway, "task cancelled")
            } catch {
                (code, reason) = (.internalError, "the server's handler failed")
                connection.socket.registry.configuration.log?(.warning, "the connection's handler threw: \(error)",
                                                              connection.socket.logMetadata())
            }
            if Task.isCancelled { (code, reason) = (.goingAway, "task cancelled") }
            await connection.close(code: code, reason: reason)
        }
    }

    @inline(__always)
    private func connection(_ socket: WebSocket) -> AsyncWebSocket? {
        socket.context.map { unsafeDowncast($0, to: AsyncWebSocket.self) }
    }

    func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
        // Per message: the connection through `userData`, unretained (`context` keeps it alive).
        guard let pointer = UnsafeRawPointer(bitPattern: UInt(socket.userData)) else { return }
        Unmanaged<AsyncWebSocket>.fromOpaque(pointer)._withUnsafeGuaranteedRef { $0.received(message) }
    }

    func webSocketDidDrain(_ socket: WebSocket) {
        self.connection(socket)?.drained()
    }

    func webSocket(_ socket: WebSocket, didCloseWith code: CloseCode, reason: String) {
        self.connection(socket)?.finish(code: code, reason: reason)
        socket.userData = 0
        socket.context = nil  // The connection holds the socket: let the pair go.
    }
}

extension WebSocketServer {
    /// A server whose connections are each served by `serve`, in a task on the connection's loop.
    ///
    /// ```swift
    /// let server = WebSocketServer(group: group) { socket in
    ///     for try await message in socket.messages { try await socket.send(message) }
    /// }
    /// try server.listen(host: "127.0.0.1", port: 8080)
    /// ```
    ///
    /// - Parameters:
    ///   - maxBufferedMessages: Messages at most that wait for a connection's task before its reading
    ///     pauses (see ``AsyncWebSocket``).
    ///   - shouldUpgrade: Accepts or rejects each upgrade request (default: accept all). It may await
    ///     (an auth service, a database): the handshake waits for it, within the handshake timeout, and
    ///     the loop goes on serving the others meanwhile.
    ///   - respond: Answers requests that are not upgrades (routes beside the WebSocket: method, path,
    ///     query, headers and body in the request); default 404. The connection closes after the response.
    ///   - serve: Runs once per connection; when it returns the connection closes with 1000, when it
    ///     throws with 1011 (1001 if it was cancelled).
    public convenience init(group: LoopGroup, configuration: WebSocketConfiguration = WebSocketConfiguration(),
                            maxBufferedMessages: Int = 64,
                            shouldUpgrade: (@Sendable (HTTPRequest) async -> UpgradeDecision)? = nil,
                            respond: (@Sendable (HTTPRequest) async -> HTTPResponse)? = nil,
                            serve: @escaping @Sendable (AsyncWebSocket) async throws -> Void) {
        self.init(group: group, configuration: configuration,
                  handler: AsyncBridge(maxBufferedMessages: maxBufferedMessages, upgrade: shouldUpgrade, respond: respond,
                                       serve: serve))
    }
}

extension WebSocketClient {
    /// Connects to a `ws://` or `wss://` URL on `loop` and returns the open connection; from any task.
    /// The connection's methods are best called from a task on `loop` (they hop there otherwise).
    public static func connect(
        to url: String,
        on loop: Loop,
        configuration: WebSocketConfiguration = WebSocketConfiguration(),
        headers: HTTPHeaders = HTTPHeaders(),
        subprotocols: [String] = [],
        maxBufferedMessages: Int = 64
    ) async throws(WebSocketError) -> AsyncWebSocket {
        let bridge = AsyncBridge(maxBufferedMessages: maxBufferedMessages, upgrade: nil, serve: nil)
        let result: Result<AsyncWebSocket, WebSocketError> = await withUnsafeContinuation { continuation in
            let accepted = loop.execute {
                WebSocketClient.connect(to: url, on: loop, configuration: configuration, headers: headers,
                                        subprotocols: subprotocols, handler: bridge) { result in
                    switch result {
                    case .success(let socket):
                        // The request as sent: its target and the headers given (the handshake's own
                        // headers are the library's).
                        let target = (try? WebSocketURL(url))?.target ?? "/"
                        let connection = AsyncWebSocket(handOff: .init(socket: socket), request: HTTPRequest(method: "GET", target: target, headers: headers),
                                                        maxBufferedMessages: maxBufferedMessages)
                        continuation.resume(returning: .success(connection))
                    case .failure(let error):
                        continuation.resume(returning: .failure(error))
                    }
                }
            }
            if !accepted { continuation.resume(returning: .failure(.connectFailed(UVError.notConnected.with(context: "the loop has shut down")))) }
        }
        return try result.get()
    }
}
