import COpenSSL
#if canImport(StrandsLoop)  // Not in the fuzzers' one-module build (scripts/fuzz.sh).
import StrandsLoop
#endif

extension TCPConnection {
    /// Runs TLS on this stream from now on: reads are decrypted before the delegate sees them, writes
    /// encrypted (what is written before the handshake ends waits for it). A client context sends its
    /// ClientHello at once, with `serverName` as SNI and, when the context verifies, as the name the
    /// certificate must carry. `completion` hears the handshake's end (`nil`) or why it failed (the
    /// stream is then closed). Loop-confined.
    public func startTLS(_ context: TLSContext, serverName: String? = nil,
                         _ completion: ((TLSError?) -> Void)? = nil) throws(TLSError) {
        precondition(self.filter == nil, "TLS is on already")
        guard let filter = TLSFilter(context: context, loop: self.loop, serverName: serverName) else {
            throw TLSError(.configuration, TLSError.drainQueue("SSL_new failed"))
        }
        filter.onHandshake = completion
        self.filter = filter
        if context.role == .client { filter.start(self) }
    }

    /// The protocol agreed ("TLSv1.3", "TLSv1.2"), once the handshake is done.
    public var tlsProtocol: String? {
        guard let filter = self.filter as? TLSFilter, filter.handshakeDone else { return nil }
        return String(cString: SSL_get_version(filter.ssl))
    }

    /// The application protocol ALPN agreed ("http/1.1"), if any, once the handshake is done.
    public var tlsApplicationProtocol: String? {
        guard let filter = self.filter as? TLSFilter, filter.handshakeDone else { return nil }
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(filter.ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// Whether the stream runs TLS and its handshake is done.
    public var isTLSEstablished: Bool { (self.filter as? TLSFilter)?.handshakeDone ?? false }
}

extension TLSContext: ConnectionSecurity {
    public func secure(_ connection: TCPConnection, serverName: String?, _ completion: @escaping ((any Error)?) -> Void) throws {
        try connection.startTLS(self, serverName: serverName) { completion($0) }
    }
}
