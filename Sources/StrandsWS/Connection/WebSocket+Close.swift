extension WebSocket {
    /// Starts the closing handshake: sends a close frame and waits (up to the configured close timeout)
    /// for the peer's. `reason` is cut to fit the 125-byte control frame limit at a character boundary.
    ///
    /// - Returns: ``SendResult/sent`` when the close frame went out (or, during the handshake, the
    ///   connection was dropped), ``SendResult/notOpen`` when closing already, and ``SendResult/invalid``
    ///   (and nothing happens) for a code that may not be sent: 1005, 1006 and 1015 are only ever
    ///   reported, never sent, and below 1000, 1016–2999 and 5000 up are not codes (RFC 6455 §7.4).
    @discardableResult
    public func close(code: CloseCode = .normalClosure, reason: String = "") -> SendResult {
        guard code.isValidOnTheWire else { return .invalid }
        let action = self.state.closeRequested(code, reason: reason)
        if action == .none { return .notOpen }
        self.perform(action)
        return .sent
    }

    /// RFC 6455 §5.5.1 and §7: the peer's close frame (already validated by the parser).
    func receivedClose(_ payload: UnsafeRawBufferPointer) {
        let code = payload.count >= 2 ? CloseCode(UInt16(payload[0]) << 8 | UInt16(payload[1])) : .noStatusReceived
        let action = self.state.receivedClose(code)
        guard action != .none else { return }
        let cold = self.coldState
        cold.closeCode = code
        cold.closeReason = payload.count > 2 ? String(decoding: payload[2...], as: UTF8.self) : ""
        self.perform(action)
    }

    /// Fails the connection (RFC 6455 §7.1.7): send a close with `code` if none went out yet, then end TCP
    /// once that frame is written.
    func fail(_ code: CloseCode, _ reason: String) {
        self.noteError(code == .messageTooBig ? .tooBig : code == .policyViolation ? .sendCap : .protocol,
                       "failed with \(code.rawValue): \(reason)")
        let wasOpen = self.state.isOpen
        let action = self.state.protocolViolation(code, reason: reason)
        if wasOpen || action != .none {
            let cold = self.coldState
            cold.closeCode = code
            cold.closeReason = reason
        }
        self.perform(action)
    }

    /// Carries out what ``ConnectionState`` decided.
    func perform(_ action: ConnectionState.Action) {
        let closeTimeout = self.registry.configuration.closeTimeout
        switch action {
        case .none:
            break
        case .open:
            break  // The handshake acts on it: it has the request and the bytes behind it.
        case .refuse(let status):
            self.refuse(.status(status))
        case .sendClose(let code, let reason):
            self.sendCloseFrame(code, reason)
            let cold = self.coldState
            if let code {
                cold.closeCode = code
                cold.closeReason = reason
            }
            self.shared.setDeadline(self, after: closeTimeout)
        case .sendCloseAndEnd(let code, let reason):
            self.sendCloseFrame(code, reason)
            self.endTCP()
        case .sendCloseAndAwaitEnd(let code):
            self.sendCloseFrame(code, "")
            self.shared.setDeadline(self, after: closeTimeout)
        case .end:
            self.shared.clearDeadline(self)
            self.endTCP()
        case .awaitEnd:
            self.shared.setDeadline(self, after: closeTimeout)
        case .closeTCP:
            self.tcpClose()
        case .failHandshake(let timedOut):
            let limit = self.registry.configuration.handshakeTimeout
            self.failClientHandshake(timedOut ? .timedOut("no handshake response within \(limit)")
                                              : .handshakeFailed("server closed the connection during the handshake"))
        case .ping:
            self.writeControl(.ping, UnsafeRawBufferPointer(start: nil, count: 0))
        case .reportClose:
            break  // Only the close callback gets this, and reports it there.
        }
    }

    /// Ends TCP from this side without losing what was sent: half-close (FIN after every queued byte, the
    /// close frame above all), keep reading and discarding until the peer's FIN, then close; the close
    /// timeout cuts a peer that never finishes. Closing outright while the peer still sends would answer
    /// with a reset, and a reset makes the peer's kernel drop our last frames unread.
    func endTCP() {
        self.shared.setDeadline(self, after: self.registry.configuration.closeTimeout)
        self.tcpShutdownWrite()  // The cork, with the close frame in it, goes out first.
        self.tcpStartReading()
    }

    /// A close frame with `code` (none: empty) and `reason` cut to 123 bytes at a character boundary.
    func sendCloseFrame(_ code: CloseCode?, _ reason: String) {
        var payload = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &payload) { raw in
            var length = 0
            if let code {
                raw[0] = UInt8(code.rawValue >> 8)
                raw[1] = UInt8(code.rawValue & 0xFF)
                length = 2
                for scalar in reason.unicodeScalars {
                    let width = UTF8.width(scalar)
                    if length + width > 125 { break }
                    UTF8.encode(scalar) { byte in
                        raw[length] = byte
                        length += 1
                    }
                }
            }
            self.writeControl(.close, UnsafeRawBufferPointer(rebasing: raw[0..<length]))
        }
    }
}
