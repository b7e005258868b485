import COpenSSL
import CUV
#if canImport(StrandsLoop)  // Not in the fuzzers' one-module build (scripts/fuzz.sh).
import StrandsLoop
#endif

/// One connection's TLS, as a ``TCPFilter`` under its protocol. Loop-confined.
///
/// OpenSSL reads and writes through a BIO of our own (not a memory BIO pair): its read callback takes
/// ciphertext straight from the loop's read buffer, its write callback hands records to the connection's
/// socket path (`uv_try_write`, then the write queue), so backpressure works on ciphertext as it does on
/// plaintext and nothing is copied on the way out. Plaintext is decrypted into a per-loop buffer and
/// given to the protocol there, which parses (and unmasks) it in place as it does a plain read. A
/// write (a cork's flush) is one `SSL_write`: one record, one system call, up to 16 KiB.
final class TLSFilter: TCPFilter {
    let ssl: OpaquePointer
    /// Held for as long as the connection: a context's SNI callback reaches its Swift object, which must
    /// not go before a handshake made from it (a reload swaps contexts while others still handshake).
    private let context: TLSContext
    private let verifies: Bool
    private let isClient: Bool
    /// The ciphertext of the read being handled.
    private var input = UnsafeRawBufferPointer(start: nil, count: 0)
    /// The connection, for the BIO's write callback: set for each call into OpenSSL.
    private var current: TCPConnection?
    /// What the protocol wrote before the handshake finished (a client's HTTP request).
    private var early = RawBuffer()
    private(set) var handshakeDone = false
    /// Called once, on the handshake's end or failure.
    var onHandshake: ((TLSError?) -> Void)?
    private unowned(unsafe) let buffers: TLSLoopBuffers

