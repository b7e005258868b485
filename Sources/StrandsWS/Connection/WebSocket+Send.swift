extension WebSocket {
    /// Sends a text message. Returns `false` (and sends nothing) unless the connection is open.
    @discardableResult
    public func send(text: String) -> Bool {
        var text = text
        return text.withUTF8 { self.send(.text, UnsafeRawBufferPointer($0)) }
    }

    /// Sends a binary message.
    @discardableResult
    public func send(binary bytes: UnsafeRawBufferPointer) -> Bool { self.send(.binary, bytes) }

    /// Sends a binary message.
    @discardableResult
    public func send(binary bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { self.send(.binary, $0) }
    }

    /// Sends one frame: a whole message, or with `fin: false` and then ``Opcode/continuation`` frames,
    /// a fragmented one. The bytes are copied or written before this returns.
    @discardableResult
    public func send(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, fin: Bool = true) -> Bool {
        guard self.phase == .open, !opcode.isControl || (payload.count <= 125 && fin) else { return false }
        if fin && !opcode.isControl { self.counters.countSent() }  // Once per message, at its last frame.
        self.writeFrame(opcode, payload, fin: fin)
        return true
    }

    /// Sends a ping (payload at most 125 bytes); the pong arrives at the handler.
    @discardableResult
    public func sendPing(_ payload: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) -> Bool {
        guard self.phase == .open, payload.count <= 125 else { return false }
        self.writeFrame(.ping, payload)
        return true
    }

    /// Starts the closing handshake: sends a close frame and waits (up to the configured close timeout)
    /// for the peer's. `reason` is cut to fit the 125-byte control frame limit at a character boundary.
    public func close(code: CloseCode = .normalClosure, reason: String = "") {
        switch self.phase {
        case .open:
            self.sendClose(code, reason)
            self.phase = .closeSent
            self.closeCode = code
            self.closeReason = reason
            self.shared.setDeadline(self, after: self.closeTimeout)
        case .handshake, .httpResponse:
            self.stream.close()
        case .closeSent, .closing, .closed:
            break
        }
    }

    /// Runs `body` and sends every frame it produces in one write (one system call for a burst).
    ///
    /// While a connection handles a read its replies are corked this way already; use it to send a burst
    /// from anywhere else: a timer, a drain callback, or another connection's read handler. In the last
    /// case the reading connection's frames so far are written out first, and the loop's one cork is
    /// lent to this burst and then given back, so each connection's bytes stay in the order they were
    /// sent.
    public func withCork(_ body: () -> Void) {
        let shared = self.shared
        let owner = shared.corkOwner
        if owner == self.identity {  // This connection's own read: its cork is on already.
            body()
            return
        }
        if let owner {
            // The owner is inside its read callback, which keeps it alive.
            Unmanaged<WebSocket>.fromOpaque(owner)._withUnsafeGuaranteedRef { $0.flushCorkNow() }
        }
        shared.corkOwner = self.identity
        body()
        shared.corkOwner = owner
        self.flushCorkNow()
    }

    /// A `Sendable` handle for sending from any thread; each call hops to the connection's loop.
    public var sender: WebSocketSender { WebSocketSender(socket: self) }

    // MARK: Internals

    func sendClose(_ code: CloseCode?, _ reason: String) {
        var payload = [UInt8]()
        if let code {
            payload = [UInt8(code.rawValue >> 8), UInt8(code.rawValue & 0xFF)]
            var budget = 123
            for scalar in reason.unicodeScalars {
                let bytes = Array(String(scalar).utf8)
                if bytes.count > budget { break }
                payload += bytes
                budget -= bytes.count
            }
        }
        payload.withUnsafeBytes { self.writeFrame(.close, $0) }
    }

    /// Frames `payload` and sends it, through the cork while this connection is handling a read.
    ///
    /// Inlined into its callers: a frame for the cork, what a reply or a burst is, costs no call here
    /// (nor for its mask key or the cork's room); anything else goes to ``writeFrameDirectly``.
    @inline(__always)
    func writeFrame(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, fin: Bool = true) {
        let shared = self.shared
        if shared.corkOwner == self.identity {
            if self.role == .client {
                // A client masks, so the payload is copied next to its header either way.
                Self.appendMasked(opcode, payload, fin: fin, key: shared.nextMaskKey(), to: &shared.cork)
                return
            }
            if payload.count <= 16 * 1024 {
                let headerLength = FrameHeader.length(payloadLength: payload.count, masked: false)
                let out = shared.cork.appendUninitialized(headerLength + payload.count)
                _ = FrameHeader.write(opcode: opcode, fin: fin, payloadLength: payload.count, maskKey: nil,
                                      into: out.baseAddress!)
                if payload.count > 0 {
                    (out.baseAddress! + headerLength).copyMemory(from: payload.baseAddress!, byteCount: payload.count)
                }
                return
            }
        }
        self.writeFrameDirectly(opcode, payload, fin: fin)
    }

    /// A frame that does not join the cork: this connection is not handling a read, or (server) the
    /// payload is large enough to be written from where it lies.
    @inline(never)
    func writeFrameDirectly(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, fin: Bool) {
        let shared = self.shared
        if self.role == .server {
            if shared.corkOwner == self.identity { self.flushCorkNow() }
            // Header and payload leave together in one writev, the payload never copied unless queued.
            var header = (UInt64(0), UInt64(0))
            withUnsafeMutableBytes(of: &header) { raw in
                let length = FrameHeader.write(opcode: opcode, fin: fin, payloadLength: payload.count, maskKey: nil,
                                               into: raw.baseAddress!)
                do { try self.stream.write(UnsafeRawBufferPointer(rebasing: raw[0..<length]), payload) } catch {}
            }
            return
        }
        Self.appendMasked(opcode, payload, fin: fin, key: shared.nextMaskKey(), to: &shared.scratch)
        let bytes = shared.scratch.bytes
        do { try self.stream.write(bytes) } catch {}
        // Keep a modest scratch buffer; let a one-off large message's memory go.
        if shared.scratch.capacity > 64 * 1024 { shared.scratch.free() } else { shared.scratch.removeAll() }
    }

    @inline(__always)
    private static func appendMasked(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, fin: Bool, key: UInt32,
                                     to buffer: inout RawBuffer) {
        // The exact size up front: one call into the buffer per frame, not a second to give back the
        // unused part of a worst-case header.
        let headerLength = FrameHeader.length(payloadLength: payload.count, masked: true)
        let out = buffer.appendUninitialized(headerLength + payload.count)
        _ = FrameHeader.write(opcode: opcode, fin: fin, payloadLength: payload.count, maskKey: key, into: out.baseAddress!)
        let body = UnsafeMutableRawBufferPointer(start: out.baseAddress! + headerLength, count: payload.count)
        if payload.count > 0 { Masking.copy(payload, maskedWith: key, into: body) }
    }

    /// Writes out what the cork holds now (before a large frame that bypasses it).
    func flushCorkNow() {
        let shared = self.shared
        guard !shared.cork.isEmpty else { return }
        do { try self.stream.write(shared.cork.bytes) } catch {}
        // Keep a modest cork; let the memory of a one-off burst of large frames go.
        if shared.cork.capacity > 1 << 20 { shared.cork.free() } else { shared.cork.removeAll() }
    }
}

/// Sends on a ``WebSocket`` from any thread: each call is carried to the connection's loop with
/// ``Loop/execute(_:)`` (one closure allocation and a copy of the payload per call).
public struct WebSocketSender: @unchecked Sendable {  // Safe: `socket` is only touched on its loop.
    let socket: WebSocket

    public var loop: Loop { self.socket.loop }

    public func send(text: String) {
        self.socket.loop.execute { [self] in _ = self.socket.send(text: text) }
    }

    public func send(binary bytes: [UInt8]) {
        self.socket.loop.execute { [self] in _ = self.socket.send(binary: bytes) }
    }

    public func close(code: CloseCode = .normalClosure, reason: String = "") {
        self.socket.loop.execute { [self] in self.socket.close(code: code, reason: reason) }
    }
}
