/// RFC 6455 §4 opening handshake: the accept key and the server's checks of an upgrade request.
public enum Handshake {
    /// The GUID every server appends to the client's key (RFC 6455 §1.3).
    static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)).
    public static func acceptValue(forKey key: String) -> String {
        Base64.encode(SHA1.digest(Array((key + guid).utf8)))
    }

    /// Whether `request` asks for a WebSocket (an `Upgrade: websocket` token), as opposed to plain HTTP.
    static func isUpgrade(_ request: HTTPRequest) -> Bool {
        request.headers.contains("Upgrade", token: "websocket")
    }

    /// RFC 6455 §4.2.1 checks, in the order that gives the most useful status; `nil` when all pass.
    static func validate(_ request: HTTPRequest) -> HTTPResponse? {
        if request.method != "GET" {
            return .status(405, headers: ["Allow": "GET"])
        }
        if request.version == "HTTP/1.0" {
            return .status(400)
        }
        if request.headers.first("Host") == nil {
            return .status(400)
        }
        if !request.headers.contains("Connection", token: "upgrade") {
            return .status(400)
        }
        let versions = request.headers.tokens("Sec-WebSocket-Version")
        if versions != ["13"] {
            // §4.4: name the version this server speaks.
            return .status(426, headers: ["Sec-WebSocket-Version": "13"])
        }
        let keys = request.headers["Sec-WebSocket-Key"]
        guard keys.count == 1, let decoded = Base64.decode(keys[0].trimmingHTTPWhitespace()), decoded.count == 16 else {
            return .status(400)
        }
        return nil
    }

    /// The 101 response for an accepted request.
    static func response(key: String, subprotocol: String?, headers: HTTPHeaders) -> [UInt8] {
        var head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        head += "Sec-WebSocket-Accept: \(acceptValue(forKey: key))\r\n"
        if let subprotocol { head += "Sec-WebSocket-Protocol: \(subprotocol)\r\n" }
        for field in headers { head += "\(field.name): \(field.value)\r\n" }
        head += "\r\n"
        return Array(head.utf8)
    }
}

extension WebSocket {
    /// Server side of the handshake: collect the request, answer it, and either open or respond-and-close.
    func readHandshake(_ bytes: UnsafeRawBufferPointer) {
        if self.role == .client {
            self.readClientHandshake(bytes)
            return
        }
        guard let head = self.head else { return }
        let length: Int?
        do {
            length = try head.append(bytes)
        } catch {
            self.refuse(HTTPResponse.status(error.status))
            return
        }
        guard let length else { return }

        var request: HTTPRequest
        do {
            let (startLine, headers) = try head.split(length: length)
            request = try HTTPRequest.parse(startLine: startLine, headers: headers)
        } catch {
            self.refuse(HTTPResponse.status(error.status))
            return
        }
        request.remoteAddress = self.stream.remoteAddress

        guard Handshake.isUpgrade(request) else {
            self.refuse(self.handler.respond(to: request), countsAsError: false)
            return
        }
        if let refusal = Handshake.validate(request) {
            self.refuse(refusal)
            return
        }
        let decision = self.handler.shouldUpgrade(request)
        switch decision.kind {
        case .reject(let response):
            self.refuse(response, countsAsError: false)
        case .accept(let subprotocol, let headers):
            if let subprotocol, !request.headers.tokens("Sec-WebSocket-Protocol").contains(subprotocol) {
                // The application chose something the client never offered: the client would fail anyway.
                self.refuse(.status(500))
                return
            }
            let key = request.headers.first("Sec-WebSocket-Key")!.trimmingHTTPWhitespace()
            let response = Handshake.response(key: key, subprotocol: subprotocol, headers: headers)
            do { try self.stream.write(response) } catch { return }
            self.subprotocol = subprotocol
            self.open(request: request, leftover: length)
        }
    }

    /// The connection is upgraded: count it, tell the client's completion (`announce`) and the handler,
    /// and parse any frames that came early. The connection is open (it can send) in both callbacks.
    func open(request: HTTPRequest, leftover headLength: Int, announce: (() -> Void)? = nil) {
        self.phase = .open
        self.didOpen = true
        self.shared.clearDeadline(self)
        self.registry.add(self)
        let head = self.head
        self.head = nil
        announce?()
        if self.phase == .open { self.handler.webSocketDidOpen(self, request: request) }
        if let head, head.buffer.count > headLength, self.phase == .open || self.phase == .closeSent {
            // Frames sent right behind the handshake arrived in the same read.
            head.buffer.removeFirst(headLength)
            self.readFrames(head.buffer.mutableBytes)
        }
        head?.release()
    }

    /// Sends an HTTP response and closes once it is written (or the close timeout passes).
    func refuse(_ response: HTTPResponse, countsAsError: Bool = true) {
        if countsAsError { self.counters.countError() }
        self.head?.release()
        self.head = nil
        self.phase = .httpResponse
        do { try self.stream.write(response.serialized()) } catch { return }
        // Half-close and let the client close first, so our response is not lost to a reset.
        self.stream.shutdownWrite()
        self.shared.setDeadline(self, after: self.closeTimeout)
    }
}
