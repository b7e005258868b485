/// A server's answer to an upgrade request.
public struct UpgradeDecision: Sendable {
    enum Kind: Sendable {
        case accept(subprotocol: String?, headers: HTTPHeaders)
        case reject(HTTPResponse)
        case later
    }
    let kind: Kind

    /// Accepts; `subprotocol` must be one the client offered in `Sec-WebSocket-Protocol`.
    public static func accept(subprotocol: String? = nil, headers: HTTPHeaders = HTTPHeaders()) -> UpgradeDecision {
        UpgradeDecision(kind: .accept(subprotocol: subprotocol, headers: headers))
    }

    /// Refuses with `response`; the connection closes after it.
    public static func reject(_ response: HTTPResponse) -> UpgradeDecision { UpgradeDecision(kind: .reject(response)) }

    /// Decides later (after I/O: asking an auth service, say): the handshake waits, reading paused, until
    /// ``WebSocket/decideUpgrade(_:)`` is called on the connection's loop with the decision, or the
    /// handshake timeout closes the connection. Only from ``WebSocketHandler/shouldUpgrade(_:on:)``.
    public static let later = UpgradeDecision(kind: .later)

    /// Refuses with a bare status (403, 401, …).
    public static func reject(status: Int) -> UpgradeDecision { .reject(.status(status)) }
}
