/// An extension a configuration offers (client) or accepts (server), such as permessage-deflate: it
/// negotiates in the handshake and makes the per-connection ``WebSocketExtension``.
///
/// One instance serves every connection of a configuration, on every loop: keep it immutable.
public protocol WebSocketExtensionFactory: AnyObject, Sendable {
    /// The name in `Sec-WebSocket-Extensions`, e.g. `permessage-deflate`.
    var name: String { get }
    /// The reserved bits of a frame's first byte this extension owns (0x40 is RSV1). Frames carrying
    /// them pass the parser on connections that negotiated it; any other reserved bit still fails with 1002.
    var rsvBits: UInt8 { get }

    /// Server: the client's offers of this extension, in its order of preference. Returns the answer to
    /// put in the response (taking the first acceptable offer), or `nil` to decline them all, or throws
    /// ``ExtensionNegotiationError`` when an offer is malformed (the server then answers 400).
    func answer(offers: [ExtensionOffer]) throws(ExtensionNegotiationError) -> ExtensionOffer?

    /// Client: what to offer in the request (several, to be tried in order, is allowed).
    func offers() -> [ExtensionOffer]

    /// Client: checks the server's answer to the offers; throws to fail the handshake.
    func accept(answer: ExtensionOffer) throws(ExtensionNegotiationError)

    /// The per-connection state for an agreed `answer`, on the connection's loop.
    func makeExtension(answer: ExtensionOffer, isClient: Bool, loop: Loop) -> any WebSocketExtension
}
