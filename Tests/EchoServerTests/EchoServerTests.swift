import Foundation
import StrandsTestSupport
import StrandsWS
import Testing

@Suite("echoserver binary", .serialized, .timeLimit(.minutes(2)))
struct EchoServerTests {
    let clients: LoopGroup

    init() throws {
        self.clients = try LoopGroup(loopCount: 1)
    }

    var loop: Loop { self.clients.loops[0] }

    /// The whole HTTP response to `GET path`, as text.
    func get(_ path: String, port: Int) async -> String {
        String(decoding: await rawExchange(Array("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n".utf8), port: port, on: self.loop),
               as: UTF8.self)
    }

    /// A client on `path` that has sent `count` texts and had each echoed, still open.
    func echoedClient(_ count: Int, port: Int, path: String) async throws -> LoopBound<WebSocket> {
        let probe = Probe()
        let socket = try await connectClient(to: "ws://127.0.0.1:\(port)\(path)", on: self.loop, handler: probe).get()
        _ = await probe.events.next()
        socket.loop.execute { for i in 0..<count { socket.value.send(text: "\(i)") } }
        for i in 0..<count { #expect(await probe.events.next() == .text("\(i)")) }
        return socket
    }

    @Test("echoes text and binary up to the limit with their own type; past it closes with 1009")
    func echoAndLimit() async throws {
        let server = try ServerProcess(["-max-message", "65536", "-quiet"])
        defer { self.clients.shutdown(); server.stop() }
        let probe = Probe()
        var configuration = WebSocketConfiguration()
        configuration.maxMessageSize = 1 << 20
        let socket = try await connectClient(to: "ws://127.0.0.1:\(server.port)/ws/perf", on: self.loop, handler: probe,
                                             configuration: configuration).get()
        _ = await probe.events.next()
        socket.loop.execute {
            socket.value.send(text: "hello ✓")
            socket.value.send(binary: pattern(65536))
        }
        #expect(await probe.events.next() == .text("hello ✓"))
        #expect(await probe.events.next() == .binary(pattern(65536)))
        socket.loop.execute { socket.value.send(binary: pattern(65537)) }
        #expect(await probe.events.next() == .closed(1009, "message larger than 65536 bytes"))
    }

    /// The pids whose command line has `-shared-port` and `-parent-pid parent`: a `-procs` set's others.
    func sharedPortChildren(of parent: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let words = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard let at = words.firstIndex(of: "-parent-pid"), at + 1 < words.count else { return false }
            return words.contains("-shared-port") && words[at + 1] == "\(parent)"
        }
    }

    @Test("-procs 3: three processes serve one port, clients reach them all, and SIGTERM ends the set")
    func processSet() async throws {
        let server = try ServerProcess(["-procs", "3", "-workers", "1", "-quiet"])
        defer { server.stop() }
        let parent = server.process.processIdentifier
        #expect(server.outputText.contains("in each of 3 processes"))
        let children = self.sharedPortChildren(of: parent)
        #expect(children.count == 2)
        let (status, output, _) = try run("perftest", ["-host", "127.0.0.1:\(server.port)", "-clients", "60", "-duration", "1"])
        #expect(status == 0)
        #expect(output.contains("Connected:       60/60"))
        #expect(output.contains("Lost:            0 (0.00%)"))
        // Each process counts its own connections: their /health answers differ from one another.
        var seen = Set<String>()
        for _ in 0..<30 { seen.insert(await self.get("/health", port: server.port)) }
        #expect(seen.count >= 2, "every /health answer the same: \(seen)")
        kill(parent, SIGTERM)
        server.process.waitUntilExit()
        #expect(server.process.terminationStatus == 0)
        // The others are waited for by the first, so they are gone too.
        #expect(self.sharedPortChildren(of: parent).isEmpty)
        #expect(children.allSatisfy { kill($0, 0) != 0 })
    }

