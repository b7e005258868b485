import COpenSSL

/// An OpenSSL context (`SSL_CTX`): certificates, trust and protocol settings, shared by the
/// connections made from it, on any loop (OpenSSL allows that once the context is configured; it is
/// never changed after `init`: a reload makes a new context).
///
/// TLS 1.2 and 1.3 only; renegotiation refused; session tickets on (OpenSSL's default); ALPN
/// `http/1.1` (a server picks it when offered, a client offers it).
public final class TLSContext: @unchecked Sendable {  // Safe: configured in init, then only read.
    public enum Role: Sendable { case server, client }

    /// Where a client finds the certificates it trusts.
    public enum Trust: Sendable, Equatable {
        /// The system's CA store (Debian: `ca-certificates`, /etc/ssl/certs).
        case system
        /// The CAs in this PEM file, only.
        case file(String)
        /// No verification at all. For tests against certificates nobody signed: loudly named, because
        /// it lets anyone in the middle read and change the traffic.
        case insecureNoVerification
    }

    public let role: Role
    let context: OpaquePointer
    /// Client: whether peer certificates are verified (and the host name checked).
    let verifies: Bool
    /// Server: the other certificates, chosen by the client's SNI name (see ``server(certificates:)``).
    private var alternatives: [TLSContext] = []

    /// A server context from a PEM certificate chain (leaf first) and its PEM private key.
    ///
    /// - Parameter releasesIdleBuffers: free a connection's record buffers (about 33 KiB) whenever they
    ///   are empty, as OpenSSL's `SSL_MODE_RELEASE_BUFFERS` does: an idle TLS connection then holds about
    ///   15 KiB instead of 48 KiB, and each record costs an allocation and a free (a few per cent of a
    ///   small-message echo; see Docs/Benchmarks.md). For servers of many mostly idle connections.
    public static func server(certificateChain: String, privateKey: String, releasesIdleBuffers: Bool = false) throws(TLSError) -> TLSContext {
        let context = try TLSContext(role: .server, verifies: false, releasesIdleBuffers: releasesIdleBuffers)
        guard SSL_CTX_use_certificate_chain_file(context.context, certificateChain) == 1 else {
            throw TLSError(.configuration, "certificate chain \(certificateChain): " + TLSError.drainQueue("cannot be read"))
        }
        guard SSL_CTX_use_PrivateKey_file(context.context, privateKey, SSL_FILETYPE_PEM) == 1 else {
            throw TLSError(.configuration, "private key \(privateKey): " + TLSError.drainQueue("cannot be read"))
        }
        guard SSL_CTX_check_private_key(context.context) == 1 else {
            throw TLSError(.configuration, "private key \(privateKey) does not match certificate \(certificateChain): "
                + TLSError.drainQueue("mismatch"))
        }
        return context
    }

    /// A server context with several certificates, each a PEM chain and key: the client's SNI name picks
    /// the one whose certificate names it exactly, else one whose wildcard covers it (RFC 6125), else
    /// the first, which is also what a client without SNI gets.
    public static func server(certificates: [(chain: String, key: String)], releasesIdleBuffers: Bool = false) throws(TLSError) -> TLSContext {
        guard let first = certificates.first else { throw TLSError(.configuration, "no certificate given") }
        let main = try TLSContext.server(certificateChain: first.chain, privateKey: first.key, releasesIdleBuffers: releasesIdleBuffers)
        guard certificates.count > 1 else { return main }
        var others: [TLSContext] = []
        for entry in certificates.dropFirst() {
            others.append(try TLSContext.server(certificateChain: entry.chain, privateKey: entry.key, releasesIdleBuffers: releasesIdleBuffers))
        }
        main.alternatives = others
        _ = copenssl_ctx_set_servername_callback(main.context, { ssl, _, argument in
            guard let ssl, let argument, let name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) else {
                return copenssl_tlsext_err_ok
            }
            let owner = Unmanaged<TLSContext>.fromOpaque(argument).takeUnretainedValue()
            if let chosen = owner.certificate(for: name) { _ = SSL_set_SSL_CTX(ssl, chosen.context) }
            return copenssl_tlsext_err_ok
        }, Unmanaged.passUnretained(main).toOpaque())
        return main
    }

    /// The context whose certificate names `name`: exactly first, then by a wildcard.
    private func certificate(for name: UnsafePointer<CChar>) -> TLSContext? {
        for flags in [UInt32(X509_CHECK_FLAG_NO_WILDCARDS), 0] {
            for candidate in CollectionOfOne(self) + self.alternatives {
                guard let certificate = SSL_CTX_get0_certificate(candidate.context) else { continue }
                if X509_check_host(certificate, name, 0, flags, nil) == 1 { return candidate }
            }
        }
        return nil
    }

    /// A client context that trusts `trust`; peers' certificates are verified, and their host name
    /// checked against the name connected to, unless `trust` is ``Trust/insecureNoVerification``.
    /// `releasesIdleBuffers` is as for ``server(certificateChain:privateKey:releasesIdleBuffers:)``.
    public static func client(trust: Trust = .system, releasesIdleBuffers: Bool = false) throws(TLSError) -> TLSContext {
        let context = try TLSContext(role: .client, verifies: trust != .insecureNoVerification, releasesIdleBuffers: releasesIdleBuffers)
        switch trust {
        case .system:
            guard SSL_CTX_set_default_verify_paths(context.context) == 1 else {
                throw TLSError(.configuration, "system CA store: " + TLSError.drainQueue("cannot be loaded"))
            }
        case .file(let path):
            guard SSL_CTX_load_verify_locations(context.context, path, nil) == 1 else {
                throw TLSError(.configuration, "CA file \(path): " + TLSError.drainQueue("cannot be read"))
            }
        case .insecureNoVerification:
            break
        }
        SSL_CTX_set_verify(context.context, context.verifies ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nil)
        return context
    }

    private init(role: Role, verifies: Bool, releasesIdleBuffers: Bool) throws(TLSError) {
        guard let made = SSL_CTX_new(role == .server ? TLS_server_method() : TLS_client_method()) else {
            throw TLSError(.configuration, TLSError.drainQueue("SSL_CTX_new failed"))
        }
        self.context = made
        self.role = role
        self.verifies = verifies
        _ = copenssl_ctx_set_min_proto(made, TLS1_2_VERSION)
        _ = copenssl_ctx_set_options(made, copenssl_op_no_renegotiation())
        if releasesIdleBuffers { _ = copenssl_ctx_set_mode(made, Int(SSL_MODE_RELEASE_BUFFERS)) }
        if role == .server { copenssl_ctx_select_http11(made) } else { _ = copenssl_ctx_offer_http11(made) }
    }

    deinit { SSL_CTX_free(self.context) }
}
