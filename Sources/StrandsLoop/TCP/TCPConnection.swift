import CUV

/// The transport half of a TCP connection on one loop: the `uv_tcp_t`, reading, writes and their queue,
/// the cork, backpressure and closing. Loop-confined.
///
/// Two kinds of connection build on it: ``TCPStream``, the public stream with a delegate, and the
/// protocol connections of higher layers (a WebSocket), which subclass it so that a connection is one
/// object, not a protocol object holding a stream object (each costs a header, a malloc chunk and a
/// pointer to the other). Its operations are `package`: an application reaches them only through what
/// the subclass chooses to expose. Events go to the subclass through a ``TCPConnectionEvents`` table.
///
/// Lifetime: `init` allocates the handle and retains the connection through `handle.data`, so a
/// connection lives as long as its handle whether or not anyone else holds it. ``tcpClose(error:)``
/// calls `uv_close`; the close callback drops the write queue, reports the close, then releases the
/// connection. The handle's memory is freed with the object (`deinit`): its `loop` field is how the
/// connection finds its loop, which saves a stored reference.
open class TCPConnection: LoopHandleOwner {
    // What a read and a write touch, first: the handle, the event table, the flags, the queue.
    package let handle: UnsafeMutablePointer<uv_tcp_t>
    package let events: UnsafePointer<TCPConnectionEvents>
    /// Loop-confined and never accessed in overlapping ways (a read or a write completes before anything
    /// else touches them), so they skip Swift's dynamic exclusivity checks, which would otherwise be paid
    /// on every read and write.
    @exclusivity(unchecked) var writes: WriteQueue?
    @exclusivity(unchecked) package var flags: TCPFlags = []
    /// How many times reading was paused because pending writes passed the high-water mark (saturating).
    @exclusivity(unchecked) package var backpressurePauseCount: UInt16 = 0
    /// Pending write bytes above which reading pauses, and at or below which it resumes.
    @exclusivity(unchecked) package var highWater: UInt32 = 1 << 20
    @exclusivity(unchecked) package var lowWater: UInt32 = 1 << 18

    package init(loop: Loop, events: UnsafePointer<TCPConnectionEvents>) throws(UVError) {
        self.events = events
        self.handle = Self.allocateHandle()
        // A loop that is shutting down takes no new handles, or run() could not finish.
        let rc = loop.isShuttingDown ? UV_ECANCELED.rawValue : uv_tcp_init(loop.uvLoop, self.handle)
        if rc < 0 {
            self.flags = [.closing, .closed]
            throw UVError(code: rc, context: "uv_tcp_init")
        }
        self.handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
    }

    deinit {
        self.handle.deallocate()
    }

