extension WebSocket {
    /// Client side of the handshake: read the response head and check it (RFC 6455 §4.1).
    func readClientHandshake(_ bytes: UnsafeRawBufferPointer) {
        guard let head = self.cold?.head, let pending = self.cold?.pendingClient else { return }
        let length: Int?
        do {
            length = try head.append(bytes)
        } catch {
            self.failClientHandshake(.handshakeFailed("response head too large"))
            return
        }
        guard let length else { return }
        let startLine: String, headers: HTTPHeaders
        do {
            (startLine, headers) = try head.split(length: length)
        } catch {
            self.failClientHandshake(.handshakeFailed("malformed response (\(error.reason))"))
            return
        }
        let factories = self.registry.configuration.extensions
        let compression = self.registry.compression
        let agreement: ClientHandshake.Agreement
        switch ClientHandshake.check(startLine: startLine, headers: headers, expectedAccept: pending.expectedAccept,
                                     offeredProtocols: pending.offeredProtocols,
                                     offeredExtensions: (compression == nil ? [] : [DeflateParameters.name]) + factories.map(\.name)) {
        case .success(let agreed): agreement = agreed
        case .failure(let failure):
            self.failClientHandshake(.handshakeFailed(failure.reason))
            return
        }
        var negotiated: Handshake.AgreedExtension?
        for answer in agreement.extensions {
            guard negotiated == nil else {
                self.failClientHandshake(.handshakeFailed("server agreed to more than one extension"))
                return
            }
            if let compression, answer.name.caseInsensitiveEquals(DeflateParameters.name) {
                switch compression.accept(answer) {
                case .success(let agreed): negotiated = .deflate(agreed, answer: answer)
                case .failure(let error):
                    self.failClientHandshake(.handshakeFailed("extension '\(answer)': \(error.message)"))
                    return
                }
                continue
            }
            let factory = factories.first { $0.name.caseInsensitiveEquals(answer.name) }!
            do {
                try factory.accept(answer: answer)
            } catch {
                self.failClientHandshake(.handshakeFailed("extension '\(answer)': \(error.message)"))
                return
            }
            negotiated = .custom(factory, answer: answer)
        }
        let action = self.state.handshakeSucceeded()
        guard case .open(let thenClose) = action else { return }
        let cold = self.coldState
        cold.subprotocol = agreement.subprotocol
        switch negotiated {
        case .deflate(let agreement, _):
            self.adoptDeflate(agreement)
        case .custom(let factory, let answer):
            cold.negotiated = factory.makeExtension(answer: answer, isClient: true, loop: self.loop)
            self.extensionBits = factory.rsvBits & 0x70
            self.state.extensionNegotiated()
        case nil:
            break
        }
        self.didOpen(request: pending.request, leftover: length, thenClose: thenClose) {
            pending.completion(.success(self))
        }
    }

    /// Ends a client handshake that cannot succeed: the completion hears why, and TCP is closed.
    func failClientHandshake(_ error: WebSocketError) {
        self.noteError(.handshake, "client handshake failed: \(error)")
        if let pending = self.cold?.pendingClient {
            self.cold?.pendingClient = nil
            pending.completion(.failure(error))
        }
        self.tcpClose()
    }
}
