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
    static func response(key: String, subprotocol: String?, extensions: ExtensionOffer? = nil,
                         headers: HTTPHeaders) -> [UInt8] {
        var head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        head += "Sec-WebSocket-Accept: \(acceptValue(forKey: key))\r\n"
        if let subprotocol { head += "Sec-WebSocket-Protocol: \(subprotocol)\r\n" }
        if let extensions { head += "Sec-WebSocket-Extensions: \(extensions)\r\n" }
        for field in headers { head += "\(field.name): \(field.value)\r\n" }
        head += "\r\n"
        return Array(head.utf8)
    }
}

extension Handshake {
    /// Server: the configured extensions against the request's `Sec-WebSocket-Extensions` offers. Each
    /// factory, in the configuration's order, sees the offers of its name and may answer one; a factory
    /// whose reserved bits an earlier answer took is skipped. One extension per connection for now (the
    /// one in use, permessage-deflate, owns RSV1). `nil` result: no extension; a failure: answer 400.
    static func negotiateExtensions(
        _ request: HTTPRequest, compression: WebSocketCompression?, factories: [any WebSocketExtensionFactory]
    ) -> Result<AgreedExtension?, ExtensionNegotiationError> {
        guard compression != nil || !factories.isEmpty else { return .success(nil) }
        let values = request.headers["Sec-WebSocket-Extensions"]
        guard !values.isEmpty else { return .success(nil) }
        guard let offers = ExtensionOffer.parse(values) else {
            return .failure(ExtensionNegotiationError("malformed Sec-WebSocket-Extensions"))
        }
        if let compression, let (answer, agreement) = compression.answer(offers) {
            return .success(.deflate(agreement, answer: answer))
        }
        for factory in factories {
            let mine = offers.filter { $0.name.caseInsensitiveEquals(factory.name) }
            guard !mine.isEmpty else { continue }
            do {
                if let answer = try factory.answer(offers: mine) { return .success(.custom(factory, answer: answer)) }
            } catch {
                return .failure(error)
            }
        }
        return .success(nil)
    }

    /// The extension a handshake agreed: the built-in permessage-deflate, or one of the configuration's.
    enum AgreedExtension {
        case deflate(DeflateAgreement, answer: ExtensionOffer)
        case custom(any WebSocketExtensionFactory, answer: ExtensionOffer)

        var answer: ExtensionOffer {
            switch self {
            case .deflate(_, let answer), .custom(_, let answer): answer
            }
        }
    }
}