    /// A `uv_tcp_t` (248 bytes) at malloc's own alignment. On a 64-byte boundary the fields libuv reads per
    /// read and write would sit in three cache lines instead of four, but `posix_memalign` leaves a
    /// fragment around each block: 10,000 idle connections measured 454 bytes each with aligned handles
    /// and 395 without (Docs/Benchmarks.md). Memory per idle connection wins.
    static func allocateHandle() -> UnsafeMutablePointer<uv_tcp_t> {
        UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<uv_tcp_t>.size, alignment: 16)
            .bindMemory(to: uv_tcp_t.self, capacity: 1)
    }

    package var stream: UnsafeMutablePointer<uv_stream_t> { cuv_tcp_as_stream(self.handle) }

    /// The loop this connection lives on, read from the handle (libuv keeps it there anyway).
    public var loop: Loop {
        Unmanaged<Loop>.fromOpaque(self.handle.pointee.loop.pointee.data!).takeUnretainedValue()
    }

    /// The loop at +0, for the paths that run per read or per write.
    @inline(__always)
    package func withLoop<R>(_ body: (Loop) -> R) -> R {
        Unmanaged<Loop>.fromOpaque(self.handle.pointee.loop.pointee.data!)._withUnsafeGuaranteedRef(body)
    }

    /// This connection's address: what the loop's cork compares its owner with.
    @inline(__always) package var identity: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    // MARK: State

    package var tcpIsClosing: Bool { self.flags.contains(.closing) }
    package var tcpIsClosed: Bool { self.flags.contains(.closed) }
    package var tcpIsReading: Bool { self.flags.contains(.reading) }
    package var tcpIsPausedByBackpressure: Bool { self.flags.contains(.backpressured) }

    /// The bytes of TCP payload the kernel has sent and had acknowledged, and received, on this
    /// connection (handshake and framing included): what crossed the wire. `nil` once closing or where
    /// the kernel does not say.
    package var tcpByteCounts: (sent: UInt64, received: UInt64)? {
        guard !self.tcpIsClosing else { return nil }
        var fd = uv_os_fd_t()
        guard uv_fileno(UnsafeMutableRawPointer(self.handle).assumingMemoryBound(to: uv_handle_t.self), &fd) == 0 else { return nil }
        var acked: UInt64 = 0, received: UInt64 = 0
        guard cuv_tcp_byte_counts(fd, &acked, &received) == 0 else { return nil }
        return (acked, received)
    }

    package var tcpRemoteAddress: SocketAddress? {
        guard !self.tcpIsClosing else { return nil }
        return Self.address(of: self.handle, peer: true)
    }

    package var tcpLocalAddress: SocketAddress? {
        guard !self.tcpIsClosing else { return nil }
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

    package func tcpSetNoDelay(_ on: Bool) {
        guard !self.tcpIsClosing else { return }
        uv_tcp_nodelay(self.handle, on ? 1 : 0)
    }

    // MARK: Reading

    package func tcpStartReading() {
        self.loop.assertInLoop()
        self.flags.insert(.wantsRead)
        self.updateReading()
    }

    package func tcpStopReading() {
        self.loop.assertInLoop()
        self.flags.remove(.wantsRead)
        self.updateReading()
    }

    func updateReading() {
        let want = self.flags.contains(.wantsRead)
            && self.flags.isDisjoint(with: [.backpressured, .eof, .closing])
        guard want != self.flags.contains(.reading) else { return }
        if want {
            let rc = uv_read_start(self.stream, TCPConnection.onAlloc, TCPConnection.onRead)
            if rc < 0 {
                self.tcpClose(error: UVError(code: rc, context: "uv_read_start"))
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
        // `handle.data` holds the connection until the close callback: reach it at +0, no retain per read.
        let tcp = UnsafeMutableRawPointer(stream!).assumingMemoryBound(to: uv_tcp_t.self)
        Unmanaged<TCPConnection>.fromOpaque(tcp.pointee.data!)._withUnsafeGuaranteedRef { connection in
            if nread > 0 {
                Unmanaged<Loop>.fromOpaque(stream!.pointee.loop.pointee.data!)._withUnsafeGuaranteedRef { loop in
                    loop.countRead(nread)
                    let bytes = UnsafeMutableRawBufferPointer(start: buffer!.pointee.base, count: nread)
                    if _fastPath(!connection.flags.contains(.filtered)) { connection.deliverRead(bytes, on: loop) } else { connection.readThroughFilter(bytes) }
                    // The jobs the read woke (its connection's task, say) run now, while what they touch
                    // is in cache, not after every other connection's read (3-6% of pipelined async echo).
                    if loop.jobRunnerActive && !loop.runningLocalJobs { loop.runLocalJobs() }
                }
            } else if nread == Int(UV_EOF.rawValue) {
                connection.flags.insert(.eof)
                connection.updateReading()
                connection.events.pointee.didReachEOF(connection)
            } else if nread < 0 {
                connection.tcpClose(error: UVError(code: Int32(nread), context: "read"))
            }
            // nread == 0 is EAGAIN: nothing to do.
        }
    }

    @inline(never)
    private func readThroughFilter(_ bytes: UnsafeMutableRawBufferPointer) { self.filter?.filterRead(self, bytes) }

    /// One read: corked, so that everything the owner writes while handling it leaves in one write.
    @inline(__always)
    func deliverRead(_ bytes: UnsafeMutableRawBufferPointer) {
        self.withLoop { self.deliverRead(bytes, on: $0) }
    }

    @inline(__always)
    func deliverRead(_ bytes: UnsafeMutableRawBufferPointer, on loop: Loop) {
        let cork = loop.cork
        self.takeCork(cork)
        self.events.pointee.didRead(self, bytes)
        // The handler may have lent the cork to another connection and got it back, or closed.
        if !cork.pointee.buffer.isEmpty { self.flushCork(loop) }
        cork.pointee.owner = nil
    }

    // MARK: Closing

    /// Closes the connection; pending and corked writes are dropped. Wraps `uv_close`.
    package func tcpClose(error: UVError? = nil) {
        guard !self.tcpIsClosing else { return }
        self.flags.insert(.closing)
        self.flags.remove(.reading)
        self.withLoop { loop in
            if loop.cork.pointee.owner == self.identity { loop.cork.pointee.buffer.removeAll() }
        }
        if let error {
            if self.writes == nil { self.writes = WriteQueue() }
            self.writes!.closeError = error
        }
        uv_close(cuv_tcp_as_handle(self.handle)) { handle in
            let connection = Unmanaged<TCPConnection>.fromOpaque(handle!.pointee.data!).takeRetainedValue()
            connection.didClose()
        }
    }

    private func didClose() {
        self.flags.insert(.closed)
        if let filter = self.filter {
            self.filter = nil
            filter.filterClosed(self)
        }
        let error = self.writes?.closeError
        self.writes = nil
        self.events.pointee.didClose(self, error)
    }

    func closeForShutdown() { self.tcpClose(error: .cancelled.with(context: "loop shutdown")) }
}

@available(*, unavailable)
extension TCPConnection: Sendable {}
