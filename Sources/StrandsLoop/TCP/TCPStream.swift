import CUV

/// A TCP connection on one loop (`uv_tcp_t`). Loop-confined.
///
/// Lifetime: `init` allocates the handle and retains the stream through `handle.data`, so a stream lives
/// as long as its connection whether or not anyone else holds it. ``close()`` calls `uv_close`; the close
/// callback frees the handle, the write buffers and the requests, tells the delegate, then releases the
/// stream. After that every call is a no-op or throws ``UVError/notConnected``.
///
/// Reading is off until ``startReading()``: set the ``delegate`` first.
public final class TCPStream: LoopHandleOwner {
    // Stored properties in the order a read and a write use them, so that both touch one cache line of
    // a stream met cold (with thousands of connections, every line is a miss): delegate, handle, flags,
    // and the queue's `queued` buffer, whose emptiness lets a write go straight to the socket.

    /// Receives reads, drain, EOF and close. Held strongly until the stream closes.
    ///
    /// This and the state below are loop-confined and never accessed in overlapping ways (a read or a
    /// write completes before anything else touches them), so they skip Swift's dynamic exclusivity
    /// checks, which would otherwise be paid on every read and write.
    @exclusivity(unchecked) public var delegate: (any TCPStreamDelegate)?
    let handle: UnsafeMutablePointer<uv_tcp_t>
    @exclusivity(unchecked) var flags: Flags = []
    @exclusivity(unchecked) var writes = WriteQueue()
    public let loop: Loop

    /// Pending write bytes above which reading pauses, so a peer that sends without reading what it is sent
    /// cannot make this side buffer without bound. 1 MiB: a few hundred round trips of typical messages.
    public var highWaterMark: Int = 1 << 20
    /// Pending write bytes at or below which reading resumes after a pause.
    public var lowWaterMark: Int = 1 << 18

    var closeError: UVError?
    /// How many times reading was paused because pending writes passed ``highWaterMark``.
    public internal(set) var backpressurePauses = 0

    struct Flags: OptionSet {
        let rawValue: UInt8
        static let wantsRead = Flags(rawValue: 1 << 0)
        static let reading = Flags(rawValue: 1 << 1)
        static let backpressured = Flags(rawValue: 1 << 2)
        static let eof = Flags(rawValue: 1 << 3)
        static let closing = Flags(rawValue: 1 << 4)
        static let closed = Flags(rawValue: 1 << 5)
        static let shutdownRequested = Flags(rawValue: 1 << 6)
        static let writing = Flags(rawValue: 1 << 7)
    }

    init(loop: Loop) throws(UVError) {
        self.loop = loop
        self.handle = TCPStream.allocateHandle()
        // A loop that is shutting down takes no new handles, or run() could not finish.
        let rc = loop.isShuttingDown ? UV_ECANCELED.rawValue : uv_tcp_init(loop.uvLoop, self.handle)
        if rc < 0 {
            self.handle.deallocate()
            self.flags = [.closing, .closed]
            throw UVError(code: rc, context: "uv_tcp_init")
        }
        self.handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
    }

    var stream: UnsafeMutablePointer<uv_stream_t> { cuv_tcp_as_stream(self.handle) }

