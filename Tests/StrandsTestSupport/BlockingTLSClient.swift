import COpenSSL
import Foundation

/// A blocking TLS client on a plain socket, through OpenSSL's own socket BIO: for tests that need what
/// the library's client does not do, or a peer built apart from it (TLS 1.2 only, a renegotiation,
/// session resumption, telling a close_notify from a bare FIN). Every call gives up after `timeout`
/// seconds (socket timeouts), so a test fails instead of hanging.
public final class BlockingTLSClient {
    /// Trust and settings, shared by the connections that should resume each other's sessions.
    public final class Context {
        let context: OpaquePointer

        public init(ca: String, maxVersion: Int32? = nil) throws {
            guard let made = SSL_CTX_new(TLS_client_method()) else { throw CertificateError(description: "SSL_CTX_new") }
            self.context = made
            guard SSL_CTX_load_verify_locations(made, ca, nil) == 1 else { throw CertificateError(description: "CA \(ca)") }
            SSL_CTX_set_verify(made, SSL_VERIFY_PEER, nil)
            if let maxVersion { _ = copenssl_ctx_set_max_proto(made, maxVersion) }
        }

        deinit { SSL_CTX_free(self.context) }
    }

    public let ssl: OpaquePointer
    private let fd: Int32
    private let context: Context

    /// Connects to 127.0.0.1:`port` and completes the handshake for `serverName` (SNI and the name
    /// checked), offering `session` for resumption.
    public init(port: Int, context: Context, serverName: String = "localhost", session: OpaquePointer? = nil,
                timeout: Int = 5) throws {
        self.context = context
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CertificateError(description: "socket: \(errno)") }
        self.fd = fd
        var limit = timeval(tv_sec: timeout, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard let ssl = SSL_new(context.context) else {
            close(fd)
            throw CertificateError(description: "SSL_new")
        }
        self.ssl = ssl
        guard connected == 0 else { throw CertificateError(description: "connect to \(port): errno \(errno)") }
        _ = SSL_set_fd(ssl, fd)
        _ = copenssl_set_host_name(ssl, serverName)
        _ = SSL_set1_host(ssl, serverName)
        if let session { _ = SSL_set_session(ssl, session) }
        guard SSL_connect(ssl) == 1 else { throw CertificateError(description: "handshake: \(Self.errors())") }
    }

    deinit {
        SSL_free(self.ssl)
        close(self.fd)
    }

    /// "TLSv1.3", "TLSv1.2".
    public var version: String { String(cString: SSL_get_version(self.ssl)) }
    /// The handshake resumed the session offered.
    public var resumed: Bool { SSL_session_reused(self.ssl) == 1 }
    /// The session to offer next time (TLS 1.3 tickets come after the handshake: read something first).
    /// The caller frees it with `SSL_SESSION_free`.
    public func session() -> OpaquePointer? { SSL_get1_session(self.ssl) }

    public func write(_ bytes: [UInt8]) throws {
        let written = bytes.withUnsafeBytes { SSL_write(self.ssl, $0.baseAddress, Int32($0.count)) }
        guard written == Int32(bytes.count) else { throw CertificateError(description: "write: \(Self.errors())") }
    }

    /// How a read ended when it stopped short.
    public enum End: Equatable, Sendable {
        /// The peer's close_notify: the end of its stream, as TLS marks it.
        case closeNotify
        /// The connection ended without one (a bare FIN or a reset), or the read failed: OpenSSL's reason.
        case broken(String)
    }

    /// Reads until `count` bytes have come, or the stream ends (with how); `count` nil: until the end.
    public func read(count: Int? = nil) -> (bytes: [UInt8], end: End?) {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while count.map({ bytes.count < $0 }) ?? true {
            let got = chunk.withUnsafeMutableBytes { SSL_read(self.ssl, $0.baseAddress, Int32($0.count)) }
            if got > 0 {
                bytes += chunk[0..<Int(got)]
                continue
            }
            let code = SSL_get_error(self.ssl, got)
            return (bytes, code == SSL_ERROR_ZERO_RETURN ? .closeNotify : .broken("SSL error \(code): \(Self.errors())"))
        }
        return (bytes, nil)
    }

    /// Asks for a renegotiation (TLS 1.2) and runs the handshake: `true` if the server took part.
    public func renegotiate() -> Bool {
        guard SSL_renegotiate(self.ssl) == 1 else { return false }
        return SSL_do_handshake(self.ssl) == 1 && SSL_renegotiate_pending(self.ssl) == 0
    }

    /// OpenSSL's error queue, emptied, as text.
    static func errors() -> String {
        var parts: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var text = [UInt8](repeating: 0, count: 256)
            text.withUnsafeMutableBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { ERR_error_string_n(code, $0.baseAddress, $0.count) }
            }
            parts.append(String(decoding: text.prefix { $0 != 0 }, as: UTF8.self))
        }
        return parts.isEmpty ? "no OpenSSL error" : parts.joined(separator: "; ")
    }
}
