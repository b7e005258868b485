/// A server's answer to an upgrade request.
public struct UpgradeDecision: Sendable {
    enum Kind: Sendable {
        case accept(subprotocol: String?, headers: HTTPHeaders)
        case reject(HTTPResponse)
    }
    let kind: Kind

    /// Accepts; `subprotocol` must be one the client offered in `Sec-WebSocket-Protocol`.
    public static func accept(subprotocol: String? = nil, headers: HTTPHeaders = HTTPHeaders()) -> UpgradeDecision {
        UpgradeDecision(kind: .accept(subprotocol: subprotocol, headers: headers))
    }

    /// Refuses with `response`; the connection closes after it.
    public static func reject(_ response: HTTPResponse) -> UpgradeDecision { UpgradeDecision(kind: .reject(response)) }

    /// Refuses with a bare status (403, 401, …).
    public static func reject(status: Int) -> UpgradeDecision { .reject(.status(status)) }
}
