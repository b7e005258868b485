import CUV

extension TCPStream {
    /// Bytes accepted by `write` that the kernel has not taken yet.
    public var pendingWriteBytes: Int { self.writes.pendingBytes }

    /// Writes `bytes`, which are copied only if the kernel does not take them at once.
    ///
    /// Tries `uv_try_write` first; whatever it leaves is copied into the stream's write queue and sent by one
    /// `uv_write`. Order is kept across calls. Nothing is allocated when the socket takes every byte.
    /// - Throws: ``UVError/notConnected`` after close or half-close; a socket error (which also closes the stream).
    public func write(_ bytes: UnsafeRawBufferPointer) throws(UVError) {
        var buffer = uv_buf_t(base: TCPStream.mutable(bytes.baseAddress), len: bytes.count)
        try self.submit(&buffer, count: 1, total: bytes.count)
    }

    /// Writes `bytes`; see ``write(_:)-(UnsafeRawBufferPointer)``.
    @inline(__always)
    public func write(_ bytes: UnsafeMutableRawBufferPointer) throws(UVError) {
        try self.write(UnsafeRawBufferPointer(bytes))
    }

    /// Writes two buffers as one (a frame header and its payload, say) with a single system call.
    public func write(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws(UVError) {
        var buffers = (
            uv_buf_t(base: TCPStream.mutable(first.baseAddress), len: first.count),
            uv_buf_t(base: TCPStream.mutable(second.baseAddress), len: second.count)
        )
        try withUnsafeMutableBytes(of: &buffers) { (raw) throws(UVError) in
            try self.submit(raw.baseAddress!.assumingMemoryBound(to: uv_buf_t.self), count: 2,
                            total: first.count + second.count)
        }
    }

    /// Writes several buffers in order with one `writev`. Buffers are lent only for the call.
    public func write(contentsOf buffers: some Collection<UnsafeRawBufferPointer>) throws(UVError) {
        let count = buffers.count
        var total = 0
        let result: UVError? = withUnsafeTemporaryAllocation(of: uv_buf_t.self, capacity: max(count, 1)) { bufs in
            for (index, bytes) in buffers.enumerated() {
                bufs[index] = uv_buf_t(base: TCPStream.mutable(bytes.baseAddress), len: bytes.count)
                total += bytes.count
            }
            let outcome: Result<Void, UVError> = Result { () throws(UVError) in
                try self.submit(bufs.baseAddress!, count: count, total: total)
            }
            if case .failure(let error) = outcome { return error }
            return nil
        }
        if let result { throw result }
    }

    /// Writes the bytes of an array (copied only if the kernel does not take them at once).
    public func write(_ bytes: [UInt8]) throws(UVError) {
        let outcome = bytes.withUnsafeBytes { raw in Result { () throws(UVError) in try self.write(raw) } }
        try outcome.get()
    }

    /// Half-closes: sends FIN once every pending byte is written; reading goes on. Wraps `uv_shutdown`.
    /// Later writes throw ``UVError/notConnected``.
    public func shutdownWrite() {
        guard !self.isClosing, !self.flags.contains(.shutdownRequested) else { return }
        self.flags.insert(.shutdownRequested)
        if !self.flags.contains(.writing) && self.writes.queued.isEmpty { self.sendShutdown() }
    }

    // libuv's uv_buf_t wants a mutable pointer though writes only read it.
    @inline(__always)
    static func mutable(_ pointer: UnsafeRawPointer?) -> UnsafeMutablePointer<CChar>? {
        UnsafeMutablePointer(mutating: pointer?.assumingMemoryBound(to: CChar.self))
    }

    private func submit(_ bufs: UnsafeMutablePointer<uv_buf_t>, count: Int, total: Int) throws(UVError) {
        self.loop.assertInLoop()
        if self.flags.contains(.closing) || self.flags.contains(.shutdownRequested) {
            throw UVError.notConnected.with(context: "write on a closed stream")
        }
        if total == 0 { return }
        var written = 0
        // Bytes are queued only while a uv_write is under way (`startWrite` sends them at once, and
        // `didWrite` sends what came meanwhile), so one flag, on the line the read path has just
        // touched, tells that nothing is queued.
        assert(self.flags.contains(.writing) || self.writes.queued.isEmpty, "bytes queued with no write under way")
        if !self.flags.contains(.writing) {
            // Nothing queued, so uv_try_write cannot overtake earlier bytes.
            let rc = uv_try_write(self.stream, bufs, UInt32(count))
            if rc == total { return }
            if rc >= 0 {
                written = Int(rc)
            } else if rc != UV_EAGAIN.rawValue {
                let error = UVError(code: rc, context: "write")
                self.close(error: error)
                throw error
            }
        }
        // Queue what the kernel did not take, skipping the `written` bytes it did.
        for index in 0..<count {
            let length = bufs[index].len
            if written >= length {
                written -= length
                continue
            }
            let start = UnsafeRawPointer(bufs[index].base!) + written
            self.writes.queued.append(UnsafeRawBufferPointer(start: start, count: length - written))
            written = 0
        }
        if !self.flags.contains(.writing) { self.startWrite() }
        if self.writes.pendingBytes > self.highWaterMark && !self.flags.contains(.backpressured) {
            self.flags.insert(.backpressured)
            self.backpressurePauses += 1
            self.updateReading()
        }
    }

    private func startWrite() {
        self.writes.promoteQueued()
        if self.writes.request == nil {
            self.writes.request = .allocate(capacity: 1)
        }
        let request = self.writes.request!
        request.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        var buffer = uv_buf_t(
            base: self.writes.inFlight.base!.assumingMemoryBound(to: CChar.self),
            len: self.writes.inFlight.count
        )
        // uv_write copies the uv_buf_t descriptors; the bytes stay in `inFlight` until the callback.
        let rc = uv_write(request, self.stream, &buffer, 1) { request, status in
            let stream = Unmanaged<TCPStream>.fromOpaque(request!.pointee.data!).takeUnretainedValue()
            stream.didWrite(status: status)
        }
        if rc < 0 {
            self.close(error: UVError(code: rc, context: "write"))
            return
        }
        self.flags.insert(.writing)
    }

    private func didWrite(status: Int32) {
        self.flags.remove(.writing)
        if status < 0 {
            // ECANCELED means close() came first and the close callback will follow.
            if status != UV_ECANCELED.rawValue { self.close(error: UVError(code: status, context: "write")) }
            return
        }
        self.writes.inFlight.removeAll()
        if !self.writes.queued.isEmpty {
            self.startWrite()
        } else {
            self.writes.inFlight.free()
            self.writes.queued.free()
        }
        if self.flags.contains(.backpressured) && self.writes.pendingBytes <= self.lowWaterMark {
            self.flags.remove(.backpressured)
            self.updateReading()
        }
        guard self.writes.pendingBytes == 0, !self.isClosing else { return }
        if self.flags.contains(.shutdownRequested) { self.sendShutdown() }
        self.delegate?.streamDidDrain(self)
    }

    private func sendShutdown() {
        let request = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        request.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        let rc = uv_shutdown(request, self.stream) { request, status in
            let request = request!
            // The stream outlives the request: libuv cancels it before the close callback runs.
            let stream = Unmanaged<TCPStream>.fromOpaque(request.pointee.data!).takeUnretainedValue()
            request.deallocate()
            if status < 0 && status != UV_ECANCELED.rawValue {
                stream.close(error: UVError(code: status, context: "shutdown"))
            }
        }
        if rc < 0 {
            request.deallocate()
            self.close(error: UVError(code: rc, context: "shutdown"))
        }
    }
}