    /// A `uv_tcp_t` on a cache-line boundary. libuv reads and writes a stream through fields spread over
    /// its 248 bytes (`data` and `type`; `flags` to `connect_req`; the I/O watcher): aligned, they sit
    /// in three lines; at malloc's 16-byte alignment they straddle four. With thousands of connections
    /// each line is a cache miss per message.
    static func allocateHandle() -> UnsafeMutablePointer<uv_tcp_t> {
        UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<uv_tcp_t>.size, alignment: 64)
            .bindMemory(to: uv_tcp_t.self, capacity: 1)
    }

    // MARK: State

    /// True once ``close()`` was called or the connection failed; the close callback may still be pending.
    public var isClosing: Bool { self.flags.contains(.closing) }
    /// True once the handle is freed.
    public var isClosed: Bool { self.flags.contains(.closed) }
    /// True while reads are delivered (wanted, not paused by backpressure, not at EOF, not closing).
    public var isReading: Bool { self.flags.contains(.reading) }
    /// True while reading is paused because too many write bytes are pending.
    public var isPausedByBackpressure: Bool { self.flags.contains(.backpressured) }

    /// The address of the peer (`uv_tcp_getpeername`), or `nil` once closed.
    public var remoteAddress: SocketAddress? {
        guard !self.isClosing else { return nil }
        return Self.address(of: self.handle, peer: true)
    }

    /// The local address (`uv_tcp_getsockname`), or `nil` once closed.
    public var localAddress: SocketAddress? {
        guard !self.isClosing else { return nil }
        return Self.address(of: self.handle, peer: false)
    }

    static func address(of handle: UnsafeMutablePointer<uv_tcp_t>, peer: Bool) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        return withUnsafeMutableBytes(of: &storage) { raw -> SocketAddress? in
            let address = raw.baseAddress!.assumingMemoryBound(to: sockaddr.self)
            let rc = peer ? uv_tcp_getpeername(handle, address, &length) : uv_tcp_getsockname(handle, address, &length)
            return rc == 0 ? SocketAddress(address) : nil
        }
    }

    /// Turns Nagle's algorithm off (the default for every stream Strands creates) or on. Wraps `uv_tcp_nodelay`.
    public func setNoDelay(_ on: Bool) {
        guard !self.isClosing else { return }
        uv_tcp_nodelay(self.handle, on ? 1 : 0)
    }

    // MARK: Reading

    /// Starts delivering reads to the delegate (unless paused by backpressure). Wraps `uv_read_start`.
    public func startReading() {
        self.loop.assertInLoop()
        self.flags.insert(.wantsRead)
        self.updateReading()
    }

    /// Stops delivering reads; the kernel buffers, then the peer's sends block (TCP flow control).
    /// Wraps `uv_read_stop`.
    public func stopReading() {
        self.loop.assertInLoop()
        self.flags.remove(.wantsRead)
        self.updateReading()
    }

    func updateReading() {
        let want = self.flags.contains(.wantsRead)
            && self.flags.isDisjoint(with: [.backpressured, .eof, .closing])
        guard want != self.flags.contains(.reading) else { return }
        if want {
            let rc = uv_read_start(self.stream, TCPStream.onAlloc, TCPStream.onRead)
            if rc < 0 {
                self.close(error: UVError(code: rc, context: "uv_read_start"))
                return
            }
            self.flags.insert(.reading)
        } else {
            uv_read_stop(self.stream)
            self.flags.remove(.reading)
        }
    }

    /// Every read on a loop lands in that loop's one buffer: libuv consumes each read before the next alloc.
    private static let onAlloc: uv_alloc_cb = { handle, _, buffer in
        // The loop outlives its handles: reach it at +0.
        Unmanaged<Loop>.fromOpaque(handle!.pointee.loop.pointee.data!)._withUnsafeGuaranteedRef { loop in
            buffer!.pointee = uv_buf_t(
                base: loop.readBuffer.baseAddress!.assumingMemoryBound(to: CChar.self),
                len: loop.readBuffer.count
            )
        }
    }

    private static let onRead: uv_read_cb = { stream, nread, buffer in
        // `handle.data` holds the stream until the close callback: reach it at +0, no retain per read.
        let tcp = UnsafeMutableRawPointer(stream!).assumingMemoryBound(to: uv_tcp_t.self)
        Unmanaged<TCPStream>.fromOpaque(tcp.pointee.data!)._withUnsafeGuaranteedRef { self_ in
            if nread > 0 {
                self_.delegate?.stream(self_, didRead: UnsafeMutableRawBufferPointer(start: buffer!.pointee.base, count: nread))
            } else if nread == Int(UV_EOF.rawValue) {
                self_.flags.insert(.eof)
                self_.updateReading()
                if let delegate = self_.delegate { delegate.streamDidReachEOF(self_) } else { self_.close() }
            } else if nread < 0 {
                self_.close(error: UVError(code: Int32(nread), context: "read"))
            }
            // nread == 0 is EAGAIN: nothing to do.
        }
    }

    // MARK: Closing

    /// Closes the connection. Pending writes are dropped; call ``shutdownWrite()`` first and wait for
    /// ``TCPStreamDelegate/streamDidDrain(_:)`` to send them. Wraps `uv_close`.
    public func close() {
        self.close(error: nil)
    }

    /// Closes because of `error` (`nil` for a local close), which the delegate will see.
    func close(error: UVError?) {
        guard !self.isClosing else { return }
        self.flags.insert(.closing)
        self.flags.remove(.reading)
        self.closeError = error
        uv_close(cuv_tcp_as_handle(self.handle)) { handle in
            let stream = Unmanaged<TCPStream>.fromOpaque(handle!.pointee.data!).takeRetainedValue()
            stream.didClose()
        }
    }

    private func didClose() {
        self.flags.insert(.closed)
        self.writes.release()
        self.handle.deallocate()
        let delegate = self.delegate
        self.delegate = nil
        delegate?.stream(self, didCloseWith: self.closeError)
    }

    func closeForShutdown() { self.close(error: .cancelled.with(context: "loop shutdown")) }
}

@available(*, unavailable)
extension TCPStream: Sendable {}
