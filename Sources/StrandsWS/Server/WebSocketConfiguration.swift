/// Limits, timeouts and keepalive of WebSocket connections, server or client.
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
    /// it resumes. A send above it reports ``SendResult/backpressure``.
    public var highWaterMark = 1 << 20
    public var lowWaterMark = 1 << 18

    /// The most unsent bytes a connection may hold (queued for the kernel, or corked). A send that would
    /// pass it is not buffered: the connection closes with 1008 (``SendCapPolicy/close``, the default) or
    /// the message is dropped (``SendCapPolicy/drop``), and `send` returns ``SendResult/overCap``. So a
    /// peer that never reads costs at most this much however much the application pushes to it.
    /// 4 MiB: four times the high-water mark, room for a burst above it, small next to a server's RAM
    /// divided by thousands of connections. 0 turns the cap off.
    public var maxPendingBytes = 4 << 20
    /// What a send that would pass ``maxPendingBytes`` does.
    public var sendCapPolicy = SendCapPolicy.close

    /// Sends a ping when nothing has arrived for this long (zero: never). Keeps NAT and proxy mappings
    /// alive and turns a vanished peer into silence that ``idleTimeout`` catches. 30 s: under the 60 s
    /// idle limits of common proxies and load balancers (nginx `proxy_read_timeout`, AWS ALB), as
    /// Hummingbird's default (Python `websockets` pings every 20 s, uWebSockets at its 120 s idle limit).
    public var pingInterval: Duration = .seconds(30)
    /// Closes with 1001 ("idle timeout") when nothing has arrived for this long (zero: never); a peer
    /// that does not answer the close frame is dropped at ``closeTimeout``. 75 s: two pings and a round
    /// trip past the last byte; a live peer answers every ping, so only a dead or stuck one gets here.
    public var idleTimeout: Duration = .seconds(75)

    /// permessage-deflate to offer (client) or accept (server); off (`nil`) by default. See
    /// ``WebSocketCompression`` for the two modes and what each costs.
    public var compression: WebSocketCompression?
    /// TLS: a server serves `wss://` (every accepted connection, the handshake timeout covering the TLS
    /// handshake too); a client needs it for `wss://` URLs. A `TLSContext` from StrandsTLS:
    /// `try TLSContext.server(certificateChain:privateKey:)` or `try TLSContext.client()`.
    public var tls: (any ConnectionSecurity)?

    /// Extensions to offer (client) or accept (server), in order of preference, after
    /// ``compression``. None by default.
    public var extensions: [any WebSocketExtensionFactory] = []

    /// Where connection errors and lifecycle events are reported (never per message); none (`nil`) by
    /// default. See ``WebSocketLog``; StrandsLogging sets it from a swift-log `Logger`.
    public var log: WebSocketLog?

    /// What a send over ``WebSocketConfiguration/maxPendingBytes`` does.
    public enum SendCapPolicy: Sendable, Equatable {
        /// Close the connection with 1008 (policy violation): a reader that cannot keep up is cut off.
        case close
        /// Drop the message and keep the connection: for feeds where a lost update is better than a lost
        /// client (the application sees ``SendResult/overCap`` and may resynchronize later).
        case drop
    }

    public init() {}
}

extension WebSocketConfiguration: Equatable {
    /// Equal settings; extensions compare by identity (a factory is configuration, not data), and the
    /// log is not compared (where events go is not a setting of the connections).
    public static func == (a: WebSocketConfiguration, b: WebSocketConfiguration) -> Bool {
        a.maxMessageSize == b.maxMessageSize && a.handshakeTimeout == b.handshakeTimeout
            && a.connectTimeout == b.connectTimeout && a.closeTimeout == b.closeTimeout && a.httpLimits == b.httpLimits
            && a.highWaterMark == b.highWaterMark && a.lowWaterMark == b.lowWaterMark
            && a.maxPendingBytes == b.maxPendingBytes && a.sendCapPolicy == b.sendCapPolicy
            && a.pingInterval == b.pingInterval && a.idleTimeout == b.idleTimeout && a.compression == b.compression
            && a.extensions.map(ObjectIdentifier.init) == b.extensions.map(ObjectIdentifier.init)
    }
}
