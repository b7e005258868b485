/// A WebSocket close status code (RFC 6455 §7.4).
public struct CloseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    /// 1000: the purpose of the connection was fulfilled.
    public static let normalClosure = CloseCode(1000)
    /// 1001: the endpoint is going away (a server shutting down, a browser leaving the page).
    public static let goingAway = CloseCode(1001)
    /// 1002: the peer broke the protocol.
    public static let protocolError = CloseCode(1002)
    /// 1003: a data type the endpoint cannot accept.
    public static let unsupportedData = CloseCode(1003)
    /// 1005: reported locally when a close frame carried no code; never sent.
    public static let noStatusReceived = CloseCode(1005)
    /// 1006: reported locally when the connection ended without a close frame; never sent.
    public static let abnormalClosure = CloseCode(1006)
    /// 1007: a text message (or close reason) that is not UTF-8.
    public static let invalidPayload = CloseCode(1007)
    /// 1008: a message that violates the endpoint's policy.
    public static let policyViolation = CloseCode(1008)
    /// 1009: a message larger than the endpoint accepts.
    public static let messageTooBig = CloseCode(1009)
    /// 1010: the client needed an extension the server did not negotiate.
    public static let mandatoryExtension = CloseCode(1010)
    /// 1011: the server met an unexpected condition.
    public static let internalError = CloseCode(1011)

    /// Whether a peer may send this code in a close frame: 1000–1003, 1007–1014 (1012–1014 registered
    /// with IANA after RFC 6455), and 3000–4999 for libraries and applications.
    public var isValidOnTheWire: Bool {
        switch self.rawValue {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }

    public var description: String { "\(self.rawValue)" }
}
