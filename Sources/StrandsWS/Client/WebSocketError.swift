/// Why a client connection could not be opened, or (async API) why a connection's operation failed.
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
        /// Async API: the connection is closed (``WebSocketError/closeCode`` says how), so a send was
        /// refused or the messages ended abnormally.
        case closed
        /// Async API: a send was refused while the connection is open: over the send cap, or a frame
        /// that may not be sent now.
        case sendRefused
    }

    public let kind: Kind
    /// The details, e.g. `connect to 127.0.0.1:1: ECONNREFUSED (connection refused)`.
    public let message: String
    /// The transport error behind a ``Kind/connectFailed``.
    public let transportError: UVError?
    /// ``Kind/closed``: the close code the connection ended with (1006 without a close frame).
    public var closeCode: CloseCode? = nil

    public var description: String { self.message }

    static func invalidURL(_ message: String) -> WebSocketError { WebSocketError(kind: .invalidURL, message: message, transportError: nil) }
    static func handshakeFailed(_ message: String) -> WebSocketError {
        WebSocketError(kind: .handshakeFailed, message: "handshake failed: \(message)", transportError: nil)
    }
    static func tlsFailed(_ error: any Error) -> WebSocketError {
        WebSocketError(kind: .tlsFailed, message: "\(error)", transportError: nil)
    }
    static func closed(_ code: CloseCode, _ reason: String) -> WebSocketError {
        WebSocketError(kind: .closed, message: "the connection is closed (\(code.rawValue)\(reason.isEmpty ? "" : ": " + reason))",
                       transportError: nil, closeCode: code)
    }
    static func sendRefused(_ result: SendResult) -> WebSocketError {
        WebSocketError(kind: .sendRefused, message: "send \(result)", transportError: nil)
    }
    static func timedOut(_ message: String) -> WebSocketError { WebSocketError(kind: .timedOut, message: message, transportError: nil) }
    static func connectFailed(_ error: UVError) -> WebSocketError {
        error == .timedOut
            ? WebSocketError(kind: .timedOut, message: error.description, transportError: error)
            : WebSocketError(kind: .connectFailed, message: error.description, transportError: error)
    }
}
