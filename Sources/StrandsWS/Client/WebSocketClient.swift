/// Opens client connections.
public enum WebSocketClient {
    /// Connects to a `ws://` URL on `loop` and performs the opening handshake. Loop-confined.
    ///
    /// - Parameters:
    ///   - headers: Extra request headers (cookies, authorization, …).
    ///   - subprotocols: Offered in `Sec-WebSocket-Protocol`; the server may pick one
    ///     (``WebSocket/subprotocol``) or none.
    ///   - localAddress: A numeric address to connect from (any port), e.g. one of several loopback
    ///     addresses when one has too few ephemeral ports for all the connections a load test opens.
    ///   - completion: Runs on `loop` with the open connection, before the handler's
    ///     ``WebSocketHandler/webSocketDidOpen(_:request:)``, or with why it failed.
    public static func connect(
        to url: String,
        on loop: Loop,
        configuration: WebSocketConfiguration = WebSocketConfiguration(),
        headers: HTTPHeaders = HTTPHeaders(),
        subprotocols: [String] = [],
        localAddress: String? = nil,
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
        if target.isSecure && configuration.tls == nil {
            completion(.failure(.invalidURL("'\(url)': wss:// needs configuration.tls (a TLSContext.client() from StrandsTLS)")))
            return
        }
        var source: SocketAddress?
        if let localAddress {
            guard let address = try? SocketAddress(ip: localAddress, port: 0) else {
                completion(.failure(.invalidURL("local address '\(localAddress)': not a numeric address")))
                return
            }
            source = address
        }
        let context = WebSocketLoopContext.on(loop)
        let registry = context.clientRegistry(handler: handler, configuration: configuration)
        TCPConnection.connect(on: loop, host: target.host, port: target.port, timeout: configuration.connectTimeout, source: source,
                              make: { loop throws(UVError) in try WebSocket(loop: loop, role: .client, registry: registry) }
        ) { result in
            switch result {
            case .failure(let error):
                completion(.failure(.connectFailed(error)))
            case .success(let connection):
                let socket = unsafeDowncast(connection, to: WebSocket.self)
                if target.isSecure, let tls = configuration.tls {
                    // The request is written at once and waits inside TLS for its handshake to end.
                    do {
                        try tls.secure(socket, serverName: target.host) { error in
                            if let error { socket.failClientHandshake(.tlsFailed(error)) }
                        }
                    } catch {
                        completion(.failure(.tlsFailed(error)))
                        socket.tcpClose()
                        return
                    }
                }
                Self.handshake(socket: socket, url: target, headers: headers, subprotocols: subprotocols, completion: completion)
            }
        }
    }

    private static func handshake(
        socket: WebSocket,
        url: WebSocketURL,
        headers: HTTPHeaders,
        subprotocols: [String],
        completion: @escaping (Result<WebSocket, WebSocketError>) -> Void
    ) {
        let configuration = socket.registry.configuration
        var nonce = [UInt8](repeating: 0, count: 16)
        nonce.withUnsafeMutableBytes { System.fillRandom($0) }
        let key = Base64.encode(nonce)
        var request = HTTPRequest(method: "GET", target: url.target, headers: [
            "Host": url.hostHeader, "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13",
        ])
        if !subprotocols.isEmpty { request.headers.add(name: "Sec-WebSocket-Protocol", value: subprotocols.joined(separator: ", ")) }
        let offers = (configuration.compression?.offers() ?? []) + configuration.extensions.flatMap { $0.offers() }
        if !offers.isEmpty {
            request.headers.add(name: "Sec-WebSocket-Extensions", value: offers.map(\.description).joined(separator: ", "))
        }
        for field in headers { request.headers.add(name: field.name, value: field.value) }
        request.remoteAddress = socket.tcpRemoteAddress
        let cold = socket.coldState
        cold.pendingClient = ClientHandshake(request: request, expectedAccept: Handshake.acceptValue(forKey: key),
                                             offeredProtocols: subprotocols, completion: completion)
        cold.head = HTTPHeadReader(limits: configuration.httpLimits)
        socket.registry.add(socket)
        socket.shared.setDeadline(socket, after: configuration.handshakeTimeout)
        var text = "GET \(request.target) HTTP/1.1\r\n"
        for field in request.headers { text += "\(field.name): \(field.value)\r\n" }
        text += "\r\n"
        do {
            try socket.tcpWrite(Array(text.utf8))
        } catch {
            socket.failClientHandshake(.connectFailed(error))
            return
        }
        socket.tcpStartReading()
    }
}
