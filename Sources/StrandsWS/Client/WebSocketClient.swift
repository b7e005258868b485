/// What a client's handshake must see in the server's response. Exists only during the handshake.
final class ClientHandshake {
    let request: HTTPRequest
    let expectedAccept: String
    let offeredProtocols: [String]
    let handshakeTimeout: Duration
    let completion: (Result<WebSocket, WebSocketError>) -> Void

    init(request: HTTPRequest, expectedAccept: String, offeredProtocols: [String], handshakeTimeout: Duration,
         completion: @escaping (Result<WebSocket, WebSocketError>) -> Void) {
        self.request = request
        self.expectedAccept = expectedAccept
        self.offeredProtocols = offeredProtocols
        self.handshakeTimeout = handshakeTimeout
        self.completion = completion
    }
}

/// Opens client connections.
public enum WebSocketClient {
    /// Connects to a `ws://` URL on `loop` and performs the opening handshake. Loop-confined.
    ///
    /// - Parameters:
    ///   - headers: Extra request headers (cookies, authorization, …).
    ///   - subprotocols: Offered in `Sec-WebSocket-Protocol`; the server may pick one
    ///     (``WebSocket/subprotocol``) or none.
    ///   - completion: Runs on `loop` with the open connection, before the handler's
    ///     ``WebSocketHandler/webSocketDidOpen(_:request:)``, or with why it failed.
    public static func connect(
        to url: String,
        on loop: Loop,
        configuration: WebSocketConfiguration = WebSocketConfiguration(),
        headers: HTTPHeaders = HTTPHeaders(),
        subprotocols: [String] = [],
        handler: any WebSocketHandler,
        completion: @escaping (Result<WebSocket, WebSocketError>) -> Void
    ) {
        let target: WebSocketURL
        do {
            target = try WebSocketURL(url)
        } catch {
            completion(.failure(error))
            return
        }
        TCPStream.connect(on: loop, host: target.host, port: target.port, timeout: configuration.connectTimeout) { result in
            switch result {
            case .failure(let error):
                WebSocketLoopContext.on(loop).clients.counters.countError()
                completion(.failure(.connectFailed(error)))
            case .success(let stream):
                Self.handshake(stream: stream, url: target, configuration: configuration, headers: headers,
                               subprotocols: subprotocols, handler: handler, completion: completion)
            }
        }
    }

    private static func handshake(
        stream: TCPStream,
        url: WebSocketURL,
        configuration: WebSocketConfiguration,
        headers: HTTPHeaders,
        subprotocols: [String],
        handler: any WebSocketHandler,
        completion: @escaping (Result<WebSocket, WebSocketError>) -> Void
    ) {
        let socket = WebSocket(stream: stream, role: .client, handler: handler, configuration: configuration, registry: nil)
        var nonce = [UInt8](repeating: 0, count: 16)
        nonce.withUnsafeMutableBytes { System.fillRandom($0) }
        let key = Base64.encode(nonce)
        var request = HTTPRequest(method: "GET", target: url.target, headers: [
            "Host": url.hostHeader, "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13",
        ])
        if !subprotocols.isEmpty { request.headers.add(name: "Sec-WebSocket-Protocol", value: subprotocols.joined(separator: ", ")) }
        for field in headers { request.headers.add(name: field.name, value: field.value) }
        request.remoteAddress = stream.remoteAddress
        socket.pendingClient = ClientHandshake(request: request, expectedAccept: Handshake.acceptValue(forKey: key),
                                               offeredProtocols: subprotocols,
                                               handshakeTimeout: configuration.handshakeTimeout, completion: completion)
        socket.head = HTTPHeadReader(limits: configuration.httpLimits)
        socket.shared.setDeadline(socket, after: configuration.handshakeTimeout)
        var text = "GET \(request.target) HTTP/1.1\r\n"
        for field in request.headers { text += "\(field.name): \(field.value)\r\n" }
        text += "\r\n"
        do {
            try stream.write(Array(text.utf8))
        } catch {
            socket.failClientHandshake(.connectFailed(error))
            return
        }
        stream.startReading()
    }
}

extension WebSocket {
    /// Client side of the handshake: read the response head and check it (RFC 6455 §4.1, steps 1–6).
    func readClientHandshake(_ bytes: UnsafeRawBufferPointer) {
        guard let head = self.head, let pending = self.pendingClient else { return }
        let length: Int?
        do {
            length = try head.append(bytes)
        } catch {
            self.failClientHandshake(.handshakeFailed("response head too large"))
            return
        }
        guard let length else { return }
        let startLine: String, headers: HTTPHeaders
        do {
            (startLine, headers) = try head.split(length: length)
        } catch {
            self.failClientHandshake(.handshakeFailed("malformed response (\(error.reason))"))
            return
        }
        let parts = startLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1.") else {
            self.failClientHandshake(.handshakeFailed("malformed status line '\(startLine)'"))
            return
        }
        guard parts[1] == "101" else {
            self.failClientHandshake(.handshakeFailed("server answered '\(parts.dropFirst().joined(separator: " "))'"))
            return
        }
        guard headers.contains("Upgrade", token: "websocket") else {
            self.failClientHandshake(.handshakeFailed("response lacks 'Upgrade: websocket'"))
            return
        }
        guard headers.contains("Connection", token: "upgrade") else {
            self.failClientHandshake(.handshakeFailed("response lacks 'Connection: Upgrade'"))
            return
        }
        guard headers["Sec-WebSocket-Accept"] == [pending.expectedAccept] else {
            self.failClientHandshake(.handshakeFailed("wrong Sec-WebSocket-Accept"))
            return
        }
        // §4.1: an extension or subprotocol the client did not offer fails the connection.
        if let extensions = headers.tokens("Sec-WebSocket-Extensions").first {
            self.failClientHandshake(.handshakeFailed("server chose extension '\(extensions)', none was offered"))
            return
        }
        let chosen = headers.tokens("Sec-WebSocket-Protocol")
        if chosen.count > 1 || (chosen.count == 1 && !pending.offeredProtocols.contains(chosen[0])) {
            self.failClientHandshake(.handshakeFailed("server chose subprotocol '\(chosen.joined(separator: ", "))', not offered"))
            return
        }
        self.subprotocol = chosen.first
        self.pendingClient = nil
        self.open(request: pending.request, leftover: length) { pending.completion(.success(self)) }
    }

    /// Ends a client handshake that cannot succeed: the completion hears why, and TCP is closed.
    func failClientHandshake(_ error: WebSocketError) {
        self.counters.countError()
        if let pending = self.pendingClient {
            self.pendingClient = nil
            pending.completion(.failure(error))
        }
        self.stream.close()
    }
}
