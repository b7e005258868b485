/// A TCP connection on one loop (`uv_tcp_t`) whose events go to a ``delegate``. Loop-confined.
///
/// Lifetime: made by ``TCPStream/connect(on:host:port:timeout:_:)`` or a listener's accept, which
/// retain the stream through `handle.data`, so a stream lives as long as its connection whether or not
/// anyone else holds it. ``close()`` calls `uv_close`; the close callback drops the write buffers, tells
/// the delegate, then releases the stream. After that every call is a no-op or throws
/// ``UVError/notConnected``.
///
/// Reading is off until ``startReading()``: set the ``delegate`` first. While the delegate handles a
/// read, the stream is *corked*: what it writes collects in the loop's cork buffer and leaves in one
/// write when the read callback returns (``withCork(_:)`` does the same anywhere else).
public final class TCPStream: TCPConnection {
    /// Receives reads, drain, EOF and close. Held strongly until the stream closes.
    @exclusivity(unchecked) public var delegate: (any TCPStreamDelegate)?

    init(loop: Loop) throws(UVError) {
        try super.init(loop: loop, events: TCPStream.table)
    }

    @Sendable static func make(_ loop: Loop) throws(UVError) -> TCPConnection { try TCPStream(loop: loop) }

    // Made once, never changed, holds no state: safe to read from every loop.
    nonisolated(unsafe) private static let table = TCPConnectionEvents.make(
        didRead: { connection, bytes in
            let stream = unsafeDowncast(connection, to: TCPStream.self)
            // Retained for the call: a delegate that drops itself inside `didRead` must not go mid-call.
            stream.delegate?.stream(stream, didRead: bytes)
        },
        didReachEOF: { connection in
            let stream = unsafeDowncast(connection, to: TCPStream.self)
            if let delegate = stream.delegate { delegate.streamDidReachEOF(stream) } else { stream.close() }
        },
        didDrain: { connection in
            let stream = unsafeDowncast(connection, to: TCPStream.self)
            stream.delegate?.streamDidDrain(stream)
        },
        didClose: { connection, error in
            let stream = unsafeDowncast(connection, to: TCPStream.self)
            let delegate = stream.delegate
            stream.delegate = nil
            delegate?.stream(stream, didCloseWith: error)
        }
    )

    // MARK: State

    /// Pending write bytes above which reading pauses, so a peer that sends without reading what it is sent
    /// cannot make this side buffer without bound. 1 MiB: a few hundred round trips of typical messages.
    public var highWaterMark: Int {
        get { Int(self.highWater) }
        set { self.highWater = UInt32(clamping: newValue) }
    }
    /// Pending write bytes at or below which reading resumes after a pause.
    public var lowWaterMark: Int {
        get { Int(self.lowWater) }
        set { self.lowWater = UInt32(clamping: newValue) }
    }
    /// How many times reading was paused because pending writes passed ``highWaterMark`` (saturates at 65,535).
    public var backpressurePauses: Int { Int(self.backpressurePauseCount) }

    /// True once ``close()`` was called or the connection failed; the close callback may still be pending.
    public var isClosing: Bool { self.tcpIsClosing }
    /// True once the handle is closed.
    public var isClosed: Bool { self.tcpIsClosed }
    /// True while reads are delivered (wanted, not paused by backpressure, not at EOF, not closing).
    public var isReading: Bool { self.tcpIsReading }
    /// True while reading is paused because too many write bytes are pending.
    public var isPausedByBackpressure: Bool { self.tcpIsPausedByBackpressure }
    /// The address of the peer (`uv_tcp_getpeername`), or `nil` once closed.
    public var remoteAddress: SocketAddress? { self.tcpRemoteAddress }
    /// The local address (`uv_tcp_getsockname`), or `nil` once closed.
    public var localAddress: SocketAddress? { self.tcpLocalAddress }

    /// Turns Nagle's algorithm off (the default for every stream Strands creates) or on. Wraps `uv_tcp_nodelay`.
    public func setNoDelay(_ on: Bool) { self.tcpSetNoDelay(on) }

    // MARK: Reading

    /// Starts delivering reads to the delegate (unless paused by backpressure). Wraps `uv_read_start`.
    public func startReading() { self.tcpStartReading() }

    /// Stops delivering reads; the kernel buffers, then the peer's sends block (TCP flow control).
    /// Wraps `uv_read_stop`.
    public func stopReading() { self.tcpStopReading() }

    // MARK: Writing

    /// Writes `bytes`, which are copied only if the kernel does not take them at once (or into the cork
    /// while the stream holds it).
    ///
    /// Tries `uv_try_write` first; whatever it leaves is copied into the stream's write queue and sent by one
    /// `uv_write`. Order is kept across calls. Nothing is allocated when the socket takes every byte.
    /// - Throws: ``UVError/notConnected`` after close or half-close; a socket error (which also closes the stream).
    public func write(_ bytes: UnsafeRawBufferPointer) throws(UVError) { try self.tcpWrite(bytes) }

    /// Writes `bytes`; see ``write(_:)-(UnsafeRawBufferPointer)``.
    @inline(__always)
    public func write(_ bytes: UnsafeMutableRawBufferPointer) throws(UVError) {
        try self.tcpWrite(UnsafeRawBufferPointer(bytes))
    }

    /// Writes two buffers as one (a frame header and its payload, say) with a single system call.
    public func write(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws(UVError) {
        try self.tcpWrite(first, second)
    }

    /// Writes several buffers in order with one `writev`. Buffers are lent only for the call.
    public func write(contentsOf buffers: some Collection<UnsafeRawBufferPointer>) throws(UVError) {
        try self.tcpWrite(contentsOf: buffers)
    }

    /// Writes the bytes of an array (copied only if the kernel does not take them at once).
    public func write(_ bytes: [UInt8]) throws(UVError) {
        let outcome = bytes.withUnsafeBytes { raw in Result { () throws(UVError) in try self.tcpWrite(raw) } }
        try outcome.get()
    }

    /// Runs `body` and sends everything it writes in one write (one system call for a burst). Inside
    /// another stream's read on this loop, that stream's bytes so far go out first.
    public func withCork(_ body: () -> Void) { self.tcpWithCork(body) }

    /// Half-closes: sends FIN once every pending byte is written; reading goes on. Wraps `uv_shutdown`.
    /// Later writes throw ``UVError/notConnected``.
    public func shutdownWrite() { self.tcpShutdownWrite() }

    // MARK: Closing

    /// Closes the connection. Pending writes are dropped; call ``shutdownWrite()`` first and wait for
    /// ``TCPStreamDelegate/streamDidDrain(_:)`` to send them. Wraps `uv_close`.
    public func close() { self.tcpClose(error: nil) }

    func close(error: UVError?) { self.tcpClose(error: error) }
}

