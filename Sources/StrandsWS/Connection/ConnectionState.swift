/// The lifecycle of one WebSocket connection, with no I/O: an event goes in, the one action the
/// connection must carry out comes back. `WebSocket` owns one (two bytes, inline) and only executes what
/// it returns, so every transition, odd ones included (close while closing, data after close, a timeout
/// during the close handshake), is decided here and tested without sockets.
///
/// Phases: `handshake` → `open` → `closeSent` (we closed first) → `closing` (both close frames through,
/// or the connection failed: waiting for TCP to end) → `closed`. A server that answers with plain HTTP
/// goes `handshake` → `httpResponse` → `closed`.
struct ConnectionState: Equatable {
    enum Phase: UInt8 {
        /// Server: reading the upgrade request. Client: waiting for the 101.
        case handshake
        /// Server: a plain HTTP response is out; waiting for the peer to close.
        case httpResponse
        case open
        /// Our close frame went out; waiting for the peer's.
        case closeSent
        /// Both close frames are through (or the connection failed); waiting for TCP to end.
        case closing
        case closed
    }

    struct Flags: OptionSet {
        let rawValue: UInt8
        static let client = Flags(rawValue: 1 << 0)
        /// The connection reached `open` (the handler hears its close).
        static let didOpen = Flags(rawValue: 1 << 1)
        /// The peer's close frame arrived.
        static let closeReceived = Flags(rawValue: 1 << 2)
        /// A fragmented message is being sent: only continuation (and control) frames may follow.
        static let sendingFragments = Flags(rawValue: 1 << 3)
        /// A graceful shutdown started while the handshake was under way.
        static let shutdownPending = Flags(rawValue: 1 << 4)
        /// A keepalive ping is out and no byte has arrived since.
        static let pingSent = Flags(rawValue: 1 << 5)
        /// A negotiated extension sees every message sent.
        static let extended = Flags(rawValue: 1 << 6)
        /// What sends other than whole plain messages must go through ``admit(_:fin:payloadCount:)`` for.
        static let slowSend: Flags = [.sendingFragments, .extended]
    }

    private(set) var phase: Phase = .handshake
    private(set) var flags: Flags

    init(isClient: Bool) {
        self.flags = isClient ? .client : []
    }

    var isClient: Bool { self.flags.contains(.client) }
    var isOpen: Bool { self.phase == .open }
    var didOpen: Bool { self.flags.contains(.didOpen) }
    var closeReceived: Bool { self.flags.contains(.closeReceived) }

    /// What the connection does next.
    enum Action: Equatable {
        case none
        /// Become open: tell the application; with `thenClose`, start closing at once (a shutdown began
        /// during the handshake).
        case open(thenClose: Bool)
        /// Server: refuse the upgrade with this HTTP status (a shutdown began during the handshake).
        case refuse(status: Int)
        /// Send a close frame (`code` nil: an empty one) and wait for the peer's, up to the close timeout.
        case sendClose(CloseCode?, reason: String)
        /// Send a close frame (nil: empty), then end TCP from this side once it is written: a server
        /// after both close frames, or either side failing the connection.
        case sendCloseAndEnd(CloseCode?, reason: String)
        /// Reply to the peer's close with `code` (nil: an empty close), then wait for the server to end TCP
        /// (a client, up to the close timeout).
        case sendCloseAndAwaitEnd(CloseCode?)
        /// End TCP from this side once what is queued is written (our close was answered; server).
        case end
        /// Our close was answered; wait for the server to end TCP (client).
        case awaitEnd
        /// Close TCP now.
        case closeTCP
        /// Client: the handshake cannot succeed (`timedOut`: it took too long).
        case failHandshake(timedOut: Bool)
        /// Send a keepalive ping.
        case ping
        /// Tell the application the connection closed (after it had opened).
        case reportClose
    }

    // MARK: Handshake

    /// The upgrade succeeded (server: the request passed; client: the 101 checked out).
    mutating func handshakeSucceeded() -> Action {
        guard self.phase == .handshake else { return .none }
        if self.flags.contains(.shutdownPending) && !self.isClient {
            self.phase = .httpResponse
            return .refuse(status: 503)
        }
        self.phase = .open
        self.flags.insert(.didOpen)
        return .open(thenClose: self.flags.contains(.shutdownPending))
    }

    /// Server: the request is answered with a plain HTTP response, after which the connection ends.
    mutating func respondedWithHTTP() -> Action {
        guard self.phase == .handshake else { return .none }
        self.phase = .httpResponse
        return .none
    }

    // MARK: Closing

    /// The application (or the server's shutdown) asks to close.
    mutating func closeRequested(_ code: CloseCode, reason: String) -> Action {
        switch self.phase {
        case .open:
            self.phase = .closeSent
            return .sendClose(code, reason: reason)
        case .handshake, .httpResponse:
            self.phase = .closing
            return .closeTCP
        case .closeSent, .closing, .closed:
            return .none  // Closing already: the first close decides.
        }
    }

    /// A graceful shutdown reaches this connection: open ones close with 1001, ones still in the
    /// handshake are marked (a server then answers 503, a client closes as soon as it opens).
    mutating func shutdownRequested(_ code: CloseCode = .goingAway, reason: String = "") -> Action {
        switch self.phase {
        case .open:
            return self.closeRequested(code, reason: reason)
        case .handshake:
            self.flags.insert(.shutdownPending)
            return .none
        case .httpResponse, .closeSent, .closing, .closed:
            return .none
        }
    }

