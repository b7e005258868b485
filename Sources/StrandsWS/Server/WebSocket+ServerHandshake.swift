extension WebSocket {
    /// Server side of the handshake: collect the request, answer it, and either open or respond-and-close.
    func readHandshake(_ bytes: UnsafeRawBufferPointer) {
        if self.state.isClient {
            self.readClientHandshake(bytes)
            return
        }
        guard let head = self.cold?.head else { return }
        let length: Int?
        do {
            length = try head.append(bytes)
        } catch {
            self.refuse(HTTPResponse.status(error.status))
            return
        }
        guard let length else { return }

        var request: HTTPRequest
        do {
            let (startLine, headers) = try head.split(length: length)
            request = try HTTPRequest.parse(startLine: startLine, headers: headers)
        } catch {
            self.refuse(HTTPResponse.status(error.status))
            return
        }
        request.remoteAddress = self.tcpRemoteAddress

        guard Handshake.isUpgrade(request) else {
            self.refuse(self.handler.respond(to: request), countsAsError: false)
            return
        }
        if let refusal = Handshake.validate(request) {
            self.refuse(refusal)
            return
        }
        let decision = self.handler.shouldUpgrade(request)
        guard case .accept(let subprotocol, let headers) = decision.kind else {
            if case .reject(let response) = decision.kind { self.refuse(response, countsAsError: false) }
            return
        }
        if let subprotocol, !request.headers.tokens("Sec-WebSocket-Protocol").contains(subprotocol) {
            // The application chose something the client never offered: the client would fail anyway.
            self.refuse(.status(500))
            return
        }
        let agreed: Handshake.AgreedExtension?
        switch Handshake.negotiateExtensions(request, compression: self.registry.compression,
                                             factories: self.registry.configuration.extensions) {
        case .success(let result): agreed = result
        case .failure:
            self.refuse(.status(400))
            return
        }
        let action = self.state.handshakeSucceeded()
        guard case .open(let thenClose) = action else {
            if case .refuse(let status) = action {
                self.refuse(.status(status), countsAsError: false)  // A shutdown began meanwhile: 503.
            }
            return
        }
        let key = request.headers.first("Sec-WebSocket-Key")!.trimmingHTTPWhitespace()
        let response = Handshake.response(key: key, subprotocol: subprotocol, extensions: agreed?.answer,
                                          headers: headers)
        do { try self.tcpWrite(response) } catch { return }
        let cold = self.coldState
        cold.subprotocol = subprotocol
        switch agreed {
        case .deflate(let agreement, _):
            self.adoptDeflate(agreement)
        case .custom(let factory, let answer):
            cold.negotiated = factory.makeExtension(answer: answer, isClient: false, loop: self.loop)
            self.extensionBits = factory.rsvBits & 0x70
            self.state.extensionNegotiated()
        case nil:
            break
        }
        self.didOpen(request: request, leftover: length, thenClose: thenClose)
    }

    /// The connection is upgraded: count it, tell the client's completion (`announce`) and the handler,
    /// and parse any frames that came early. The connection is open (it can send) in both callbacks.
    func didOpen(request: HTTPRequest, leftover headLength: Int, thenClose: Bool,
                 announce: (() -> Void)? = nil) {
        self.registry.countOpened()
        self.shared.clearDeadline(self)
        let head = self.cold?.head
        self.cold?.head = nil
        self.cold?.pendingClient = nil
        self.trimCold()
        announce?()
        if self.state.isOpen { self.handler.webSocketDidOpen(self, request: request) }
        if let head, head.buffer.count > headLength, self.state.keepsReading {
            // Frames sent right behind the handshake arrived in the same read.
            head.buffer.removeFirst(headLength)
            self.readFrames(head.buffer.mutableBytes)
        }
        head?.release()
        if thenClose, self.state.isOpen {
            let (code, reason) = self.registry.shutdownClose
            self.close(code: code, reason: reason)
        }
    }

    /// Sends an HTTP response and closes once it is written (or the close timeout passes).
    func refuse(_ response: HTTPResponse, countsAsError: Bool = true) {
        if countsAsError { self.registry.countError(.handshake) }
        _ = self.state.respondedWithHTTP()
        self.cold?.head?.release()
        self.cold?.head = nil
        do { try self.tcpWrite(response.serialized()) } catch { return }
        // Half-close and let the client close first, so our response is not lost to a reset.
        self.tcpShutdownWrite()
        self.shared.setDeadline(self, after: self.registry.configuration.closeTimeout)
    }
}
