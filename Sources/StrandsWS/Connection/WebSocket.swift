/// One WebSocket connection, server or client side. Loop-confined: use it on ``loop`` only (or through
/// ``sender`` from other threads).
///
/// Lifetime: made when a server accepts or a client connects. The connection is its own transport (it
/// extends StrandsLoop's `TCPConnection`), so one object holds the socket, the protocol state and the
/// application's inline state; the loop keeps it alive until TCP is closed, where the handler hears
/// ``WebSocketHandler/webSocket(_:didCloseWith:reason:)``.
///
/// Memory: an idle open connection is this object (104 bytes, pinned by a test) and libuv's `uv_tcp_t`
/// (248 bytes). The handshake, the close bookkeeping, a subprotocol or an extension live in a side
/// allocation made only while needed, a frame that spans reads in another, and unsent bytes in a third.
public final class WebSocket: TCPConnection {
    public enum Role: Sendable { case server, client }

    // Stored properties in the order a message uses them; the small ones first, where they share the
    // transport's last word. All are loop-confined and never accessed in overlapping ways (a handler may
    // close the connection from inside a parse, which changes `state`, but no access to it is open
    // across that call): Swift's dynamic exclusivity checks, about 200 instructions per access on every
    // message, buy nothing here.
    /// The lifecycle (two bytes); see ``ConnectionState``.
    @exclusivity(unchecked) var state: ConnectionState
    /// Keepalive ticks since the last read; reset by every read.
    @exclusivity(unchecked) var silentTicks: UInt8 = 0
    /// The reserved bits the negotiated extension owns (0x70; 0: none), and in the low bits how a
    /// stateless permessage-deflate connection compresses (see ``DeflateBits``).
    @exclusivity(unchecked) var extensionBits: UInt8 = 0
    /// The slot in the registry's list.
    @exclusivity(unchecked) var registryIndex: Int32 = -1
    /// Eight bytes of application state kept inline in the connection: an index into the application's
    /// own table of per-connection records, say, which spares an object (and a cache miss) per message.
    ///
    /// Unchecked within this module. Swift still checks an access compiled in another module (an
    /// application's read of it per message, say) dynamically, about 80 instructions each, unless that
    /// module is built with `-enforce-exclusivity=unchecked`, as perftest is.
    @exclusivity(unchecked) public var userData: UInt64 = 0
    /// The handler, the limits, the counters and the loop's context this connection shares with its
    /// server's other connections on this loop.
    let registry: ConnectionRegistry
    /// The application's per-connection state; Strands never touches it.
    public var context: AnyObject?
    /// The handshake, close bookkeeping, subprotocol and extension, while any is needed.
    @exclusivity(unchecked) var cold: ColdState?
    /// A frame or message that spans reads. Unchecked: parsing never re-enters the parser (the handler
    /// may close the connection, but the state is released only in the close callback, a later turn).
    @exclusivity(unchecked) var parserState: FrameParserState?

    init(loop: Loop, role: Role, registry: ConnectionRegistry) throws(UVError) {
        self.state = ConnectionState(isClient: role == .client)
        self.registry = registry
        try super.init(loop: loop, events: WebSocket.table)
        self.highWater = UInt32(clamping: registry.configuration.highWaterMark)
        self.lowWater = UInt32(clamping: registry.configuration.lowWaterMark)
    }

    /// The side state, made if missing.
    var coldState: ColdState {
        if let cold = self.cold { return cold }
        let made = ColdState()
        self.cold = made
        return made
    }

    /// Drops the side state when nothing in it is needed any more.
    func trimCold() {
        if let cold = self.cold, cold.isDisposable { self.cold = nil }
    }

