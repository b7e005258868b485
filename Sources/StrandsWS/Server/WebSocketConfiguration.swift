/// Limits and timeouts of WebSocket connections, server or client.
public struct WebSocketConfiguration: Sendable {
    /// The largest message accepted, summed over its fragments; a larger one closes with 1009. 1 MiB
    /// bounds what one connection can make the process buffer while still fitting typical JSON payloads.
    public var maxMessageSize = 1 << 20
    /// Server: time from accept to a complete upgrade request; client: from connect to the 101 response.
    /// 10 s lets slow mobile links through and stops idle or slow-drip sockets from piling up.
    public var handshakeTimeout: Duration = .seconds(10)
    /// Client: time allowed for the TCP connect (name resolution included).
    public var connectTimeout: Duration = .seconds(10)
    /// Time from sending a close frame to the peer's answer (and, for a client, to the server closing TCP)
    /// before TCP is dropped. 5 s: a healthy peer answers in a round trip.
    public var closeTimeout: Duration = .seconds(5)
    /// Limits on the HTTP head of the handshake.
    public var httpLimits = HTTPLimits()
    /// Pending outbound bytes above which the connection stops reading (backpressure), and below which
    /// it resumes. See ``TCPStream/highWaterMark``.
    public var highWaterMark = 1 << 20
    public var lowWaterMark = 1 << 18

    public init() {}
}
