extension WebSocket {
    /// Server side of the handshake: collect the request, answer it, and either open or respond-and-close.
    func readHandshake(_ bytes: UnsafeRawBufferPointer) {
        if self.state.isClient {
            self.readClientHandshake(bytes)
            return
        }
        guard let head = self.cold?.head else { return }
        switch self.cold?.deferred {
        case .body(let request, let length, let bodyLength)?:
            // More of a body: collected, not parsed again (a peer dripping a body byte by byte must not
            // make the server parse the head once per byte).
            head.buffer.append(bytes)
            if head.buffer.count >= length + bodyLength {
                self.cold?.deferred = nil
                self.answerPlain(request, headLength: length, bodyLength: bodyLength)
            }
            return
        case .upgrade?, .response?:
            return  // Reading is paused; a read already under way is dropped.
        case nil:
            break
        }
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
            // Plain HTTP: its body first, if it has one.
            switch Self.bodyLength(request, limit: self.registry.configuration.httpLimits.maxBodyBytes) {
            case .failure(let refusal):
                self.refuse(.status(refusal.status))
                return
            case .success(let bodyLength):
                if head.buffer.count >= length + bodyLength {
                    self.answerPlain(request, headLength: length, bodyLength: bodyLength)
                } else {
                    self.coldState.deferred = .body(request, headLength: length, bodyLength: bodyLength)  // The rest is to come.
                }
            }
            return
        }
        if let refusal = Handshake.validate(request) {
            self.refuse(refusal)
            return
        }
        let decision = self.handler.shouldUpgrade(request, on: self)
        if case .later = decision.kind {
            self.deferHandshake(.upgrade(request, headLength: length))
            return
        }
        self.finishUpgrade(request, headLength: length, decision: decision)
    }

    /// A plain request whose body has arrived: the handler answers it, now or later.
    private func answerPlain(_ request: HTTPRequest, headLength length: Int, bodyLength: Int) {
        guard let head = self.cold?.head else { return }
        var request = request
        if bodyLength > 0 { request.body = Array(head.buffer.bytes[length..<(length + bodyLength)]) }
        guard let response = self.handler.respond(to: request, on: self) else {
            self.deferHandshake(.response)
            return
        }
        self.refuse(response, countsAsError: false)
    }

    /// A plain request's body length from `Content-Length` (0 without one); 411 for a chunked body,
    /// 400 for a malformed or repeated length, 413 over `limit`.
    static func bodyLength(_ request: HTTPRequest, limit: Int) -> Result<Int, HTTPStatusRefusal> {
        if request.headers.first("Transfer-Encoding") != nil { return .failure(HTTPStatusRefusal(411)) }
        let values = request.headers["Content-Length"]
        guard let value = values.first else { return .success(0) }
        guard values.count == 1, let length = Int(value.trimmingHTTPWhitespace()), length >= 0,
              value.trimmingHTTPWhitespace().utf8.allSatisfy({ $0 >= 48 && $0 <= 57 })
        else { return .failure(HTTPStatusRefusal(400)) }
        return length > limit ? .failure(HTTPStatusRefusal(413)) : .success(length)
    }

    /// The handler answers later: reading pauses until it does (the handshake timeout still runs).
    func deferHandshake(_ deferred: DeferredHandshake) {
        self.coldState.deferred = deferred
        self.pauseReading()
    }

    /// The decision on an upgrade request the handler deferred (``UpgradeDecision/later``). On the
    /// connection's loop. False if there was none to make: the connection closed meanwhile (the
    /// handshake timeout, say), or the decision was made already.
    @discardableResult
    public func decideUpgrade(_ decision: UpgradeDecision) -> Bool {
        self.loop.assertInLoop()
        guard self.state.phase != .closed, case .upgrade(let request, let length)? = self.cold?.deferred else { return false }
        if case .later = decision.kind { return false }
        self.cold?.deferred = nil
        self.resumeReading()
        self.finishUpgrade(request, headLength: length, decision: decision)
        return true
    }

    /// The response to a plain HTTP request the handler deferred (by returning nil). On the connection's
    /// loop; the connection closes after it. False if it closed meanwhile or was answered already.
    @discardableResult
    public func respond(_ response: HTTPResponse) -> Bool {
        self.loop.assertInLoop()
        guard self.state.phase != .closed, case .response? = self.cold?.deferred else { return false }
        self.cold?.deferred = nil
        self.resumeReading()
        self.refuse(response, countsAsError: false)
        return true
    }

    private func finishUpgrade(_ request: HTTPRequest, headLength length: Int, decision: UpgradeDecision) {
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
        if countsAsError { self.noteError(.handshake, "handshake refused with \(response.status)") }
        _ = self.state.respondedWithHTTP()
        self.cold?.head?.release()
        self.cold?.head = nil
        do { try self.tcpWrite(response.serialized()) } catch { return }
        // Half-close and let the client close first, so our response is not lost to a reset.
        self.tcpShutdownWrite()
        self.shared.setDeadline(self, after: self.registry.configuration.closeTimeout)
    }
}

/// An HTTP status to refuse a request with.
struct HTTPStatusRefusal: Error {
    let status: Int
    init(_ status: Int) { self.status = status }
}
