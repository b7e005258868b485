import CUV

extension TCPConnection {
    /// Bytes accepted for writing that the kernel has not taken yet: the write queue, plus the loop's
    /// cork while this connection holds it.
    public var pendingWriteBytes: Int {
        let queued = self.writes?.pendingBytes ?? 0
        return self.withLoop { loop in
            loop.cork.pointee.owner == self.identity ? queued + loop.cork.pointee.buffer.count : queued
        }
    }

    /// Frames this small or smaller join the cork; larger ones go out from where they lie (the cork is
    /// written first), so a big payload is never copied just to be batched.
    package static var corkLimit: Int { 16 * 1024 }

    /// Writes `bytes`: into the cork while this connection holds it, else to the socket (copied only if
    /// the kernel does not take them at once).
    package func tcpWrite(_ bytes: UnsafeRawBufferPointer) throws(UVError) {
        try self.tcpWrite(bytes, UnsafeRawBufferPointer(start: nil, count: 0))
    }

    /// Writes two buffers as one (a frame header and its payload, say): one system call, or one append
    /// to the cork.
    package func tcpWrite(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws(UVError) {
        let total = first.count + second.count
        let corked = self.withLoop { loop -> Bool in
            guard loop.cork.pointee.owner == self.identity else { return false }
            if total <= Self.corkLimit && !self.flags.contains(.closing) && !self.flags.contains(.shutdownRequested) {
                loop.cork.pointee.buffer.append(first)
                loop.cork.pointee.buffer.append(second)
                return true
            }
            self.flushCork(loop)
            return false
        }
        if corked { return }
        var buffers = (
            uv_buf_t(base: TCPConnection.mutable(first.baseAddress), len: first.count),
            uv_buf_t(base: TCPConnection.mutable(second.baseAddress), len: second.count)
        )
        try withUnsafeMutableBytes(of: &buffers) { (raw) throws(UVError) in
            try self.submit(raw.baseAddress!.assumingMemoryBound(to: uv_buf_t.self), count: second.count == 0 ? 1 : 2,
                            total: total)
        }
    }

    /// Writes the bytes of an array; see ``tcpWrite(_:)-(UnsafeRawBufferPointer)``.
    package func tcpWrite(_ bytes: [UInt8]) throws(UVError) {
        let outcome = bytes.withUnsafeBytes { raw in Result { () throws(UVError) in try self.tcpWrite(raw) } }
        try outcome.get()
    }

    /// Writes several buffers in order with one `writev` (the cork, if held, is written first).
    package func tcpWrite(contentsOf buffers: some Collection<UnsafeRawBufferPointer>) throws(UVError) {
        self.withLoop { loop in
            if loop.cork.pointee.owner == self.identity { self.flushCork(loop) }
        }
        let count = buffers.count
        var total = 0
        let result: UVError? = withUnsafeTemporaryAllocation(of: uv_buf_t.self, capacity: max(count, 1)) { bufs in
            for (index, bytes) in buffers.enumerated() {
                bufs[index] = uv_buf_t(base: TCPConnection.mutable(bytes.baseAddress), len: bytes.count)
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

    /// Runs `body` with this connection holding the loop's cork, so everything it writes leaves in one
    /// write. Inside this connection's own read (or cork) it just runs `body`. Inside another
    /// connection's, that connection's bytes so far are written out first and the cork is lent to this
    /// one, then given back: each connection's bytes keep their order.
    package func tcpWithCork(_ body: () -> Void) {
        self.withLoop { loop in
            let owner = loop.cork.pointee.owner
            if owner == self.identity {
                body()
                return
            }
            if let owner {
                // The owner is inside its read callback or cork, which keeps it alive.
                Unmanaged<TCPConnection>.fromOpaque(owner)._withUnsafeGuaranteedRef { previous in
                    if !loop.cork.pointee.buffer.isEmpty { previous.flushCork(loop) }
                    self.takeCork(loop.cork)
                    body()
                    if !loop.cork.pointee.buffer.isEmpty { self.flushCork(loop) }
                    previous.takeCork(loop.cork)
                }
                return
            }
            self.takeCork(loop.cork)
            body()
            if !loop.cork.pointee.buffer.isEmpty { self.flushCork(loop) }
            loop.cork.pointee.owner = nil
        }
    }

    /// Holds the loop's cork for this connection until the Swift concurrency job running now ends (the
    /// loop's executor flushes it after each job), so that what async code sends between two suspensions
    /// leaves in one write, as a callback's replies to one read do. Outside read callbacks and corks only:
    /// when another connection holds the cork for its read, this does nothing. On the loop, in a job.
    package func holdCorkForJob() {
        self.withLoop { loop in
            let cork = loop.cork
            if cork.pointee.owner == self.identity { return }
            if let holder = loop.jobCorkHolder {
                // Another connection of the same job: its bytes go first.
                if !cork.pointee.buffer.isEmpty { holder.flushCork(loop) }
            } else if cork.pointee.owner != nil {
                return  // Inside a read callback or a cork: not the job's to take.
            }
            loop.jobCorkHolder = self
            self.takeCork(cork)
        }
    }

    /// Makes this connection the cork's owner (its queue and high-water mark recorded with it).
    @inline(__always)
    func takeCork(_ cork: UnsafeMutablePointer<Cork>) {
        cork.pointee.owner = self.identity
        cork.pointee.ownerQueued = self.writes?.pendingBytes ?? 0
        cork.pointee.ownerHighWater = Int(self.highWater)
    }

    /// Writes out what the cork holds for this connection (its owner).
    package func flushCork(_ loop: Loop) {
        let cork = loop.cork
        let bytes = cork.pointee.buffer.bytes
        if !bytes.isEmpty && !self.flags.contains(.closing) && !self.flags.contains(.shutdownRequested) {
            var buffer = uv_buf_t(base: TCPConnection.mutable(bytes.baseAddress), len: bytes.count)
            do { try self.submit(&buffer, count: 1, total: bytes.count) } catch {}
        }
        // Keep a modest cork; let the memory of a one-off burst of large frames go.
        if cork.pointee.buffer.capacity > 1 << 20 { cork.pointee.buffer.free() } else { cork.pointee.buffer.removeAll() }
    }

    /// Half-closes: sends FIN once every pending byte (the cork's first) is written; reading goes on.
    /// Later writes throw ``UVError/notConnected``. Wraps `uv_shutdown`.
    package func tcpShutdownWrite() {
        guard !self.tcpIsClosing, !self.flags.contains(.shutdownRequested) else { return }
        self.withLoop { loop in
            if loop.cork.pointee.owner == self.identity && !loop.cork.pointee.buffer.isEmpty { self.flushCork(loop) }
        }
        if _slowPath(self.flags.contains(.filtered)), !self.tcpIsClosing { self.filter?.filterWillShutdown(self) }
        guard !self.tcpIsClosing else { return }
        self.flags.insert(.shutdownRequested)
        if !self.flags.contains(.writing) { self.sendShutdown() }
    }

    // libuv's uv_buf_t wants a mutable pointer though writes only read it.
    @inline(__always)
    static func mutable(_ pointer: UnsafeRawPointer?) -> UnsafeMutablePointer<CChar>? {
        UnsafeMutablePointer(mutating: pointer?.assumingMemoryBound(to: CChar.self))
    }

    /// The socket path: `uv_try_write` when nothing is queued, the queue for whatever the kernel refuses.
    package func submit(_ bufs: UnsafeMutablePointer<uv_buf_t>, count: Int, total: Int) throws(UVError) {
        self.loop.assertInLoop()
        if self.flags.contains(.closing) || self.flags.contains(.shutdownRequested) {
            throw UVError.notConnected.with(context: "write on a closed stream")
        }
        if total == 0 { return }
        if _slowPath(self.flags.contains(.filtered)) {
            try self.submitThroughFilter(bufs, count: count, total: total)
            return
        }
        try self.writeToSocket(bufs, count: count, total: total)
    }

    /// Writes to the socket itself, below any filter: a filter's output.
    package func submitUnfiltered(_ bufs: UnsafeMutablePointer<uv_buf_t>, count: Int, total: Int) throws(UVError) {
        if self.flags.contains(.closing) || self.flags.contains(.shutdownRequested) {
            throw UVError.notConnected.with(context: "write on a closed stream")
        }
        if total == 0 { return }
        try self.writeToSocket(bufs, count: count, total: total)
    }

    @inline(never)
    private func submitThroughFilter(_ bufs: UnsafeMutablePointer<uv_buf_t>, count: Int, total: Int) throws(UVError) {
        guard let filter = self.filter else { throw UVError.notConnected.with(context: "write on a closed stream") }
        try filter.filterWrite(self, bufs, count: count, total: total)
    }

    @inline(__always)
    private func writeToSocket(_ bufs: UnsafeMutablePointer<uv_buf_t>, count: Int, total: Int) throws(UVError) {
        self.loop.countWritten(total)
        var written = 0
        // Bytes are queued only while a uv_write is under way (`startWrite` sends them at once, and
        // `didWrite` sends what came meanwhile), so one flag, on the line the read path has just
        // touched, tells that nothing is queued.
        if !self.flags.contains(.writing) {
            // Nothing queued, so uv_try_write cannot overtake earlier bytes.
            let rc = uv_try_write(self.stream, bufs, UInt32(count))
            if rc == total { return }
            if rc >= 0 {
                written = Int(rc)
            } else if rc != UV_EAGAIN.rawValue {
                let error = UVError(code: rc, context: "write")
                self.tcpClose(error: error)
                throw error
            }
        }
        self.enqueue(bufs, count: count, skipping: written)
    }

    /// Queues what the kernel did not take, skipping the `written` bytes it did. Out of line: the
    /// steady state of a request/response protocol never gets here.
    @inline(never)
    private func enqueue(_ bufs: UnsafeMutablePointer<uv_buf_t>, count: Int, skipping written: Int) {
        var written = written
        if self.writes == nil { self.writes = WriteQueue() }
        let writes = self.writes!
        for index in 0..<count {
            let length = bufs[index].len
            if written >= length {
                written -= length
                continue
            }
            let start = UnsafeRawPointer(bufs[index].base!) + written
            writes.queued.append(UnsafeRawBufferPointer(start: start, count: length - written))
            written = 0
        }
        if !self.flags.contains(.writing) { self.startWrite(writes) }
        self.withLoop { loop in
            if loop.cork.pointee.owner == self.identity { loop.cork.pointee.ownerQueued = writes.pendingBytes }
        }
        if writes.pendingBytes > Int(self.highWater) && !self.flags.contains(.backpressured) {
            self.flags.insert(.backpressured)
            if self.backpressurePauseCount < .max { self.backpressurePauseCount += 1 }
            self.updateReading()
        }
    }

    private func startWrite(_ writes: WriteQueue) {
        writes.promoteQueued()
        if writes.request == nil {
            writes.request = .allocate(capacity: 1)
        }
        let request = writes.request!
        request.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        var buffer = uv_buf_t(
            base: writes.inFlight.base!.assumingMemoryBound(to: CChar.self),
            len: writes.inFlight.count
        )
        // uv_write copies the uv_buf_t descriptors; the bytes stay in `inFlight` until the callback.
        let rc = uv_write(request, self.stream, &buffer, 1) { request, status in
            let connection = Unmanaged<TCPConnection>.fromOpaque(request!.pointee.data!).takeUnretainedValue()
            connection.didWrite(status: status)
        }
        if rc < 0 {
            self.tcpClose(error: UVError(code: rc, context: "write"))
            return
        }
        self.flags.insert(.writing)
    }

    private func didWrite(status: Int32) {
        self.flags.remove(.writing)
        if status < 0 {
            // ECANCELED means close() came first and the close callback will follow.
            if status != UV_ECANCELED.rawValue { self.tcpClose(error: UVError(code: status, context: "write")) }
            return
        }
        guard let writes = self.writes else { return }
        writes.inFlight.removeAll()
        if !writes.queued.isEmpty {
            self.startWrite(writes)
        } else if writes.closeError == nil {
            self.writes = nil  // Drained: an idle connection holds no write memory.
        }
        let pending = self.writes?.pendingBytes ?? 0
        if self.flags.contains(.backpressured) && pending <= Int(self.lowWater) {
            self.flags.remove(.backpressured)
            self.updateReading()
        }
        guard pending == 0, !self.tcpIsClosing else { return }
        if self.flags.contains(.shutdownRequested) { self.sendShutdown() }
        self.events.pointee.didDrain(self)
    }

    private func sendShutdown() {
        let request = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        request.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        let rc = uv_shutdown(request, self.stream) { request, status in
            let request = request!
            // The connection outlives the request: libuv cancels it before the close callback runs.
            let connection = Unmanaged<TCPConnection>.fromOpaque(request.pointee.data!).takeUnretainedValue()
            request.deallocate()
            if status < 0 && status != UV_ECANCELED.rawValue {
                connection.tcpClose(error: UVError(code: status, context: "shutdown"))
            }
        }
        if rc < 0 {
            request.deallocate()
            self.tcpClose(error: UVError(code: rc, context: "shutdown"))
        }
    }
}
