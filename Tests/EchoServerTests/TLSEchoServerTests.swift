import Foundation
import StrandsTestSupport
import StrandsTLS
import StrandsWS
import Testing

@Suite("echoserver over TLS", .serialized, .timeLimit(.minutes(2)))
struct TLSEchoServerTests {
    let clients: LoopGroup
    init() throws { self.clients = try LoopGroup(loopCount: 1) }

    func connect(port: Int, ca: String) async throws -> (Result<LoopBound<WebSocket>, WebSocketError>, Probe) {
        var configuration = WebSocketConfiguration()
        configuration.tls = try TLSContext.client(trust: .file(ca))
        let probe = Probe()
        let result = await connectClient(to: "wss://localhost:\(port)/ws/tls", on: self.clients.loops[0], handler: probe,
                                         configuration: configuration)
        if case .success = result { _ = await probe.events.next() }  // Opened.
        return (result, probe)
    }

    @Test("-tls-cert/-tls-key serve wss://; SIGHUP reloads the files without dropping anyone, and a bad file keeps the old certificate")
    func reload() async throws {
        let first = try TestCertificates(), second = try TestCertificates()
        let chain = first.folder.appendingPathComponent("live.pem").path, key = first.folder.appendingPathComponent("live.key").path
        try FileManager.default.copyItem(atPath: first.chain, toPath: chain)
        try FileManager.default.copyItem(atPath: first.key, toPath: key)
        let server = try ServerProcess(["-tls-cert", chain, "-tls-key", key, "-quiet"])
        defer { self.clients.shutdown(); server.stop() }
        #expect(await server.nextLine(containing: "WebSocket endpoint").contains("wss://"))

        let (early, earlyProbe) = try await self.connect(port: server.port, ca: first.ca)
        let kept = try early.get()
        // Not yet trusted: the second CA signed nothing the server has.
        #expect(try await self.connect(port: server.port, ca: second.ca).0.failure?.kind == .tlsFailed)

        for (from, to) in [(second.chain, chain), (second.key, key)] {
            try FileManager.default.removeItem(atPath: to)
            try FileManager.default.copyItem(atPath: from, toPath: to)
        }
        server.signal(SIGHUP)
        #expect(await server.nextLine(containing: "certificate reloaded") != "")
        let (fresh, freshProbe) = try await self.connect(port: server.port, ca: second.ca)
        let socket = try fresh.get()
        socket.loop.execute { socket.value.send(text: "after the reload") }
        #expect(await freshProbe.events.next() == .text("after the reload"))
        // The connection made before the reload is still open, on the old certificate.
        kept.loop.execute { kept.value.send(text: "still here") }
        #expect(await earlyProbe.events.next() == .text("still here"))

        try "not a certificate".write(toFile: chain, atomically: true, encoding: .utf8)
        server.signal(SIGHUP)
        #expect(await server.nextLine(containing: "certificate not reloaded").contains("the one in use stays"))
        #expect(try await self.connect(port: server.port, ca: second.ca).0.isSuccess)
    }

    @Test("https:// serves /health and /metrics, and ends each response with close_notify; -tls-low-memory serves the same",
          arguments: [false, true])
    func https(lowMemory: Bool) async throws {
        let certificates = try TestCertificates()
        let server = try ServerProcess(["-tls-cert", certificates.chain, "-tls-key", certificates.key, "-quiet"]
            + (lowMemory ? ["-tls-low-memory"] : []))
        defer { self.clients.shutdown(); server.stop() }
        #expect(await server.nextLine(containing: "health check").contains("https://"))
        let context = try BlockingTLSClient.Context(ca: certificates.ca)
        // A WebSocket connection is open while /health is asked, so the count it reports is checked too.
        let (socket, _) = try await self.connect(port: server.port, ca: certificates.ca)
        _ = try socket.get()
        for (path, expected) in [("/health", "\"connections\":1"), ("/metrics", "strands_connections_open 1")] {
            let client = try BlockingTLSClient(port: server.port, context: context)
            try client.write(Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8))
            let (bytes, end) = client.read()
            let response = String(decoding: bytes, as: UTF8.self)
            #expect(response.hasPrefix("HTTP/1.1 200"), "\(path): \(response.prefix(200))")
            #expect(response.contains(expected), "\(path): \(response.prefix(2000))")
            #expect(end == .closeNotify, "\(path)")
        }
    }

    @Test("a certificate file that cannot be read exits 1 with OpenSSL's reason; one flag without the other exits 2")
    func badFiles() throws {
        let certificates = try TestCertificates()
        let (status, _, errors) = try run("echoserver", ["-port", "0", "-tls-cert", "/nonexistent.pem", "-tls-key", certificates.key])
        #expect(status == 1)
        #expect(errors.contains("certificate chain /nonexistent.pem"))
        let (mismatch, _, mismatchErrors) = try run("echoserver", ["-port", "0", "-tls-cert", certificates.ca, "-tls-key", certificates.key])
        #expect(mismatch == 1)
        #expect(mismatchErrors.contains("key values mismatch"))
        let (alone, _, aloneErrors) = try run("echoserver", ["-port", "0", "-tls-cert", certificates.chain])
        #expect(alone == 2)
        #expect(aloneErrors.contains("-tls-cert and -tls-key go together"))
    }
}
