/// What a client's handshake must see in the server's response. Exists only during the handshake.
final class ClientHandshake {
    let request: HTTPRequest
    let expectedAccept: String
    let offeredProtocols: [String]
    let completion: (Result<WebSocket, WebSocketError>) -> Void

    init(request: HTTPRequest, expectedAccept: String, offeredProtocols: [String],
         completion: @escaping (Result<WebSocket, WebSocketError>) -> Void) {
        self.request = request
        self.expectedAccept = expectedAccept
        self.offeredProtocols = offeredProtocols
        self.completion = completion
    }

    /// What a response that passes agrees to.
    struct Agreement: Equatable {
        var subprotocol: String?
        var extensions: [ExtensionOffer]
    }

    /// RFC 6455 §4.1 (steps 1–6) on a response head: the status, `Upgrade`, `Connection`, the accept
    /// key, and that the subprotocol and extensions chosen were offered (`offeredExtensions` by name).
    /// The failure is the reason, for ``WebSocketError/Kind/handshakeFailed``. Pure: fuzzed.
    static func check(startLine: String, headers: HTTPHeaders, expectedAccept: String, offeredProtocols: [String],
                      offeredExtensions: [String]) -> Result<Agreement, HandshakeFailure> {
        let parts = startLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1.") else {
            return .failure(HandshakeFailure("malformed status line '\(startLine)'"))
        }
        guard parts[1] == "101" else {
            return .failure(HandshakeFailure("server answered '\(parts.dropFirst().joined(separator: " "))'"))
        }
        guard headers.contains("Upgrade", token: "websocket") else {
            return .failure(HandshakeFailure("response lacks 'Upgrade: websocket'"))
        }
        guard headers.contains("Connection", token: "upgrade") else {
            return .failure(HandshakeFailure("response lacks 'Connection: Upgrade'"))
        }
        guard headers["Sec-WebSocket-Accept"] == [expectedAccept] else {
            return .failure(HandshakeFailure("wrong Sec-WebSocket-Accept"))
        }
        // §4.1: an extension or subprotocol the client did not offer fails the connection.
        let values = headers["Sec-WebSocket-Extensions"]
        guard let extensions = ExtensionOffer.parse(values) else {
            return .failure(HandshakeFailure("malformed Sec-WebSocket-Extensions '\(values.joined(separator: ", "))'"))
        }
        var seen: [String] = []
        for answer in extensions {
            guard offeredExtensions.contains(where: { $0.caseInsensitiveEquals(answer.name) }) else {
                let what = offeredExtensions.isEmpty ? "none was offered" : "not offered"
                return .failure(HandshakeFailure("server chose extension '\(answer.name)', \(what)"))
            }
            guard !seen.contains(where: { $0.caseInsensitiveEquals(answer.name) }) else {
                return .failure(HandshakeFailure("server answered extension '\(answer.name)' twice"))
            }
            seen.append(answer.name)
        }
        let chosen = headers.tokens("Sec-WebSocket-Protocol")
        if chosen.count > 1 || (chosen.count == 1 && !offeredProtocols.contains(chosen[0])) {
            return .failure(HandshakeFailure("server chose subprotocol '\(chosen.joined(separator: ", "))', not offered"))
        }
        return .success(Agreement(subprotocol: chosen.first, extensions: extensions))
    }
}
