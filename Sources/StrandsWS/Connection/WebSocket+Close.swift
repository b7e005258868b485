extension WebSocket {
    /// RFC 6455 §5.5.1 and §7: the peer's close frame (already validated by the parser).
    func receivedClose(_ payload: UnsafeRawBufferPointer) {
        self.closeReceived = true
        let code = payload.count >= 2 ? CloseCode(UInt16(payload[0]) << 8 | UInt16(payload[1])) : .noStatusReceived
        let reason = payload.count > 2 ? String(decoding: payload[2...], as: UTF8.self) : ""
        switch self.phase {
        case .open:
            // The peer started closing: answer with its code (none if it sent none), then finish.
            self.sendClose(code == .noStatusReceived ? nil : code, "")
        case .closeSent:
            self.shared.clearDeadline(self)  // Our close was answered.
        default:
            return
        }
        self.closeCode = code
        self.closeReason = reason
        self.phase = .closing
        self.finishClosing()
    }

    /// Fails the connection (RFC 6455 §7.1.7): send a close with `code` if none went out yet, then drop TCP
    /// once that frame is written.
    func fail(_ code: CloseCode, _ reason: String) {
        self.counters.countError()
        if self.phase == .open { self.sendClose(code, reason) }
        if self.phase == .open || self.phase == .closeSent {
            self.closeCode = code
            self.closeReason = reason
        }
        self.phase = .closing
        self.closeAfterFlush()
    }

    /// After both close frames: the server closes TCP first (RFC 6455 §7.1.1); the client waits for that,
    /// up to the close timeout.
    private func finishClosing() {
        if self.role == .server {
            self.closeAfterFlush()
        } else {
            self.shared.setDeadline(self, after: self.closeTimeout)
        }
    }

    /// Ends TCP from this side without losing what was sent: half-close (FIN after every queued byte, the
    /// close frame above all), keep reading and discarding until the peer's FIN, then close; the close
    /// timeout cuts a peer that never finishes. Closing outright while the peer still sends would answer
    /// with a reset, and a reset makes the peer's kernel drop our last frames unread.
    func closeAfterFlush() {
        self.shared.setDeadline(self, after: self.closeTimeout)
        if self.shared.corkOwner == self.identity {
            self.halfCloseAfterCork = true  // The cork, with the close frame in it, goes out first.
        } else {
            self.stream.shutdownWrite()
        }
        self.stream.startReading()
    }
}
