/// Why a client connection could not be opened.
public struct WebSocketError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The URL is not a `ws://` URL this client can use.
        case invalidURL
        /// TCP could not connect (refused, unreachable, name not found).
        case connectFailed
        /// The server answered, but not with a valid 101 for this request.
        case handshakeFailed
        /// Connect or handshake took longer than configured.
        case timedOut
        /// The TLS handshake of a `wss://` connection failed: the message has OpenSSL's reason and,
        /// when the server's certificate did not verify, why (expired, unknown CA, name mismatch).
        case tlsFailed
    }

    public let kind: Kind
    /// The details, e.g. `connect to 127.0.0.1:1: ECONNREFUSED (connection refused)`.
    public let message: String
    /// The transport error behind a ``Kind/connectFailed``.
    public let transportError: UVError?

    public var description: String { self.message }

    static func invalidURL(_ message: String) -> WebSocketError { WebSocketError(kind: .invalidURL, message: message, transportError: nil) }
    static func handshakeFailed(_ message: String) -> WebSocketError {
        WebSocketError(kind: .handshakeFailed, message: "handshake failed: \(message)", transportError: nil)
    }
    static func tlsFailed(_ error: any Error) -> WebSocketError {
        WebSocketError(kind: .tlsFailed, message: "\(error)", transportError: nil)
    }
    static func timedOut(_ message: String) -> WebSocketError { WebSocketError(kind: .timedOut, message: message, transportError: nil) }
    static func connectFailed(_ error: UVError) -> WebSocketError {
        error == .timedOut
            ? WebSocketError(kind: .timedOut, message: error.description, transportError: error)
            : WebSocketError(kind: .connectFailed, message: error.description, transportError: error)
    }
}
