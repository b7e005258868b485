/// permessage-deflate on a connection. Two representations:
/// - stateless (no context takeover either way, what shared mode always agrees): nothing per
///   connection but bits of ``WebSocket/extensionBits`` (RSV1, a flag and the compressor's window),
///   the loop's shared streams do the work;
/// - otherwise a ``DeflateConnection`` in the side state.
/// Either way a message is inflated into, or deflated into, one of the loop's two buffers and lent
/// from there: no allocation per message once they have grown.
enum DeflateBits {
    static let rsv1: UInt8 = 0x40
    /// The connection is stateless; the low three bits hold its compressor's window minus 8.
    static let stateless: UInt8 = 0x08
    static let windowMask: UInt8 = 0x07
}

extension WebSocket {
    /// Takes on what the handshake agreed.
    func adoptDeflate(_ agreement: DeflateAgreement) {
        if agreement.isStateless {
            self.extensionBits = DeflateBits.rsv1 | DeflateBits.stateless | UInt8(agreement.sendWindowBits - 8)
        } else {
            self.coldState.deflate = DeflateConnection(agreement: agreement, settings: self.registry.compression!,
                                                       loopState: self.shared.deflateState)
            self.extensionBits = DeflateBits.rsv1
        }
        self.state.extensionNegotiated()
    }

    /// True when the handshake agreed permessage-deflate (``WebSocketConfiguration/compression``).
    public var isCompressed: Bool { self.usesDeflate }

    /// True when permessage-deflate was agreed.
    var usesDeflate: Bool { self.extensionBits & DeflateBits.stateless != 0 || self.cold?.deflate != nil }

    /// A received message with RSV1 set: inflated, checked, delivered.
    func receiveDeflated(_ opcode: Opcode, _ payload: UnsafeMutableRawBufferPointer) -> Bool {
        let loopState = self.shared.deflateState
        let stateless = self.extensionBits & DeflateBits.stateless != 0
        let stream = stateless ? loopState.sharedInflater() : self.cold?.deflate?.inflaterForMessage()
        guard let stream else {
            self.fail(.internalError, "out of memory for inflate")
            return false
        }
        let keepsHistory = !stateless && self.cold!.deflate!.agreement.receiveTakeover
        let result = stream.decompress(UnsafeRawBufferPointer(payload), limit: self.registry.maxMessageSize,
                                       keepsHistory: keepsHistory, into: &loopState.inflated)
        defer { loopState.trimInflated() }
        switch result {
        case .complete:
            break
        case .tooBig:
            self.fail(.messageTooBig, "message too big after decompression")
            return false
        case .corrupt(let reason):
            self.fail(.invalidPayload, reason)
            return false
        }
        let bytes = loopState.inflated.bytes
        if opcode == .text && !UTF8Validator.isValid(bytes) {
            self.fail(.invalidPayload, "text message is not valid UTF-8")
            return false
        }
        self.registry.countReceived()
        self.handler.webSocket(self, didReceive: WebSocketMessage(opcode: opcode, bytes: bytes))
        return self.state.keepsReading
    }

    /// A whole text or binary message on a connection that agreed permessage-deflate: compressed when
    /// `compress` says so, or (`nil`) when it is at least the threshold long and deflating makes it smaller.
    func sendDeflated(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, compress: Bool?) -> SendResult {
        let settings = self.registry.compression!
        if compress == false || (compress == nil && payload.count < settings.threshold) {
            return self.writeFrame(opcode, payload, fin: true, rsv: 0)
        }
        let loopState = self.shared.deflateState
        let chosen: (stream: DeflateStream, reset: Bool)?
        if self.extensionBits & DeflateBits.stateless != 0 {
            let bits = Int(self.extensionBits & DeflateBits.windowMask) + 8
            chosen = loopState.sharedCompressor(settings, windowBits: bits).map { ($0, true) }
        } else {
            chosen = self.cold?.deflate?.compressorForMessage()
        }
        guard let (stream, reset) = chosen else { return self.writeFrame(opcode, payload, fin: true, rsv: 0) }
        defer { loopState.trimDeflated() }
        let compressed = stream.compress(payload, into: &loopState.deflated)
        if reset { stream.reset() }
        guard compressed, compress == true || loopState.deflated.count < payload.count else {
            // Sent as it is, so the peer's window will not hold what the compressor just saw.
            if !reset { stream.reset() }
            return self.writeFrame(opcode, payload, fin: true, rsv: 0)
        }
        let result = self.writeFrame(opcode, loopState.deflated.bytes, fin: true, rsv: DeflateBits.rsv1)
        if !reset && !result.isAccepted { stream.reset() }  // Dropped: the peer never sees this history either.
        return result
    }
}
