/// What a connection needs only some of the time: during the handshake, while closing, with a
/// subprotocol or an extension. A side allocation made when one of these starts and dropped when
/// none is left, so an idle open connection without them holds none of it.
final class ColdState {
    /// The HTTP head being read (server: the request; client: the response).
    var head: HTTPHeadReader?
    /// Client: what the handshake must see, and whom to tell.
    var pendingClient: ClientHandshake?
    /// The slot in the loop's deadline list (-1: none).
    var timedIndex = -1
    /// What the handler will hear when TCP ends.
    var closeCode: CloseCode = .abnormalClosure
    var closeReason = ""
    /// The error that ends the connection was counted already (a failed TLS handshake), by cause.
    var errorCounted = false
    /// The subprotocol agreed in the handshake.
    var subprotocol: String?
    /// The extension agreed in the handshake.
    var negotiated: (any WebSocketExtension)?
    /// permessage-deflate with context takeover (a stateless agreement needs nothing here).
    var deflate: DeflateConnection?
    /// Server: the topics this connection subscribes to, and its place in each one's list on its loop.
    var subscriptions: [(topic: Topic, index: Int)] = []
    /// Server: a request waiting for its body, or for the handler's decision (an upgrade) or response.
    var deferred: DeferredHandshake?

    /// Nothing here is needed any more (an open connection after its handshake, say).
    var isDisposable: Bool {
        self.head == nil && self.deferred == nil && self.pendingClient == nil && self.timedIndex < 0 && self.subprotocol == nil
            && self.negotiated == nil && self.deflate == nil && self.subscriptions.isEmpty && self.closeCode == .abnormalClosure && self.closeReason.isEmpty
    }

    deinit {
        self.head?.release()
    }
}

@available(*, unavailable)
extension ColdState: Sendable {}

/// A request head already read and parsed, waiting: for the rest of its body, or for the handler's
/// answer to it. `headLength` is where the head ends in the head reader's buffer.
enum DeferredHandshake {
    case body(HTTPRequest, headLength: Int, bodyLength: Int)
    case upgrade(HTTPRequest, headLength: Int)
    case response
}
