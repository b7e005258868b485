import Foundation
import StrandsLoop
import StrandsTestSupport
import StrandsTLS
import Synchronization
import Testing

struct Failure: Error, Equatable { let text: String }

/// Echoes what it reads.
final class Echo: TCPStreamDelegate, Sendable {
    func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) { try? stream.write(bytes) }
}

/// Collects what it reads, and reports when `expected` bytes have come or the stream closed.
final class Collector: TCPStreamDelegate, @unchecked Sendable {  // Safe: loop-confined but for `done`.
    var bytes: [UInt8] = []
    let expected: Int
    let done: @Sendable (Result<[UInt8], Failure>) -> Void
    init(expected: Int, done: @escaping @Sendable (Result<[UInt8], Failure>) -> Void) {
        self.expected = expected
        self.done = done
    }
    func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) {
        self.bytes.append(contentsOf: bytes)
        if self.bytes.count >= self.expected {
            self.done(.success(self.bytes))
            stream.close()
        }
    }
    func stream(_ stream: TCPStream, didCloseWith error: UVError?) {
        if self.bytes.count < self.expected { self.done(.failure(Failure(text: (error.map { "\($0)" } ?? "closed") + " after \(self.bytes.count) of \(self.expected) bytes"))) }
    }
}

@Suite("TLS on TCPStream", .serialized, .timeLimit(.minutes(1)))
struct TLSStreamTests {
    let certificates: TestCertificates
    let group: LoopGroup
    let port: Int

    init() throws {
        self.certificates = try TestCertificates()
        self.group = try LoopGroup(loopCount: 2)
        let server = try TLSContext.server(certificateChain: self.certificates.chain, privateKey: self.certificates.key)
        let echo = Echo()
        self.port = try self.group.listen(host: "127.0.0.1", port: 0) { stream in
            stream.delegate = echo
            try? stream.startTLS(server)
            stream.startReading()
        }.port
    }

    /// Connects over TLS, sends `payload`, and returns what came back (or why not), and the handshake's result.
    func exchange(_ payload: [UInt8], trust: TLSContext.Trust, serverName: String) async throws
        -> (handshake: TLSError?, echo: Result<[UInt8], Failure>, version: String?)
    {
        await self.exchange(payload, context: try TLSContext.client(trust: trust), serverName: serverName, port: self.port)
    }

    func exchange(_ payload: [UInt8], context: TLSContext, serverName: String, port: Int) async
        -> (handshake: TLSError?, echo: Result<[UInt8], Failure>, version: String?)
    {
        let version = Events<String?>()
        let handshake = Events<TLSError?>()
        let echo = Events<Result<[UInt8], Failure>>()
        let loop = self.group.loops[0]
        loop.execute {
            TCPStream.connect(on: loop, host: "127.0.0.1", port: port) { result in
                guard case .success(let stream) = result else { return echo.post(.failure(Failure(text: "connect failed"))) }
                stream.delegate = Collector(expected: payload.count) { echo.post($0) }
                do {
                    try stream.startTLS(context, serverName: serverName) { error in
                        version.post(stream.tlsProtocol.map { "\($0) \(stream.tlsApplicationProtocol ?? "no ALPN")" })
                        handshake.post(error)
                    }
                } catch {
                    handshake.post(error as? TLSError ?? TLSError(.configuration, "\(error)"))
                }
                stream.startReading()
                try? stream.write(payload)  // Before the handshake ends: it waits for it.
            }
        }
        let done = await handshake.next()
        return (done, await echo.next(), await version.next())
    }

    @Test("an echo over TLS 1.3, verified against the test CA: small and large writes come back intact")
    func echo() async throws {
        defer { self.group.shutdown() }
        let small = Array("hello over TLS".utf8)
        let (handshake, echoed, version) = try await self.exchange(small, trust: .file(self.certificates.ca), serverName: "localhost")
        #expect(handshake == nil)
        #expect(version == "TLSv1.3 http/1.1")
        #expect(try echoed.get() == small)
        let large = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }  // Many records, and backpressure.
        let (_, bigEcho, _) = try await self.exchange(large, trust: .file(self.certificates.ca), serverName: "127.0.0.1")
        #expect(try bigEcho.get() == large)
    }

    @Test("a certificate from an unknown CA, or for another name, fails verification with OpenSSL's reason")
    func verification() async throws {
        defer { self.group.shutdown() }
        let unknown = try await self.exchange([1], trust: .file(self.certificates.otherCA), serverName: "localhost")
        #expect(unknown.handshake?.kind == .verification)
        #expect(unknown.handshake?.certificateProblem == "unable to get local issuer certificate")
        let mismatch = try await self.exchange([1], trust: .file(self.certificates.ca), serverName: "example.org")
        #expect(mismatch.handshake?.kind == .verification)
        #expect(mismatch.handshake?.certificateProblem == "hostname mismatch")
        // The loudly named opt-out connects anyway.
        let insecure = try await self.exchange([7, 7], trust: .insecureNoVerification, serverName: "example.org")
        #expect(insecure.handshake == nil)
        #expect(try insecure.echo.get() == [7, 7])
    }

    @Test("several certificates: SNI picks the exact name, then a wildcard, and a client without a match gets the first")
    func sni() async throws {
        defer { self.group.shutdown() }
        let exact = try self.certificates.issue(["api.strands.test"], as: "exact")
        let wildcard = try self.certificates.issue(["*.strands.test"], as: "wildcard")
        let server = try TLSContext.server(certificates: [(self.certificates.chain, self.certificates.key), wildcard, exact])
        let echo = Echo()
        let port = try self.group.listen(host: "127.0.0.1", port: 0) { stream in
            stream.delegate = echo
            try? stream.startTLS(server)
            stream.startReading()
        }.port
        let client = try TLSContext.client(trust: .file(self.certificates.ca))
        /// The handshake's result for `name`, verified against that name.
        func handshake(_ name: String) async -> TLSError?? {
            .some(await self.exchange([1], context: client, serverName: name, port: port).handshake)
        }
        #expect(await handshake("api.strands.test") == .some(nil), "the exact certificate")
        #expect(await handshake("web.strands.test") == .some(nil), "the wildcard")
        #expect(await handshake("localhost") == .some(nil), "the first")
        // A name no certificate has: the first is served, and the client's check refuses it.
        let other = await handshake("nowhere.example")
        #expect(other??.kind == .verification)
    }

    @Test("plaintext HTTP on the TLS port is closed; the server goes on serving TLS")
    func plaintext() async throws {
        defer { self.group.shutdown() }
        let closed = Events<Result<[UInt8], Failure>>()
        let loop = self.group.loops[1]
        let port = self.port
        loop.execute {
            TCPStream.connect(on: loop, host: "127.0.0.1", port: port) { result in
                guard case .success(let stream) = result else { return closed.post(.failure(Failure(text: "connect failed"))) }
                stream.delegate = Collector(expected: 1 << 20) { closed.post($0) }
                stream.startReading()
                try? stream.write(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            }
        }
        guard case .failure = await closed.next() else {
            Issue.record("the server answered plaintext")
            return
        }
        let after = try await self.exchange([42], trust: .file(self.certificates.ca), serverName: "localhost")
        #expect(after.handshake == nil)
        #expect(try after.echo.get() == [42])
    }
}
