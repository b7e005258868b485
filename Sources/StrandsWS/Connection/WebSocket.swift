/// One WebSocket connection, server or client side. Loop-confined: use it on ``loop`` only (or through
/// ``sender`` from other threads).
///
/// Lifetime: made when a server accepts or a client connects; it owns its ``TCPStream`` and is the
/// stream's delegate, so the two keep each other alive until the stream's close callback, where the
/// handler hears ``WebSocketHandler/webSocket(_:didCloseWith:reason:)`` and both are let go.
public final class WebSocket: TCPStreamDelegate {
    public enum Role: Sendable { case server, client }

    enum Phase: UInt8 {
        /// Server: reading the upgrade request. Client: waiting for the 101.
        case handshake
        /// Server: a plain HTTP response is out; waiting for the peer to close.
        case httpResponse
        case open
        /// A close frame went out; waiting for the peer's.
        case closeSent
        /// Both close frames are through (or the connection failed); waiting for TCP to end.
        case closing
        case closed
    }

    // Stored properties in the order a message uses them: with thousands of connections each one is
    // met cold, and every cache line it spans costs a miss.
    /// Eight bytes of application state kept inline in the connection: an index into the application's
    /// own table of per-connection records, say, which spares an object (and a cache miss) per message.
    ///
    /// Unchecked within this module. Swift still checks an access compiled in another module (an
    /// application's read of it per message, say) dynamically, about 80 instructions each, unless that
    /// module is built with `-enforce-exclusivity=unchecked`, as perftest is.
    @exclusivity(unchecked) public var userData: UInt64 = 0
    var phase: Phase = .handshake
    public let role: Role
    let stream: TCPStream
    let handler: any WebSocketHandler
    let shared: WebSocketLoopContext
    let registry: ConnectionRegistry
    /// The registry's counters, held here too: one load per message instead of two.
    let counters: WebSocketCounters
    /// Unchecked: parsing never re-enters the parser (the handler may close the connection, but the
    /// parser is released only in the stream's close callback, a later loop turn).
    @exclusivity(unchecked) var parser: FrameParser
    public let loop: Loop
    /// The one setting needed after the handshake; the configuration itself is not kept per connection.
    let closeTimeout: Duration
    /// The slot in the registry of open connections (-1: not open).
    var registryIndex = -1
    /// The HTTP head being read; exists only during the handshake.
    var head: HTTPHeadReader?
    /// Client only: what the handshake must answer.
    var pendingClient: ClientHandshake?
    /// Deadline in loop milliseconds and the slot in the loop's deadline list (-1: none).
    var deadline: UInt64 = 0
    var timedIndex = -1
    /// What the handler will hear when TCP ends.
    var closeCode: CloseCode = .abnormalClosure
    var closeReason = ""
    var closeReceived = false
    /// Half-close TCP once the cork of the current read is flushed.
    var halfCloseAfterCork = false
    var didOpen = false

    /// The application's per-connection state; Strands never touches it.
    public var context: AnyObject?
    /// The subprotocol agreed in the handshake, if any.
    public internal(set) var subprotocol: String?

    init(stream: TCPStream, role: Role, handler: any WebSocketHandler, configuration: WebSocketConfiguration,
         registry: ConnectionRegistry?) {
        self.loop = stream.loop
        self.role = role
        self.stream = stream
        self.handler = handler
        self.closeTimeout = configuration.closeTimeout
        self.shared = WebSocketLoopContext.on(stream.loop)
        self.registry = registry ?? self.shared.clients
        self.counters = self.registry.counters
        self.parser = FrameParser(expectMasked: role == .server, maxMessageSize: configuration.maxMessageSize)
        stream.highWaterMark = configuration.highWaterMark
        stream.lowWaterMark = configuration.lowWaterMark
        stream.delegate = self
    }

    // MARK: State

    /// True from the handshake's success until a close frame is sent or received.
    public var isOpen: Bool { self.phase == .open }
    /// True once TCP is closed.
    public var isClosed: Bool { self.phase == .closed }
    /// The peer's address.
    public var remoteAddress: SocketAddress? { self.stream.remoteAddress }
    /// Bytes sent but not yet taken by the kernel. Reading pauses above the configured high-water mark.
    public var pendingWriteBytes: Int { self.stream.pendingWriteBytes }

    /// Stops reading from the peer (TCP flow control then slows it down).
    public func pauseReading() { self.stream.stopReading() }
    /// Resumes reading after ``pauseReading()``.
    public func resumeReading() { if self.phase != .closed { self.stream.startReading() } }