    init?(context: TLSContext, loop: Loop, serverName: String?) {
        guard let ssl = SSL_new(context.context), let bio = BIO_new(TLSFilter.method) else { return nil }
        self.ssl = ssl
        self.context = context
        self.verifies = context.verifies
        self.isClient = context.role == .client
        self.buffers = loop.local(TLSLoopBuffers.self) { TLSLoopBuffers() }
        self.buffers.opened()
        BIO_set_data(bio, Unmanaged.passUnretained(self).toOpaque())
        BIO_set_init(bio, 1)
        SSL_set_bio(ssl, bio, bio)
        if self.isClient {
            SSL_set_connect_state(ssl)
            if let serverName {
                // SNI is for names, not addresses (RFC 6066 §3); verification checks either.
                let isAddress = serverName.contains(":") || serverName.allSatisfy { $0.isNumber || $0 == "." }
                if !isAddress { _ = copenssl_set_host_name(ssl, serverName) }
                if self.verifies {
                    if isAddress {
                        _ = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName)
                    } else {
                        _ = SSL_set1_host(ssl, serverName)
                    }
                }
            }
        } else {
            SSL_set_accept_state(ssl)
        }
    }

    deinit {
        SSL_free(self.ssl)  // And the BIO with it.
        self.early.free()
    }

    /// A client starts its handshake (sends ClientHello) at once.
    func start(_ connection: TCPConnection) {
        let outer = self.current
        self.current = connection
        defer { self.current = outer }
        self.advanceHandshake(connection)
    }

    // MARK: TCPFilter

    func filterRead(_ connection: TCPConnection, _ bytes: UnsafeMutableRawBufferPointer) {
        let outer = self.current
        self.current = connection
        self.input = UnsafeRawBufferPointer(bytes)
        defer {
            self.current = outer
            self.input = UnsafeRawBufferPointer(start: nil, count: 0)
        }
        if !self.handshakeDone {
            self.advanceHandshake(connection)
            guard self.handshakeDone, !connection.tcpIsClosing else { return }
        }
        let plain = self.buffers.plaintext
        while !connection.tcpIsClosing {
            // Fill the buffer with as many records as have come, then hand it on once.
            var filled = 0
            var status = SSL_ERROR_NONE
            while filled < plain.count {
                let result = SSL_read(self.ssl, plain.baseAddress! + filled, Int32(min(plain.count - filled, Int(Int32.max))))
                if result <= 0 {
                    // Read now: the BIO is also the write side, and a write made while the plaintext is
                    // handled (an echo) clears the retry flag this depends on.
                    status = SSL_get_error(self.ssl, result)
                    break
                }
                filled += Int(result)
                // Nothing left to read and nothing buffered: a further SSL_read would only say so, at
                // the cost of a call through OpenSSL's record layer.
                if self.input.isEmpty && SSL_has_pending(self.ssl) == 0 {
                    status = SSL_ERROR_WANT_READ
                    break
                }
            }
            if filled > 0 { connection.deliverFiltered(UnsafeMutableRawBufferPointer(rebasing: plain[0..<filled])) }
            if status == SSL_ERROR_NONE { continue }  // The buffer filled: there may be more.
            switch status {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                return
            case SSL_ERROR_ZERO_RETURN:
                connection.deliverFilteredEOF()  // close_notify.
                return
            case let code:
                self.fail(connection, TLSError(.protocolError, TLSError.drainQueue("bad TLS record (SSL error \(code))")))
                return
            }
        }
    }

    func filterWrite(_ connection: TCPConnection, _ buffers: UnsafeMutablePointer<uv_buf_t>, count: Int, total: Int) throws(UVError) {
        guard self.handshakeDone else {
            for index in 0..<count {
                self.early.append(UnsafeRawBufferPointer(start: buffers[index].base, count: buffers[index].len))
            }
            return
        }
        // Set for the BIO's write callback, and put back after: a write may come from inside a read.
        let outer = self.current
        self.current = connection
        defer { self.current = outer }
        if count == 1 {
            try self.write(connection, UnsafeRawBufferPointer(start: buffers[0].base, count: total))
        } else {
            // One record for the pieces of one write (a frame's header and payload, say).
            var scratch = self.buffers.scratch
            scratch.removeAll()
            for index in 0..<count {
                scratch.append(UnsafeRawBufferPointer(start: buffers[index].base, count: buffers[index].len))
            }
            self.buffers.scratch = scratch
            defer { if self.buffers.scratch.capacity > 1 << 20 { self.buffers.scratch.free() } }  // A large frame's copy goes.
            try self.write(connection, scratch.bytes)
        }
    }

    /// A graceful end sends close_notify before the FIN (RFC 8446 §6.1), so the peer can tell the end
    /// of the stream from a truncation. Once: OpenSSL's first `SSL_shutdown` sends it, and we do not
    /// wait for the peer's (the protocol's own close handshake has already ended the conversation).
    func filterWillShutdown(_ connection: TCPConnection) {
        guard self.handshakeDone, SSL_get_shutdown(self.ssl) & SSL_SENT_SHUTDOWN == 0 else { return }
        let outer = self.current
        self.current = connection
        defer { self.current = outer }
        if SSL_shutdown(self.ssl) < 0 { _ = TLSError.drainQueue("") }
    }

    func filterClosed(_ connection: TCPConnection) {
        self.buffers.closed()
        if !self.handshakeDone, let onHandshake = self.onHandshake {
            self.onHandshake = nil
            onHandshake(TLSError(.handshake, "the connection closed during the TLS handshake"))
        }
    }

    // MARK: Inside

    private func write(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) throws(UVError) {
        guard bytes.count > 0 else { return }
        let result = SSL_write(self.ssl, bytes.baseAddress, Int32(bytes.count))
        if result == Int32(bytes.count) { return }
        let error = TLSError(.protocolError, TLSError.drainQueue("SSL_write failed"))
        self.fail(connection, error)
        throw UVError(code: UV_EPROTO.rawValue, context: "\(error)")
    }

    private func advanceHandshake(_ connection: TCPConnection) {
        let result = SSL_do_handshake(self.ssl)
        if result == 1 {
            if self.isClient && self.verifies && SSL_get_verify_result(self.ssl) != X509_V_OK {
                self.fail(connection, self.verificationError())
                return
            }
            self.handshakeDone = true
            if !self.early.isEmpty {
                let early = self.early
                self.early = RawBuffer()
                defer {
                    var spent = early
                    spent.free()
                }
                do { try self.write(connection, early.bytes) } catch { return }
            }
            let onHandshake = self.onHandshake
            self.onHandshake = nil
            onHandshake?(nil)
            return
        }
        switch SSL_get_error(self.ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return
        default:
            let verify = SSL_get_verify_result(self.ssl)
            if self.isClient && self.verifies && verify != X509_V_OK {
                _ = TLSError.drainQueue("")
                self.fail(connection, self.verificationError())
            } else {
                self.fail(connection, TLSError(.handshake, TLSError.drainQueue("handshake failed")))
            }
        }
    }

    private func verificationError() -> TLSError {
        let code = SSL_get_verify_result(self.ssl)
        let problem = String(cString: X509_verify_cert_error_string(code))
        return TLSError(.verification, "the server's certificate did not verify", certificateProblem: problem)
    }

    private func fail(_ connection: TCPConnection, _ error: TLSError) {
        if let onHandshake = self.onHandshake {
            self.onHandshake = nil
            onHandshake(error)
        }
        connection.tcpClose(error: UVError(code: UV_EPROTO.rawValue, context: "\(error)"))
    }

    // MARK: The BIO

    fileprivate func bioRead(_ destination: UnsafeMutablePointer<CChar>, _ length: Int32, _ bio: OpaquePointer) -> Int32 {
        copenssl_bio_clear_retry(bio)
        guard self.input.count > 0 else {
            copenssl_bio_set_retry_read(bio)
            return -1
        }
        let count = min(Int(length), self.input.count)
        UnsafeMutableRawPointer(destination).copyMemory(from: self.input.baseAddress!, byteCount: count)
        self.input = UnsafeRawBufferPointer(rebasing: self.input[count...])
        return Int32(count)
    }

    fileprivate func bioWrite(_ source: UnsafePointer<CChar>, _ length: Int32, _ bio: OpaquePointer) -> Int32 {
        copenssl_bio_clear_retry(bio)
        guard let connection = self.current else { return -1 }
        var buffer = uv_buf_t(base: UnsafeMutablePointer(mutating: source), len: Int(length))
        do { try connection.submitUnfiltered(&buffer, count: 1, total: Int(length)) } catch { return -1 }
        return length
    }

    /// One BIO type for every connection, made on first use.
    nonisolated(unsafe) static let method: OpaquePointer = {
        let method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "strands-tcp")!
        _ = BIO_meth_set_write(method) { bio, data, length in
            guard let bio, let data, let owner = BIO_get_data(bio) else { return -1 }
            return Unmanaged<TLSFilter>.fromOpaque(owner).takeUnretainedValue().bioWrite(data, length, bio)
        }
        _ = BIO_meth_set_read(method) { bio, data, length in
            guard let bio, let data, let owner = BIO_get_data(bio) else { return -1 }
            return Unmanaged<TLSFilter>.fromOpaque(owner).takeUnretainedValue().bioRead(data, length, bio)
        }
        _ = BIO_meth_set_ctrl(method) { _, command, _, _ in
            command == BIO_CTRL_FLUSH ? 1 : 0
        }
        return method
    }()
}

/// A loop's TLS buffers: plaintext comes out of OpenSSL into `plaintext`; `scratch` gathers the pieces
/// of one write into one record. And the count of the loop's TLS connections, to give memory back.
final class TLSLoopBuffers {
    let plaintext = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
    var scratch = RawBuffer()
    private var open = 0
    private var peak = 0

    func opened() {
        self.open += 1
        self.peak = max(self.peak, self.open)
    }

    /// A TLS connection holds 15 to 50 KiB of OpenSSL's, in blocks malloc keeps once freed, among blocks
    /// that live on (the handshake's are freed around the connections that stay): after thousands close,
    /// the process would stay at its peak size. Once the loop has lost half its TLS connections since the
    /// peak, and at least a thousand, malloc is asked to give its free pages back (a walk of the heap,
    /// milliseconds, as rare as that).
    func closed() {
        self.open -= 1
        if self.peak - self.open >= 1024 && self.open <= self.peak / 2 {
            System.releaseFreeMemory()
            self.peak = self.open
        }
    }

    deinit {
        self.plaintext.deallocate()
        self.scratch.free()
    }
}

@available(*, unavailable)
extension TLSFilter: Sendable {}
