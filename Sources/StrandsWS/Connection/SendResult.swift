/// What became of a frame handed to ``WebSocket/send(_:_:fin:)`` and friends.
public enum SendResult: UInt8, Sendable, Equatable, CustomStringConvertible {
    /// Written, or queued with the connection's unsent bytes at or under the high-water mark.
    case sent
    /// Accepted and queued, but the unsent bytes are now above the high-water mark: the peer is not
    /// keeping up. Slow down until ``WebSocketHandler/webSocketDidDrain(_:)``.
    case backpressure
    /// Refused: the connection is not open (still in the handshake, closing or closed).
    case notOpen
    /// Refused: it would have taken the unsent bytes past ``WebSocketConfiguration/maxPendingBytes``.
    /// Nothing was buffered; by the configured ``WebSocketConfiguration/SendCapPolicy`` the message was
    /// dropped, or the connection is now closing with 1008.
    case overCap
    /// Refused: not a frame that may be sent now (a continuation outside a fragmented message, a new
    /// message inside one, a control frame over 125 bytes or fragmented, a close frame, a reserved
    /// opcode, or a close code that may not be sent).
    case invalid

    /// Whether the frame was accepted (``sent`` or ``backpressure``).
    public var isAccepted: Bool { self.rawValue <= SendResult.backpressure.rawValue }

    public var description: String {
        switch self {
        case .sent: "sent"
        case .backpressure: "queued above the high-water mark"
        case .notOpen: "refused: not open"
        case .overCap: "refused: over the send cap"
        case .invalid: "refused: not allowed now"
        }
    }
}