    // MARK: TCPStreamDelegate

    public func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) {
        switch self.phase {
        case .handshake:
            self.readHandshake(UnsafeRawBufferPointer(bytes))
        case .open, .closeSent:
            self.readFrames(bytes)
        case .httpResponse, .closing, .closed:
            break  // Whatever the peer still sends is of no use now.
        }
    }

    public func streamDidReachEOF(_ stream: TCPStream) {
        switch self.phase {
        case .handshake where self.role == .client:
            self.failClientHandshake(.handshakeFailed("server closed the connection during the handshake"))
            return
        case .open, .closeSent:
            self.counters.countError()  // TCP ended without a close frame: 1006.
        default:
            break
        }
        stream.close()
    }

    public func streamDidDrain(_ stream: TCPStream) {
        if self.phase == .open { self.handler.webSocketDidDrain(self) }
    }

    public func stream(_ stream: TCPStream, didCloseWith error: UVError?) {
        let wasOpen = self.didOpen
        self.phase = .closed
        self.shared.clearDeadline(self)
        self.parser.release()
        self.head?.release()
        self.head = nil
        if error != nil && error != .cancelled && !self.closeReceived && self.closeCode == .abnormalClosure {
            self.counters.countError()
        }
        if let pending = self.pendingClient {
            self.pendingClient = nil
            pending.completion(.failure(.handshakeFailed(error.map { "\($0)" } ?? "connection closed during the handshake")))
        }
        if wasOpen {
            self.registry.remove(self)
            self.handler.webSocket(self, didCloseWith: self.closeCode, reason: self.closeReason)
        }
        self.context = nil
    }

    /// This connection's address: what the loop's cork compares its owner with.
    @inline(__always) var identity: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    // MARK: Frames in

    func readFrames(_ bytes: UnsafeMutableRawBufferPointer) {
        // Cork: every frame this read provokes (echoes, pongs, a close) leaves in one write.
        let shared = self.shared
        shared.corkOwner = self.identity
        var sink = Sink(socket: Unmanaged.passUnretained(self))
        let wasOpen = self.phase == .open
        let result = self.parser.parse(bytes, into: &sink)
        if wasOpen { self.handler.webSocketDidFinishRead(self) }
        if case .failed(let code, let reason) = result {
            self.fail(code, reason)  // Its close frame joins the cork, behind the replies before it.
        }
        shared.corkOwner = nil
        self.flushCorkNow()
        if self.halfCloseAfterCork { self.stream.shutdownWrite() }
    }

    /// Bridges the parser's callbacks to the connection without an allocation per call.
    ///
    /// The connection outlives the parse (the stream's read callback holds it), so the sink holds it
    /// unretained and reaches it at +0: no retain and release per message.
    struct Sink: FrameParserSink {
        let socket: Unmanaged<WebSocket>

        mutating func parser(didReceiveMessage opcode: Opcode, payload: UnsafeMutableRawBufferPointer) -> Bool {
            self.socket._withUnsafeGuaranteedRef { socket in
                guard socket.phase == .open else { return socket.phase == .closeSent }
                socket.counters.countReceived()
                socket.handler.webSocket(socket, didReceive: WebSocketMessage(opcode: opcode, bytes: UnsafeRawBufferPointer(payload)))
                return socket.phase == .open || socket.phase == .closeSent
            }
        }

        mutating func parser(didReceiveControl opcode: Opcode, payload: UnsafeMutableRawBufferPointer) -> Bool {
            let socket = self.socket.takeUnretainedValue()
            switch opcode {
            case .ping:
                if socket.phase == .open { socket.writeFrame(.pong, UnsafeRawBufferPointer(payload)) }
                return true
            case .pong:
                if socket.phase == .open { socket.handler.webSocket(socket, didReceivePong: UnsafeRawBufferPointer(payload)) }
                return true
            default:
                socket.receivedClose(UnsafeRawBufferPointer(payload))
                return false
            }
        }
    }

    // MARK: Deadlines

    func deadlinePassed() {
        switch self.phase {
        case .handshake:
            self.counters.countError()
            if self.role == .client {
                let limit = self.pendingClient?.handshakeTimeout ?? .zero
                self.failClientHandshake(.timedOut("no handshake response within \(limit)"))
            } else {
                self.stream.close()  // A silent or slow client gets no answer: it has not earned one.
            }
        case .httpResponse, .closeSent, .closing:
            self.stream.close()
        case .open, .closed:
            break
        }
    }
}

@available(*, unavailable)
extension WebSocket: Sendable {}
