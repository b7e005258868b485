extension WebSocket {
    /// Sends a text message.
    @discardableResult
    public func send(text: String) -> SendResult {
        var text = text
        return text.withUTF8 { self.send(.text, UnsafeRawBufferPointer($0)) }
    }

    /// Sends a binary message.
    @discardableResult
    public func send(binary bytes: UnsafeRawBufferPointer) -> SendResult { self.send(.binary, bytes) }

    /// Sends a binary message.
    @discardableResult
    public func send(binary bytes: [UInt8]) -> SendResult {
        bytes.withUnsafeBytes { self.send(.binary, $0) }
    }

    /// Sends one frame: a whole message, or with `fin: false` and then ``Opcode/continuation`` frames,
    /// a fragmented one; or a ping or pong (at most 125 bytes, `fin` true). The bytes are copied or
    /// written before this returns.
    ///
    /// - Returns: what happened; see ``SendResult``. Frames out of sequence (a continuation with no
    ///   fragmented message, a new message inside one), close frames (use ``close(code:reason:)``) and
    ///   reserved opcodes are refused with ``SendResult/invalid``.
    @discardableResult
    @inline(__always)
    public func send(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, fin: Bool = true) -> SendResult {
        // The common case, from the phase, the flags and the opcode: a whole text or binary message on an
        // open connection with no fragmented message under way and no extension to consult.
        if self.state.sendsPlainMessages && opcode.rawValue &- 1 < 2 && fin {
            let result = self.writeFrame(opcode, payload, fin: true, rsv: 0)
            if result.isAccepted { self.registry.countSent() }
            return result
        }
        return self.sendInSequence(opcode, payload, fin: fin)
    }

    /// Every other frame: fragments, control frames, messages through an extension, and refusals.
    @inline(never)
    func sendInSequence(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, fin: Bool) -> SendResult {
        if let refusal = self.state.admit(opcode, fin: fin, payloadCount: payload.count) { return refusal }
        if opcode.isControl { return self.writeControl(opcode, payload) }
        let result: SendResult
        if fin && opcode != .continuation && self.usesDeflate {
            result = self.sendDeflated(opcode, payload, compress: nil)
        } else if let negotiated = self.cold?.negotiated, fin, opcode != .continuation {
            var encoded = SendResult.invalid
            negotiated.encode(payload, opcode: opcode) { bytes, rsv in
                encoded = self.writeFrame(opcode, bytes, fin: true, rsv: rsv & self.extensionBits & 0x70)
            }
            result = encoded
        } else {
            result = self.writeFrame(opcode, payload, fin: fin, rsv: 0)
        }
        if fin && result.isAccepted { self.registry.countSent() }  // Once per message, at its last frame.
        return result
    }

    /// Sends a whole text or binary message, compressed or not whatever its size, when the connection
    /// agreed permessage-deflate (``WebSocketConfiguration/compression``); without it, as ``send(_:_:fin:)``.
    /// Without this choice a message is compressed when it is at least the threshold long and deflate
    /// makes it smaller. Already-compressed data (images, archives) is best sent with `compress: false`.
    @discardableResult
    public func send(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, compress: Bool) -> SendResult {
        guard opcode == .text || opcode == .binary, self.usesDeflate else { return self.send(opcode, payload) }
        if let refusal = self.state.admit(opcode, fin: true, payloadCount: payload.count) { return refusal }
        let result = self.sendDeflated(opcode, payload, compress: compress)
        if result.isAccepted { self.registry.countSent() }
        return result
    }

    /// Sends a text message, compressed or not (see ``send(_:_:compress:)``).
    @discardableResult
    public func send(text: String, compress: Bool) -> SendResult {
        var text = text
        return text.withUTF8 { self.send(.text, UnsafeRawBufferPointer($0), compress: compress) }
    }

    /// Sends a ping (payload at most 125 bytes); the pong arrives at the handler.
    @discardableResult
    public func sendPing(_ payload: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) -> SendResult {
        guard self.state.isOpen else { return .notOpen }
        guard payload.count <= 125 else { return .invalid }
        return self.writeControl(.ping, payload)
    }

    /// Runs `body` and sends every frame it produces in one write (one system call for a burst).
    ///
    /// While a connection handles a read its replies are corked this way already; use it to send a burst
    /// from anywhere else: a timer, a drain callback, or another connection's read handler. In the last
    /// case the reading connection's frames so far are written out first, and the loop's one cork is
    /// lent to this burst and then given back, so each connection's bytes stay in the order they were
    /// sent.
    public func withCork(_ body: () -> Void) { self.tcpWithCork(body) }

    /// A `Sendable` handle for sending from any thread; each call hops to the connection's loop.
    public var sender: WebSocketSender { WebSocketSender(socket: self) }

    // MARK: Framing

    /// A control frame: never refused for the send cap (a close frame must be able to leave a connection
    /// that is over it).
    @discardableResult
    func writeControl(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer) -> SendResult {
        self.writeFrameOut(opcode, payload, fin: true, rsv: 0, cap: Int.max)
    }

    /// Frames `payload` and sends it, through the cork while this connection holds it.
    ///
    /// Inlined into its callers: a data frame for the cork, what a reply or a burst is, costs no call
    /// here (nor for its mask key or the cork's room); anything else goes to ``writeFrameOut``.
    @inline(__always)
    func writeFrame(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, fin: Bool, rsv: UInt8) -> SendResult {
        let registry = self.registry
        let cork = registry.cork
        let isClient = self.state.isClient
        if cork.pointee.owner == self.address && (isClient || payload.count <= Self.corkedFrameLimit) {
            let headerLength = FrameHeader.length(payloadLength: payload.count, masked: isClient)
            // The cork records its owner's queue: the send cap is one addition and one comparison.
            let pending = cork.pointee.ownerQueued &+ cork.pointee.buffer.count &+ headerLength &+ payload.count
            if pending <= registry.maxPendingBytes {
                let out = cork.pointee.buffer.appendUninitialized(headerLength + payload.count)
                if isClient {
                    // A client masks, so the payload is copied next to its header either way.
                    let key = registry.nextMaskKey()
                    _ = FrameHeader.write(opcode: opcode, fin: fin, payloadLength: payload.count, maskKey: key,
                                          into: out.baseAddress!)
                    if rsv != 0 { out.baseAddress!.storeBytes(of: out[0] | rsv, as: UInt8.self) }
                    let body = UnsafeMutableRawBufferPointer(start: out.baseAddress! + headerLength, count: payload.count)
                    if payload.count > 0 { Masking.copy(payload, maskedWith: key, into: body) }
                } else {
                    _ = FrameHeader.write(opcode: opcode, fin: fin, payloadLength: payload.count, maskKey: nil,
                                          into: out.baseAddress!)
                    if rsv != 0 { out.baseAddress!.storeBytes(of: out[0] | rsv, as: UInt8.self) }
                    if payload.count > 0 {
                        (out.baseAddress! + headerLength).copyMemory(from: payload.baseAddress!, byteCount: payload.count)
                    }
                }
                return pending > cork.pointee.ownerHighWater ? .backpressure : .sent
            }
        }
        return self.writeFrameOut(opcode, payload, fin: fin, rsv: rsv, cap: registry.maxPendingBytes)
    }

    /// A frame that does not simply join the cork: this connection does not hold it, bytes are queued,
    /// the frame would pass the send cap, or (server) the payload is large enough to be written from
    /// where it lies.
    @inline(never)
    func writeFrameOut(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, fin: Bool, rsv: UInt8,
                       cap: Int) -> SendResult {
        let isClient = self.state.isClient
        let headerLength = FrameHeader.length(payloadLength: payload.count, masked: isClient)
        if headerLength + payload.count > cap - self.pendingWriteBytes { return self.overCap() }
        if !isClient {
            // Header and payload leave together: one writev (or one append to the cork), the payload
            // never copied unless queued.
            var header = (UInt64(0), UInt64(0))
            withUnsafeMutableBytes(of: &header) { raw in
                let length = FrameHeader.write(opcode: opcode, fin: fin, payloadLength: payload.count, maskKey: nil,
                                               into: raw.baseAddress!)
                if rsv != 0 { raw[0] |= rsv }
                do { try self.tcpWrite(UnsafeRawBufferPointer(rebasing: raw[0..<length]), payload) } catch {}
            }
        } else {
            let scratch = self.shared
            let out = scratch.scratch.appendUninitialized(headerLength + payload.count)
            let key = scratch.nextMaskKey()
            _ = FrameHeader.write(opcode: opcode, fin: fin, payloadLength: payload.count, maskKey: key,
                                  into: out.baseAddress!)
            if rsv != 0 { out.baseAddress!.storeBytes(of: out[0] | rsv, as: UInt8.self) }
            let body = UnsafeMutableRawBufferPointer(start: out.baseAddress! + headerLength, count: payload.count)
            if payload.count > 0 { Masking.copy(payload, maskedWith: key, into: body) }
            do { try self.tcpWrite(scratch.scratch.bytes) } catch {}
            // Keep a modest scratch buffer; let a one-off large message's memory go.
            if scratch.scratch.capacity > 64 * 1024 { scratch.scratch.free() } else { scratch.scratch.removeAll() }
        }
        if self.tcpIsClosing { return .notOpen }
        return self.pendingWriteBytes > Int(self.highWater) ? .backpressure : .sent
    }

    /// A whole message framed already (a topic's, shared by its subscribers): admitted like a message
    /// of `opcode`, held to the send cap, written through the cork when this connection holds it.
    func writePreframed(_ frame: UnsafeRawBufferPointer) -> SendResult {
        guard self.state.isOpen else { return .notOpen }
        if self.state.isSendingFragments { return .invalid }  // Not inside this connection's own fragmented message.
        if frame.count > self.registry.maxPendingBytes - self.pendingWriteBytes { return self.overCap() }
        do { try self.tcpWrite(frame) } catch { return .notOpen }
        if self.tcpIsClosing { return .notOpen }
        self.registry.countSent()
        return self.pendingWriteBytes > Int(self.highWater) ? .backpressure : .sent
    }

    /// A send that would pass the cap: nothing is buffered, and by the policy the message is dropped or
    /// the connection fails with 1008 (its close frame is not held to the cap).
    @inline(never)
    private func overCap() -> SendResult {
        if !self.registry.dropsOverCap && self.state.isOpen {
            self.fail(.policyViolation, "send buffer limit exceeded")
        }
        return .overCap
    }
}