    @Test("/health reports live counts; other paths and upgrades outside /ws/ get 404")
    func healthAnd404() async throws {
        let server = try ServerProcess(["-quiet"])
        defer { self.clients.shutdown(); server.stop() }
        let socket = try await self.echoedClient(5, port: server.port, path: "/ws/x")
        defer { withExtendedLifetime(socket) {} }

        let health = await self.get("/health", port: server.port)
        #expect(health.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(health.contains("Content-Type: application/json"))
        #expect(health.hasSuffix("{\"status\":\"ok\",\"connections\":1,\"messages\":5,\"errors\":0}"))

        let missing = await self.get("/other", port: server.port)
        #expect(missing.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        let outside = await connectClient(to: "ws://127.0.0.1:\(server.port)/chat", on: self.loop, handler: Probe())
        #expect(outside.failure?.message == "handshake failed: server answered '404 Not Found'")
    }

    @Test("/metrics gives the live counters in Prometheus' text format")
    func metrics() async throws {
        let server = try ServerProcess(["-quiet"])
        defer { self.clients.shutdown(); server.stop() }
        let socket = try await self.echoedClient(7, port: server.port, path: "/ws/m")
        defer { withExtendedLifetime(socket) {} }

        let response = await self.get("/metrics", port: server.port)
        #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(response.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"))
        let body = response.split(separator: "\r\n\r\n", maxSplits: 1).last.map(String.init) ?? ""
        var samples: [String: String] = [:]
        for line in body.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            #expect(parts.count == 2, "a sample is a name and a value: \(line)")
            if parts.count == 2 { samples[String(parts[0])] = String(parts[1]) }
        }
        #expect(samples["strands_connections_open"] == "1")
        #expect(samples["strands_connections_opened_total"] == "1")
        #expect(samples["strands_messages_received_total"] == "7")
        #expect(samples["strands_messages_sent_total"] == "7")
        #expect(samples["strands_connection_errors_total"] == "0")
        #expect(body.contains("# TYPE strands_connections_open gauge\n"))
        #expect(body.contains("# TYPE strands_messages_sent_total counter\n"))
        // Seven small texts each way, the handshake, and this request so far: some hundreds of bytes.
        #expect(Int(samples["strands_tcp_bytes_received_total"] ?? "") ?? 0 > 7 * 6)
        #expect(Int(samples["strands_tcp_bytes_sent_total"] ?? "") ?? 0 > 7 * 2)

