/// A security layer a connection can be put on: TLS, from StrandsTLS (`TLSContext`). Defined here so
/// that StrandsWS can serve `wss://` and connect to it without linking OpenSSL itself: only a program
/// that makes a `TLSContext` does.
public protocol ConnectionSecurity: Sendable {
    /// Puts the layer under `connection` (before it reads); a client's `serverName` is what it sends
    /// and verifies. `completion` runs on the connection's loop with `nil` when the layer's handshake is
    /// done, or the error that failed it (the connection is then closed).
    func secure(_ connection: TCPConnection, serverName: String?, _ completion: @escaping ((any Error)?) -> Void) throws
}