    /// This connection's address, what the loop's cork records as its owner.
    @inline(__always) var address: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }
    /// Frames up to this size join the cork; a server writes larger ones from where they lie.
    @inline(__always) static var corkedFrameLimit: Int { 16 * 1024 }

    var handler: any WebSocketHandler { self.registry.handler }
    var shared: WebSocketLoopContext { self.registry.context }

    // MARK: State

    /// Whether this side accepted (server) or opened (client) the connection.
    public var role: Role { self.state.isClient ? .client : .server }
    /// True from the handshake's success until a close frame is sent or received.
    public var isOpen: Bool { self.state.isOpen }
    /// True once TCP is closed.
    public var isClosed: Bool { self.state.phase == .closed }
    /// The peer's address.
    public var remoteAddress: SocketAddress? { self.tcpRemoteAddress }
    /// The bytes this connection has sent (and the peer acknowledged) and received at the TCP level,
    /// the HTTP handshake and frame headers included, as the kernel counts them: what compression
    /// saves shows here. `nil` once closing.
    public var wireByteCounts: (sent: UInt64, received: UInt64)? { self.tcpByteCounts }
    /// The subprotocol agreed in the handshake, if any.
    public var subprotocol: String? { self.cold?.subprotocol }

    /// Stops reading from the peer (TCP flow control then slows it down). Keepalive still runs: a
    /// connection paused longer than the idle timeout is closed as idle.
    public func pauseReading() { self.tcpStopReading() }
    /// Resumes reading after ``pauseReading()``.
    public func resumeReading() { if self.state.phase != .closed { self.tcpStartReading() } }

    // MARK: Transport events

    // Made once, never changed, holds no state: safe to read from every loop.
    nonisolated(unsafe) private static let table = TCPConnectionEvents.make(
        didRead: { connection, bytes in unsafeDowncast(connection, to: WebSocket.self).didRead(bytes) },
        didReachEOF: { connection in
            let socket = unsafeDowncast(connection, to: WebSocket.self)
            if socket.state.keepsReading { socket.noteError(.transport, "TCP ended without a close frame") }  // TCP ended without a close frame: 1006.
            socket.perform(socket.state.peerEnded())
        },
        didDrain: { connection in
            let socket = unsafeDowncast(connection, to: WebSocket.self)
            if socket.state.isOpen { socket.handler.webSocketDidDrain(socket) }
        },
        didClose: { connection, error in unsafeDowncast(connection, to: WebSocket.self).didClose(error) }
    )

    /// One read, corked by the transport: every frame it provokes (echoes, pongs, a close) leaves in one write.
    @inline(__always)
    private func didRead(_ bytes: UnsafeMutableRawBufferPointer) {
        self.silentTicks = 0
        switch self.state.phase {
        case .open, .closeSent:
            if self.state.flags.contains(.pingSent) { self.state.heardFromPeer() }
            self.readFrames(bytes)
        case .handshake:
            self.readHandshake(UnsafeRawBufferPointer(bytes))
        case .httpResponse, .closing, .closed:
            break  // Whatever the peer still sends is of no use now.
        }
    }

    private func didClose(_ error: UVError?) {
        let action = self.state.transportClosed()
        self.shared.clearDeadline(self)
        self.parserState = nil
        let cold = self.cold
        self.cold = nil
        cold?.negotiated?.release()
        cold?.deflate?.release()
        if let subscriptions = cold?.subscriptions, !subscriptions.isEmpty { self.registry.topics?.dropAll(subscriptions) }
        let closeCode = cold?.closeCode ?? .abnormalClosure
        if error != nil && error != .cancelled && !self.state.closeReceived && closeCode == .abnormalClosure
            && cold?.errorCounted != true {
            self.noteError(.transport, "TCP failed: \(error.map { "\($0)" } ?? "closed")")
        }
        if let pending = cold?.pendingClient {
            pending.completion(.failure(.handshakeFailed(error.map { "\($0)" } ?? "connection closed during the handshake")))
        }
        if self.state.didOpen { self.registry.countClosed() }
        self.registry.remove(self)
        if action == .reportClose {
            self.handler.webSocket(self, didCloseWith: closeCode, reason: cold?.closeReason ?? "")
        }
        self.context = nil
    }

    // MARK: Frames in

    func readFrames(_ bytes: UnsafeMutableRawBufferPointer) {
        var sink = Sink(socket: Unmanaged.passUnretained(self))
        let wasOpen = self.state.isOpen
        let result = FrameParser.parse(bytes, expectMasked: !self.state.isClient, maxMessageSize: self.registry.maxMessageSize,
                                       allowedRSV: self.extensionBits & 0x70, state: &self.parserState, into: &sink)
        if wasOpen {
            Unmanaged.passUnretained(self.registry)._withUnsafeGuaranteedRef { $0.handler.webSocketDidFinishRead(self) }
        }
        if case .failed(let code, let reason) = result {
            self.fail(code, reason)  // Its close frame joins the cork, behind the replies before it.
        }
    }

    /// Bridges the parser's callbacks to the connection without an allocation per call.
    ///
    /// The connection outlives the parse (the transport's read callback holds it), so the sink holds it
    /// unretained and reaches it at +0: no retain and release per message.
    struct Sink: FrameParserSink {
        let socket: Unmanaged<WebSocket>

        mutating func parser(didReceiveMessage opcode: Opcode, payload: UnsafeMutableRawBufferPointer) -> Bool {
            self.socket._withUnsafeGuaranteedRef { socket in
                guard socket.state.deliversMessages else { return socket.state.keepsReading }
                // The registry at +0 too (the connection holds it): through a reference loaded from it, the
                // handler would be retained and released around every message.
                Unmanaged.passUnretained(socket.registry)._withUnsafeGuaranteedRef { registry in
                    registry.countReceived()
                    registry.handler.webSocket(socket, didReceive: WebSocketMessage(opcode: opcode, bytes: UnsafeRawBufferPointer(payload)))
                }
                return socket.state.keepsReading
            }
        }

        mutating func parser(didReceiveMessage opcode: Opcode, rsv: UInt8, payload: UnsafeMutableRawBufferPointer) -> Bool {
            self.socket._withUnsafeGuaranteedRef { socket in socket.receiveExtended(opcode, rsv: rsv, payload) }
        }

        mutating func parser(didReceiveControl opcode: Opcode, payload: UnsafeMutableRawBufferPointer) -> Bool {
            let socket = self.socket.takeUnretainedValue()
            switch opcode {
            case .ping:
                if socket.state.isOpen { socket.writeControl(.pong, UnsafeRawBufferPointer(payload)) }
                return true
            case .pong:
                if socket.state.isOpen { socket.handler.webSocket(socket, didReceivePong: UnsafeRawBufferPointer(payload)) }
                return true
            default:
                socket.receivedClose(UnsafeRawBufferPointer(payload))
                return false
            }
        }
    }

    /// A message whose first frame carried the negotiated extension's bits: decoded by it, then
    /// delivered like any other (text checked for UTF-8 after decoding).
    @inline(never)
    func receiveExtended(_ opcode: Opcode, rsv: UInt8, _ payload: UnsafeMutableRawBufferPointer) -> Bool {
        guard self.state.deliversMessages else { return self.state.keepsReading }
        if self.usesDeflate { return self.receiveDeflated(opcode, payload) }
        guard let negotiated = self.cold?.negotiated else {
            self.fail(.protocolError, "reserved bits set without a negotiated extension")
            return false
        }
        var invalidText = false
        let failure = negotiated.decode(payload, opcode: opcode, rsv: rsv) { decoded in
            if opcode == .text && !UTF8Validator.isValid(decoded) {
                invalidText = true
                return
            }
            self.registry.countReceived()
            self.handler.webSocket(self, didReceive: WebSocketMessage(opcode: opcode, bytes: decoded))
        }
        if let failure {
            self.fail(failure.code, failure.reason)
            return false
        }
        if invalidText {
            self.fail(.invalidPayload, "text message is not valid UTF-8")
            return false
        }
        return self.state.keepsReading
    }

    // MARK: Deadlines and keepalive

    func deadlinePassed() {
        let action = self.state.deadlinePassed()
        if action == .closeTCP && self.cold?.head != nil {
            self.noteError(.timeout, "handshake timed out")  // A server's silent or slow client: it gets no answer.
        }
        self.perform(action)
    }

    func keepaliveTick(pingAfter: Int, closeAfter: Int) {
        guard self.state.isOpen else { return }
        if self.silentTicks < .max { self.silentTicks += 1 }
        self.perform(self.state.silent(for: Int(self.silentTicks), pingAfter: pingAfter, closeAfter: closeAfter))
    }

    func shutdownRequested() {
        let (code, reason) = self.registry.shutdownClose
        self.perform(self.state.shutdownRequested(code, reason: reason))
    }
}