        // Errors by cause: a request that is not HTTP (handshake) and an oversized message (too big). A
        // rejected upgrade is the application's answer, not an error.
        _ = await connectClient(to: "ws://127.0.0.1:\(server.port)/elsewhere", on: self.loop, handler: Probe())
        let garbage = String(decoding: await rawExchange(Array("NOT HTTP AT ALL\r\n\r\n".utf8), port: server.port, on: self.loop),
                             as: UTF8.self)
        #expect(garbage.hasPrefix("HTTP/1.1 400 "))
        let big = Probe()
        var configuration = WebSocketConfiguration()
        configuration.maxMessageSize = 4 << 20
        let sender = try await connectClient(to: "ws://127.0.0.1:\(server.port)/ws/big", on: self.loop, handler: big,
                                             configuration: configuration).get()
        _ = await big.events.next()
        sender.loop.execute { sender.value.send(binary: pattern((1 << 20) + 1)) }
        #expect(await big.events.next() == .closed(1009, "message larger than 1048576 bytes"))
        var causes: [String: String] = [:]
        while causes["strands_connection_errors_by_cause_total{cause=\"too_big\"}"] != "1" {
            let text = await self.get("/metrics", port: server.port)
            for line in text.split(separator: "\n") where line.hasPrefix("strands_connection_errors_by_cause_total{") {
                let parts = line.split(separator: " ")
                causes[String(parts[0])] = String(parts[1])
            }
        }
        #expect(causes["strands_connection_errors_by_cause_total{cause=\"handshake\"}"] == "1")
        #expect(causes["strands_connection_errors_by_cause_total{cause=\"protocol\"}"] == "0")
        #expect(causes.count == 6)
    }

    @Test("-pubsub: a message on /ws/room/NAME reaches every member of NAME, the sender too, and no one else")
    func pubsubRooms() async throws {
        let server = try ServerProcess(["-quiet", "-pubsub"])
        defer { self.clients.shutdown(); server.stop() }
        func open(_ path: String) async throws -> (Probe, LoopBound<WebSocket>) {
            let probe = Probe()
            let socket = try await connectClient(to: "ws://127.0.0.1:\(server.port)\(path)", on: self.loop, handler: probe).get()
            _ = await probe.events.next()
            return (probe, socket)
        }
        let roomA = [try await open("/ws/room/a"), try await open("/ws/room/a"), try await open("/ws/room/a")]
        let roomB = try await open("/ws/room/b")
        let echo = try await open("/ws/echo")
        // Every member has joined once /metrics counts them.
        func metrics() async -> String { await self.get("/metrics", port: server.port) }
        while !(await metrics()).contains("strands_topic_subscribers{topic=\"a\"} 3\n") { await Task.yield() }

        let sender = roomA[1].1
        sender.loop.execute { sender.value.send(text: "hello a") }
        for (probe, _) in roomA { #expect(await probe.events.next() == .text("hello a")) }
        // b heard nothing of it: the next thing it hears is its own message.
        let b = roomB.1
        b.loop.execute { b.value.send(text: "hello b") }
        #expect(await roomB.0.events.next() == .text("hello b"))
        let e = echo.1
        e.loop.execute { e.value.send(text: "plain echo") }
        #expect(await echo.0.events.next() == .text("plain echo"))
        // A loop counts its deliveries once its writes are done, which may be after a member read them.
        var text = await metrics()
        while !text.contains("strands_topic_delivered_total{topic=\"a\"} 3\n") { await Task.yield(); text = await metrics() }
        #expect(text.contains("strands_topic_published_total{topic=\"a\"} 1\n"))
        #expect(text.contains("strands_topic_delivered_total{topic=\"b\"} 1\n"))
        #expect(text.contains("strands_topics 2\n"))
    }

    @Test("SIGTERM closes every client with 1001, then the server exits 0")
    func gracefulShutdown() async throws {
        let server = try ServerProcess([])
        defer { self.clients.shutdown(); server.stop() }
        let probes = [Probe(), Probe(), Probe()]
        for probe in probes {
            _ = try await connectClient(to: "ws://127.0.0.1:\(server.port)/ws/\(probes.count)", on: self.loop, handler: probe).get()
            _ = await probe.events.next()
        }
        server.signal(SIGTERM)
        for probe in probes {
            #expect(await probe.events.next() == .closed(1001, "server shutting down"))
        }
        #expect(server.waitForExit() == 0)
        #expect(server.outputText.contains("shutting down"))
        #expect(server.outputText.contains("stopped"))
    }

    @Test("-ping-interval and -idle-timeout: a silent client is pinged, then closed with 1001 as idle; 0 turns both off")
    func keepaliveFlags() async throws {
        let server = try ServerProcess(["-quiet", "-ping-interval", "0.1", "-idle-timeout", "0.4"])
        defer { self.clients.shutdown(); server.stop() }
        let probe = Probe()
        var quiet = WebSocketConfiguration()
        quiet.pingInterval = .zero
        quiet.idleTimeout = .zero
        quiet.closeTimeout = .milliseconds(300)
        // This client answers pings but sends nothing else: the answers keep it alive...
        _ = try await connectClient(to: "ws://127.0.0.1:\(server.port)/ws/k", on: self.loop, handler: probe,
                                    configuration: quiet).get()
        #expect(await probe.events.next() == .opened(path: "/ws/k", subprotocol: nil))
        // ...while one that never answers (a raw upgrade, reading only) is closed as idle.
        let bytes = await rawExchange(Array(("GET /ws/raw HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").utf8),
                                      port: server.port, on: self.loop)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 101"))
        #expect(bytes.suffix(16) == [0x88, 14, 0x03, 0xE9] + Array("idle timeout".utf8))
        #expect(bytes.contains(0x89))  // A ping went out first.
        let open = Events<Bool>()
        self.loop.execute { open.post(true) }
        _ = await open.next()
        let health = await rawExchange(Array("GET /health HTTP/1.1\r\nHost: x\r\n\r\n".utf8), port: server.port, on: self.loop)
        #expect(String(decoding: health, as: UTF8.self).contains("\"connections\":1"))  // The answering client is still there.
    }

    @Test("the stats line reports connections, messages, rate and errors")
    func statsLine() async throws {
        let server = try ServerProcess(["-stats-interval", "0.2"])
        defer { self.clients.shutdown(); server.stop() }
        let probe = Probe()
        let socket = try await connectClient(to: "ws://127.0.0.1:\(server.port)/ws/s", on: self.loop, handler: probe).get()
        _ = await probe.events.next()
        socket.loop.execute { for i in 0..<7 { socket.value.send(text: "\(i)") } }
        for i in 0..<7 { #expect(await probe.events.next() == .text("\(i)")) }
        let line = await server.nextLine(containing: "messages=7")
        #expect(line.contains("info echoserver: stats"))
        #expect(line.contains("connections=1"))
        #expect(line.contains("errors=0"))
        #expect(line.contains("rate="))
    }

    @Test("a second signal during the grace period exits at once")
    func secondSignal() async throws {
        let server = try ServerProcess(["-quiet", "-grace", "60"])
        defer { self.clients.shutdown(); server.stop() }
        // A client that upgrades and then never reads, so it never answers the server's close.
        let mute = Blaster()
        let loop = self.loop
        let port = server.port
        loop.execute { mute.start(on: loop, port: port, send: false) }
        _ = await mute.upgradedEvent.next()
        server.signal(SIGTERM)
        _ = await server.nextLine(containing: "shutting down")
        server.signal(SIGTERM)
        #expect(server.waitForExit() == 128 + SIGTERM)
        #expect(server.errorText.contains("second signal"))
    }

    @Test("a client that sends without reading cannot grow the server's memory past a bound")
    func backpressureBoundsMemory() async throws {
        let server = try ServerProcess(["-quiet", "-workers", "1"])
        defer { self.clients.shutdown(); server.stop() }
        let before = server.residentBytes
        let port = server.port
        let loop = self.loop
        let blasters = (0..<3).map { _ in Blaster() }
        for blaster in blasters { loop.execute { blaster.start(on: loop, port: port) } }
        // Each client keeps writing until TCP flow control stops it: the server stopped reading because
        // the echoes it owes pile up unread. Wait for that stall (no progress for a second).
        var sent = 0
        for blaster in blasters { sent += await blaster.stalled.next() }
        let after = server.residentBytes
        let growth = after - before
        // Bound: per connection the 1 MiB high-water mark of pending echoes plus one 64 KiB read, and
        // allocator slack. The kernel's socket buffers (a few MiB each way) are not the server's memory.
        let bound = 8 << 20
        print("backpressure: 3 clients sent \(sent) bytes; server RSS \(before) -> \(after) (+\(growth))")
        #expect(sent > 2 * bound, "the clients only managed \(sent) bytes: the test proves nothing")
        #expect(growth < bound, "server grew by \(growth) bytes (from \(before) to \(after)) after \(sent) bytes sent")
        // And it still serves others.
        let health = String(decoding: await rawExchange(Array("GET /health HTTP/1.1\r\nHost: x\r\n\r\n".utf8),
                                                        port: port, on: loop), as: UTF8.self)
        #expect(health.contains("\"connections\":3"))
    }

    @Test("a port in use or an address that cannot be bound: one clear line on stderr, non-zero exit")
    func bindErrors() throws {
        let server = try ServerProcess(["-quiet"])
        defer { self.clients.shutdown(); server.stop() }
        let (status, _, errors) = try run("echoserver", ["-port", "\(server.port)", "-host", "127.0.0.1", "-quiet"])
        #expect(status != 0)
        #expect(errors == "echoserver: cannot listen on 127.0.0.1:\(server.port): EADDRINUSE (address already in use)\n")
        let (status2, _, errors2) = try run("echoserver", ["-port", "0", "-host", "192.0.2.1", "-quiet"])
        #expect(status2 != 0)
        #expect(errors2.hasPrefix("echoserver: cannot listen on 192.0.2.1:0: EADDRNOTAVAIL"))
        // -parent-pid must name the process that started the server.
        let (status3, _, errors3) = try run("echoserver", ["-port", "0", "-host", "127.0.0.1", "-quiet", "-parent-pid", "1"])
        #expect(status3 == 1)
        #expect(errors3 == "echoserver: -parent-pid 1: not this process's parent (or it has ended)\n")
    }

    @Test("bad flags and values exit 2 with a message; --help exits 0", arguments: [
        ["-port", "abc"], ["-port", "70000"], ["-workers", "-1"], ["-max-message", "0"], ["--bogus"], ["-grace", "x"],
        ["-ping-interval", "-1"], ["-idle-timeout", "x"],
    ])
    func badFlags(arguments: [String]) throws {
        defer { self.clients.shutdown() }
        let (status, output, errors) = try run("echoserver", arguments)
        #expect(status == 2)
        #expect(output.isEmpty)
        #expect(errors.hasPrefix("echoserver: "))
        #expect(errors.contains("--help"))
    }

    @Test("both flag spellings work, and --help describes them")
    func spellings() throws {
        defer { self.clients.shutdown() }
        let (status, help, _) = try run("echoserver", ["--help"])
        #expect(status == 0)
        for flag in ["-port", "--port", "-workers", "-host", "-max-message", "-quiet", "-ping-interval", "-idle-timeout"] {
            #expect(help.contains(flag))
        }
        let server = try ServerProcess(["--quiet", "--workers", "1"])
        #expect(server.port > 0)
        server.stop()
    }
}

/// Upgrades, then writes 64 KiB binary frames as fast as its own send buffer allows, never reading.
/// Posts the bytes sent once a full second passes without progress.
final class Blaster: TCPStreamDelegate, @unchecked Sendable {  // Safe: used on one loop after start.
    let stalled = Events<Int>()
    let upgradedEvent = Events<Bool>()
    var send = true
    var sent = 0
    var lastProgress = 0
    var stream: TCPStream?
    var frame: [UInt8] = []
    var upgraded = false
    var watchdog: LoopTimer?

    func start(on loop: Loop, port: Int, send: Bool = true) {
        self.send = send
        var header: [UInt8] = [0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44]  // masked, 64-bit length
        header[2...9] = [0, 0, 0, 0, 0, 1, 0, 0]
        self.frame = header + [UInt8](repeating: 0x5A, count: 65536)
        TCPStream.connect(on: loop, host: "127.0.0.1", port: port) { result in
            guard case .success(let stream) = result else { return self.stalled.post(-1) }
            self.stream = stream
            stream.delegate = self
            stream.startReading()
            let request = "GET /ws/blast HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            try? stream.write(Array(request.utf8))
        }
    }

    func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) {
        guard !self.upgraded else { return }
        // The 101 arrived: from now on, never read again.
        self.upgraded = true
        stream.stopReading()
        self.upgradedEvent.post(true)
        guard self.send else { return }
        self.pump(stream)
        self.watchdog = stream.loop.scheduleTimer(after: .seconds(1), repeating: .seconds(1)) { [unowned self] in
            if self.sent == self.lastProgress {
                self.watchdog?.cancel()
                self.stalled.post(self.sent)
            }
            self.lastProgress = self.sent
        }
    }

    func pump(_ stream: TCPStream) {
        while stream.pendingWriteBytes < 4 * self.frame.count && !stream.isClosing {
            guard (try? stream.write(self.frame)) != nil else { return }
            self.sent += self.frame.count
        }
    }

    func streamDidDrain(_ stream: TCPStream) { if self.upgraded { self.pump(stream) } }
}
