import StrandsLoop
import StrandsTestSupport
import StrandsTLS
import StrandsWS
import Testing

@Suite("wss://", .serialized, .timeLimit(.minutes(1)))
struct WSSTests {
    let certificates: TestCertificates
    let serverGroup: LoopGroup
    let clientGroup: LoopGroup
    let port: Int
    /// The same server on ::1, which its certificate does not name.
    let port6: Int

    init() throws {
        self.certificates = try TestCertificates()
        self.serverGroup = try LoopGroup(loopCount: 2)
        self.clientGroup = try LoopGroup(loopCount: 1)
        var configuration = WebSocketConfiguration()
        configuration.tls = try TLSContext.server(certificateChain: self.certificates.chain, privateKey: self.certificates.key)
        configuration.maxMessageSize = 1 << 20
        let server = WebSocketServer(group: self.serverGroup, configuration: configuration, handler: Probe(echo: true))
        self.port = try server.listen(host: "127.0.0.1", port: 0).port
        self.port6 = try server.listen(host: "::1", port: 0).port
    }

    func shutdown() {
        self.clientGroup.shutdown()
        self.serverGroup.shutdown()
    }

    func connect(trust: TLSContext.Trust, host: String = "localhost", port: Int? = nil, probe: Probe) async throws
        -> Result<LoopBound<WebSocket>, WebSocketError>
    {
        var configuration = WebSocketConfiguration()
        configuration.tls = try TLSContext.client(trust: trust)
        configuration.maxMessageSize = 1 << 20
        return await connectClient(to: "wss://\(host):\(port ?? self.port)/ws/secure", on: self.clientGroup.loops[0], handler: probe,
                                   configuration: configuration)
    }

    @Test("a wss:// client and server: texts and a 200 KB binary echo through TLS")
    func echo() async throws {
        defer { self.shutdown() }
        let probe = Probe()
        let socket = try await self.connect(trust: .file(self.certificates.ca), probe: probe).get()
        #expect(await probe.events.next() == .opened(path: "/ws/secure", subprotocol: nil))
        let big = pattern(200_000)
        socket.loop.execute {
            socket.value.send(text: "hello ✓")
            socket.value.send(binary: big)
        }
        #expect(await probe.events.next() == .text("hello ✓"))
        #expect(await probe.events.next() == .binary(big))
        socket.loop.execute { socket.value.close(code: .normalClosure) }
        #expect(await probe.events.next() == .closed(1000, ""))
    }

    @Test("a server certificate from an unknown CA or for another name: tlsFailed, with the certificate's problem")
    func verification() async throws {
        defer { self.shutdown() }
        let unknown = try await self.connect(trust: .file(self.certificates.otherCA), probe: Probe())
        #expect(unknown.failure?.kind == .tlsFailed)
        #expect(unknown.failure?.message.contains("unable to get local issuer certificate") == true, "\(String(describing: unknown.failure))")
        let mismatch = try await self.connect(trust: .file(self.certificates.ca), host: "[::1]", port: self.port6, probe: Probe())
        #expect(mismatch.failure?.kind == .tlsFailed)
        #expect(mismatch.failure?.message.contains("IP address mismatch") == true, "\(String(describing: mismatch.failure))")
    }

    @Test("a TLS handshake that stalls is closed at the handshake timeout; clients that vanish mid-handshake are each let go")
    func stalledHandshake() async throws {
        defer { self.shutdown() }
        var configuration = WebSocketConfiguration()
        configuration.tls = try TLSContext.server(certificateChain: self.certificates.chain, privateKey: self.certificates.key)
        configuration.handshakeTimeout = .milliseconds(200)
        let server = WebSocketServer(group: self.serverGroup, configuration: configuration, handler: Probe(echo: true))
        let port = try server.listen(host: "127.0.0.1", port: 0).port
        let loop = self.clientGroup.loops[0]
        // The start of a ClientHello record, then silence: the server must give up by itself.
        let started = ContinuousClock.now
        let stalled = await rawExchange([0x16, 0x03, 0x01, 0x02, 0x00, 0x01], port: port, on: loop)
        #expect(stalled.isEmpty)
        #expect(ContinuousClock.now - started >= .milliseconds(190))
        // Clients that send half a ClientHello and go: the server is left with no connection.
        for _ in 0..<20 {
            let events = Events<Bool>()
            loop.execute {
                TCPStream.connect(on: loop, host: "127.0.0.1", port: port) { result in
                    if case .success(let stream) = result {
                        try? stream.write([0x16, 0x03, 0x01, 0x02, 0x00])
                        stream.close()
                    }
                    events.post(true)
                }
            }
            _ = await events.next()
        }
        // Each was closed and let go: its TLS layer reports the handshake it never finished.
        while server.statistics().errorsByCause.handshake < 20 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(server.statistics().errorsByCause.timeout == 1, "the stalled one")
        // And it still serves.
        var client = WebSocketConfiguration()
        client.tls = try TLSContext.client(trust: .file(self.certificates.ca))
        let probe = Probe()
        let socket = try await connectClient(to: "wss://localhost:\(port)/ws/after", on: loop, handler: probe, configuration: client).get()
        _ = await probe.events.next()
        socket.loop.execute { socket.value.send(text: "still serving") }
        #expect(await probe.events.next() == .text("still serving"))
    }

    @Test("wss:// without a TLS context in the configuration is refused with the reason")
    func needsContext() async throws {
        defer { self.shutdown() }
        let result = await connectClient(to: "wss://localhost:\(self.port)/", on: self.clientGroup.loops[0], handler: Probe())
        #expect(result.failure?.kind == .invalidURL)
        #expect(result.failure?.message.contains("needs configuration.tls") == true)
    }
}