    /// RFC 6455 §5.5.1: the peer's close frame (already validated by the parser).
    mutating func receivedClose(_ code: CloseCode) -> Action {
        switch self.phase {
        case .open:
            // The peer started closing: answer with its code (none if it sent none), then finish.
            self.flags.insert(.closeReceived)
            self.phase = .closing
            let echo: CloseCode? = code == .noStatusReceived ? nil : code
            return self.isClient ? .sendCloseAndAwaitEnd(echo) : .sendCloseAndEnd(echo, reason: "")
        case .closeSent:
            self.flags.insert(.closeReceived)
            self.phase = .closing
            return self.isClient ? .awaitEnd : .end
        case .handshake, .httpResponse, .closing, .closed:
            return .none  // A second close, or one after we failed the connection: nothing more to say.
        }
    }

    /// RFC 6455 §7.1.7: the peer broke the protocol (or a limit); fail the connection with `code`.
    mutating func protocolViolation(_ code: CloseCode, reason: String) -> Action {
        switch self.phase {
        case .open:
            self.phase = .closing
            return .sendCloseAndEnd(code, reason: reason)
        case .closeSent:
            self.phase = .closing
            return .end  // Our close frame is out already; only one may be sent.
        case .handshake, .httpResponse, .closing, .closed:
            return .none
        }
    }

    // MARK: Transport

    /// The peer half-closed TCP.
    mutating func peerEnded() -> Action {
        switch self.phase {
        case .handshake:
            self.phase = .closing
            return self.isClient ? .failHandshake(timedOut: false) : .closeTCP
        case .open, .closeSent, .httpResponse, .closing:
            self.phase = .closing
            return .closeTCP
        case .closed:
            return .none
        }
    }

    /// The connection's deadline (handshake or close timeout) passed.
    mutating func deadlinePassed() -> Action {
        switch self.phase {
        case .handshake:
            self.phase = .closing
            return self.isClient ? .failHandshake(timedOut: true) : .closeTCP
        case .httpResponse, .closeSent, .closing:
            self.phase = .closing
            return .closeTCP
        case .open, .closed:
            return .none  // A stale deadline: open connections have none.
        }
    }

    /// TCP is closed (by either side, for any reason).
    mutating func transportClosed() -> Action {
        guard self.phase != .closed else { return .none }
        self.phase = .closed
        return self.didOpen ? .reportClose : .none
    }

    // MARK: Data

    /// Whether a data message that just arrived goes to the application: only while open. After our close
    /// frame the peer may still send (RFC 6455 §5.5.1); those messages are read and dropped.
    var deliversMessages: Bool { self.phase == .open }

    /// Whether parsing goes on after a frame: while open or waiting for the peer's close.
    var keepsReading: Bool { self.phase == .open || self.phase == .closeSent }

    /// Why a frame may not be sent now, or `nil` when it may: only while open, and in sequence (a
    /// continuation only inside a fragmented message, a new message only outside one, control frames
    /// whole and at most 125 bytes, close only through ``closeRequested(_:reason:)``).
    mutating func admit(_ opcode: Opcode, fin: Bool, payloadCount: Int) -> SendResult? {
        guard self.phase == .open else { return .notOpen }
        switch opcode.rawValue {
        case Opcode.text.rawValue, Opcode.binary.rawValue:
            if self.flags.contains(.sendingFragments) { return .invalid }
            if !fin { self.flags.insert(.sendingFragments) }
        case Opcode.continuation.rawValue:
            if !self.flags.contains(.sendingFragments) { return .invalid }
            if fin { self.flags.remove(.sendingFragments) }
        case Opcode.ping.rawValue, Opcode.pong.rawValue:
            if !fin || payloadCount > 125 { return .invalid }
        default:
            return .invalid  // close (use close(code:)) and the reserved opcodes
        }
        return nil
    }

    // MARK: Keepalive

    /// A keepalive tick found the connection silent for `silentTicks` ticks: ping at `pingAfter`, close
    /// (1001) at `closeAfter` (0: off).
    mutating func silent(for silentTicks: Int, pingAfter: Int, closeAfter: Int) -> Action {
        guard self.phase == .open else { return .none }
        if closeAfter > 0 && silentTicks >= closeAfter {
            return self.closeRequested(.goingAway, reason: "idle timeout")
        }
        if pingAfter > 0 && silentTicks >= pingAfter && !self.flags.contains(.pingSent) {
            self.flags.insert(.pingSent)
            return .ping
        }
        return .none
    }

    /// Bytes arrived: the connection is not silent.
    mutating func heardFromPeer() { self.flags.remove(.pingSent) }

    /// A fragmented message of this side's is under way: no other data frame may go out before its end.
    var isSendingFragments: Bool { self.flags.contains(.sendingFragments) }

    /// An extension was negotiated: every message it sends goes through it.
    mutating func extensionNegotiated() { self.flags.insert(.extended) }

    /// Whether a whole text or binary message can be framed at once: open, no fragmented message under
    /// way, no extension to consult. One comparison and one test.
    @inline(__always)
    var sendsPlainMessages: Bool { self.phase == .open && self.flags.isDisjoint(with: .slowSend) }
}
