import COpenSSL
import StrandsLoop
import StrandsTestSupport
import StrandsTLS
import Testing

/// Echoes what it reads; a read holding "bye" is echoed and then the stream half-closes (FIN after
/// whatever the filter sends to end its stream).
final class EchoThenEnd: TCPStreamDelegate, Sendable {
    func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) {
        try? stream.write(bytes)
        if bytes.count >= 3 && bytes.starts(with: Array("bye".utf8)) { stream.shutdownWrite() }
    }
    func streamDidReachEOF(_ stream: TCPStream) { stream.close() }
}

/// The server against a peer built on OpenSSL alone (``BlockingTLSClient``): what our own client does
/// not do, and what it could not tell.
@Suite("TLS against a plain OpenSSL peer", .serialized, .timeLimit(.minutes(1)))
struct TLSPeerTests {
    let certificates: TestCertificates
    let group: LoopGroup
    let port: Int

    init() throws {
        self.certificates = try TestCertificates()
        self.group = try LoopGroup(loopCount: 1)
        let server = try TLSContext.server(certificateChain: self.certificates.chain, privateKey: self.certificates.key)
        let echo = EchoThenEnd()
        self.port = try self.group.listen(host: "127.0.0.1", port: 0) { stream in
            stream.delegate = echo
            try? stream.startTLS(server)
            stream.startReading()
        }.port
    }

    /// One echo of `bytes` on `client`.
    func echo(_ client: BlockingTLSClient, _ bytes: [UInt8]) throws -> [UInt8] {
        try client.write(bytes)
        return client.read(count: bytes.count).bytes
    }

    @Test("TLS 1.2 works; a renegotiation it asks for is refused, and the server goes on serving")
    func renegotiation() throws {
        defer { self.group.shutdown() }
        let tls12 = try BlockingTLSClient.Context(ca: self.certificates.ca, maxVersion: TLS1_2_VERSION)
        let client = try BlockingTLSClient(port: self.port, context: tls12)
        #expect(client.version == "TLSv1.2")
        #expect(try self.echo(client, Array("before".utf8)) == Array("before".utf8))
        #expect(!client.renegotiate(), "the server renegotiated")
        // Whatever the refused client does next, a new connection is served.
        let next = try BlockingTLSClient(port: self.port, context: tls12)
        #expect(try self.echo(next, Array("after".utf8)) == Array("after".utf8))
    }

    @Test("a TLS 1.3 session ticket resumes the session on the next connection")
    func resumption() throws {
        defer { self.group.shutdown() }
        let context = try BlockingTLSClient.Context(ca: self.certificates.ca)
        let first = try BlockingTLSClient(port: self.port, context: context)
        #expect(first.version == "TLSv1.3")
        #expect(!first.resumed)
        #expect(try self.echo(first, [1, 2, 3]) == [1, 2, 3])  // The tickets came before the echo.
        let session = try #require(first.session())
        defer { SSL_SESSION_free(session) }
        #expect(SSL_SESSION_is_resumable(session) == 1)
        let second = try BlockingTLSClient(port: self.port, context: context, session: session)
        #expect(second.resumed)
        #expect(try self.echo(second, [4, 5]) == [4, 5])
    }

    @Test("a graceful end sends close_notify before the FIN: the peer sees a clean end, not a truncation")
    func closeNotify() throws {
        defer { self.group.shutdown() }
        let client = try BlockingTLSClient(port: self.port, context: try BlockingTLSClient.Context(ca: self.certificates.ca))
        try client.write(Array("bye".utf8))
        let (bytes, end) = client.read()
        #expect(bytes == Array("bye".utf8))
        #expect(end == .closeNotify)
    }

    @Test("an expired certificate fails our client's verification with that reason")
    func expired() async throws {
        defer { self.group.shutdown() }
        let expired = try self.certificates.issue(["localhost"], as: "expired", days: -1)
        let server = try TLSContext.server(certificateChain: expired.chain, privateKey: expired.key)
        let port = try self.group.listen(host: "127.0.0.1", port: 0) { stream in
            try? stream.startTLS(server)
            stream.startReading()
        }.port
        let client = try TLSContext.client(trust: .file(self.certificates.ca))
        let outcome = Events<TLSError?>()
        let loop = self.group.loops[0]
        loop.execute {
            TCPStream.connect(on: loop, host: "127.0.0.1", port: port) { result in
                guard case .success(let stream) = result else { return outcome.post(TLSError(.handshake, "connect failed")) }
                do {
                    try stream.startTLS(client, serverName: "localhost") { outcome.post($0) }
                } catch {
                    outcome.post(TLSError(.configuration, "\(error)"))
                }
                stream.startReading()
            }
        }
        let error = await outcome.next()
        #expect(error?.kind == .verification)
        #expect(error?.certificateProblem == "certificate has expired", "\(String(describing: error))")
    }
}
