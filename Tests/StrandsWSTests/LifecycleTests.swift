import StrandsTestSupport
import Testing
@testable import StrandsWS

/// Keepalive, the send cap, graceful shutdown, what `send` and `close` report, and the extension seam,
/// over loopback.
@Suite("Connection lifecycle over loopback", .serialized, .timeLimit(.minutes(1)))
struct LifecycleTests {
    @Test("a silent peer gets pings after the ping interval, then the 1001 idle close at the idle timeout")
    func keepaliveClosesSilentPeer() async throws {
        var configuration = WebSocketConfiguration()
        configuration.pingInterval = .milliseconds(100)
        configuration.idleTimeout = .milliseconds(500)
        configuration.closeTimeout = .milliseconds(300)  // The peer never answers the close either.
        let harness = try Harness(configuration: configuration, handler: Probe())
        defer { harness.shutdown() }
        let started = ContinuousClock.now
        // A raw peer: it upgrades, then reads and never sends (it does not answer pings).
        let bytes = await harness.rawBytes(upgradeRequest())
        let elapsed = ContinuousClock.now - started
        let frames = serverFrames(after: bytes)
        #expect(frames.first?.opcode == 0x9, "\(frames)")  // A ping first,
        #expect(frames.filter { $0.opcode == 0x9 }.count == 1)  // one per silence,
        let close = frames.last
        #expect(close?.opcode == 0x8)  // then the close frame:
        #expect(close?.payload.prefix(2) == [0x03, 0xE9])  // 1001,
        #expect(close.map { String(decoding: $0.payload.dropFirst(2), as: UTF8.self) } == "idle timeout")
        // At the configured timeouts, not the defaults (75 s idle, 5 s close).
        #expect(elapsed >= .milliseconds(700) && elapsed < .seconds(3), "\(elapsed)")
    }

    @Test("a peer that answers pings stays open past the idle timeout")
    func keepaliveKeepsLivePeer() async throws {
        var configuration = WebSocketConfiguration()
        configuration.pingInterval = .milliseconds(60)
        configuration.idleTimeout = .milliseconds(250)
        let serverSide = Probe()
        let harness = try Harness(configuration: configuration, handler: serverSide)
        defer { harness.shutdown() }
        var quiet = WebSocketConfiguration()
        quiet.pingInterval = .zero  // The client only answers.
        quiet.idleTimeout = .zero
        // Timed from before the connect: events can only be seen later than they happen (a loaded machine
        // may hand over several queued at once), so the time seen by the eighth pong is at least the seven
        // ping intervals (420 ms) the server let pass, past the idle timeout, and cannot come out shorter.
        let started = ContinuousClock.now
        let socket = try await harness.connect(handler: Probe(), configuration: quiet).get()
        #expect(await serverSide.events.next() == .opened(path: "/ws/test", subprotocol: nil))
        for _ in 0..<8 { #expect(await serverSide.events.next() == .pong([])) }
        #expect(ContinuousClock.now - started > .milliseconds(250))
        let open = Events<Bool>()
        socket.loop.execute { open.post(socket.value.isOpen) }
        #expect(await open.next())
    }

    @Test("a peer that never reads while the server pushes costs at most the cap, then is closed with 1008")
    func sendCapCloses() async throws {
        let pusher = Pusher()
        var configuration = WebSocketConfiguration()
        configuration.maxPendingBytes = 1 << 20
        configuration.highWaterMark = 256 << 10
        configuration.closeTimeout = .milliseconds(200)
        let harness = try Harness(configuration: configuration, handler: pusher)
        defer { harness.shutdown() }
        let peer = try await StalledPeer.connect(port: harness.port, on: harness.loop)
        let outcome = await pusher.outcomes.next()
        #expect(outcome.refusal == .overCap)
        #expect(outcome.accepted > 0)
        #expect(outcome.maxPending <= 1 << 20, "pending reached \(outcome.maxPending)")
        #expect(outcome.sawBackpressure)
        #expect(await pusher.closes.next() == .closed(1008, "send buffer limit exceeded"))
        peer.close()
    }

    @Test("with the drop policy, sends over the cap are refused and the connection stays open")
    func sendCapDrops() async throws {
        let pusher = Pusher()
        var configuration = WebSocketConfiguration()
        configuration.maxPendingBytes = 1 << 20
        configuration.sendCapPolicy = .drop
        let harness = try Harness(configuration: configuration, handler: pusher)
        defer { harness.shutdown() }
        let peer = try await StalledPeer.connect(port: harness.port, on: harness.loop)
        let outcome = await pusher.outcomes.next()
        #expect(outcome.refusal == .overCap)
        #expect(outcome.maxPending <= 1 << 20)
        #expect(outcome.openAfter)
        peer.close()
        #expect(await pusher.closes.next() == .closed(1006, ""))
    }

    @Test("closeAll: open connections get 1001, one still sending its request gets 503, and both completions run")
    func shutdownCoversHandshakes() async throws {
        let serverSide = Probe()
        let harness = try Harness(handler: serverSide)
        defer { harness.shutdown() }
        let client = Probe()
        _ = try await harness.connect(handler: client).get()
        _ = await client.events.next()
        let partial = try await PartialRequest.start(port: harness.port, on: harness.loop)
        let done = Events<Int>()
        harness.server.closeAll { done.post(1) }
        harness.server.closeAll { done.post(2) }  // A second call keeps the first one's completion.
        #expect(await client.events.next() == .closed(1001, "server shutting down"))
        // Every server loop has run its part of closeAll (tasks run in order) before the request completes:
        // a request completing at the same moment may be upgraded or refused, and the test wants the latter.
        let ran = Events<Int>()
        for loop in harness.serverGroup.loops { loop.execute { ran.post(loop.index) } }
        for _ in harness.serverGroup.loops { _ = await ran.next() }
        // The request completes after the shutdown began: refused, not upgraded.
        let response = await partial.finish()
        #expect(response.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"), "\(response.prefix(40))")
        let first = await done.next(), second = await done.next()
        #expect(Set([first, second]) == [1, 2])
        #expect(harness.server.statistics().open == 0)
    }

    @Test("send reports sent, refused out of sequence, refused when not open; close refuses codes that may not be sent")
    func sendAndCloseResults() async throws {
        let harness = try Harness(handler: Probe(echo: true))
        defer { harness.shutdown() }
        let client = Probe()
        let socket = try await harness.connect(handler: client).get()
        _ = await client.events.next()
        let results = Events<[SendResult]>()
        socket.loop.execute {
            let ws = socket.value
            var seen: [SendResult] = [ws.send(text: "a")]
            seen.append(Array("x".utf8).withUnsafeBytes { ws.send(.continuation, $0) })
            seen.append(Array("x".utf8).withUnsafeBytes { ws.send(.close, $0) })
            seen.append(Array("x".utf8).withUnsafeBytes { ws.send(Opcode(rawValue: 3), $0) })
            seen.append([UInt8](repeating: 0, count: 126).withUnsafeBytes { ws.sendPing($0) })
            seen.append(Array("frag".utf8).withUnsafeBytes { ws.send(.text, $0, fin: false) })
            seen.append(ws.send(text: "inside"))  // A new message inside a fragmented one.
            seen.append(Array("ment".utf8).withUnsafeBytes { ws.send(.continuation, $0, fin: true) })
            results.post(seen)
        }
        #expect(await results.next() == [.sent, .invalid, .invalid, .invalid, .invalid, .sent, .invalid, .sent])
        #expect(await client.events.next() == .text("a"))
        #expect(await client.events.next() == .text("fragment"))
        socket.loop.execute {
            let ws = socket.value
            var seen: [SendResult] = []
            for code: UInt16 in [1005, 1006, 1015, 999, 1016, 2999, 5000] { seen.append(ws.close(code: CloseCode(code))) }
            seen.append(ws.isOpen ? .sent : .notOpen)  // None of those closed it.
            seen.append(ws.close(code: CloseCode(4000), reason: "done"))
            seen.append(ws.send(text: "late"))
            seen.append(ws.close())
            results.post(seen)
        }
        #expect(await results.next() == [
            .invalid, .invalid, .invalid, .invalid, .invalid, .invalid, .invalid, .sent, .sent, .notOpen, .notOpen,
        ])
        #expect(await client.events.next() == .closed(4000, ""))
    }

    @Test("a negotiated extension owns its RSV bit: both sides transform every message, and the bit passes the parser")
    func extensionSeam() async throws {
        let reverse = Reverse()
        var configuration = WebSocketConfiguration()
        configuration.extensions = [reverse]
        let serverSide = Probe(echo: true)
        let harness = try Harness(configuration: configuration, handler: serverSide)
        defer { harness.shutdown() }
        let client = Probe()
        let socket = try await harness.connect(handler: client, configuration: configuration).get()
        _ = await client.events.next()
        _ = await serverSide.events.next()
        socket.loop.execute { socket.value.send(text: "hello") }
        #expect(await serverSide.events.next() == .text("hello"))
        #expect(await client.events.next() == .text("hello"))
        #expect(reverse.encoded.withLock { $0 } == 2 && reverse.decoded.withLock { $0 } == 2)

        // On the wire the message is reversed, with RSV1 set; the 101 names the extension.
        let raw = await harness.rawBytes(upgradeRequest(extra: [("Sec-WebSocket-Extensions", "x-reverse")])
            + frame(.text, Array("olleh".utf8), rsv: 0x4) + frame(.close, [0x03, 0xE8]))
        let text = String(decoding: raw, as: UTF8.self)
        #expect(text.contains("Sec-WebSocket-Extensions: x-reverse\r\n"))
        let frames = serverFrames(after: raw)
        #expect(frames.first?.byte0 == 0xC1)  // FIN, RSV1, text
        #expect(frames.first?.payload == Array("olleh".utf8))

        // A server without the extension declines it: the message with RSV1 is a protocol error there.
        let plain = try Harness(handler: Probe(echo: true))
        defer { plain.shutdown() }
        let refused = await plain.rawBytes(upgradeRequest(extra: [("Sec-WebSocket-Extensions", "x-reverse")])
            + frame(.text, Array("olleh".utf8), rsv: 0x4))
        #expect(!String(decoding: refused, as: UTF8.self).contains("Sec-WebSocket-Extensions"))
        #expect(serverFrames(after: refused).last?.payload.prefix(2) == [0x03, 0xEA])  // 1002

        // A malformed offer is a bad request.
        let malformed = await harness.raw(upgradeRequest(extra: [("Sec-WebSocket-Extensions", "x-reverse; =1")]))
        #expect(malformed.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
    }
}

/// Pushes 64 KiB messages from a timer (not in answer to reads) once a connection opens, until a send
/// is refused; reports what it saw.
final class Pusher: WebSocketHandler, @unchecked Sendable {  // Safe: state touched on the server's loops only.
    struct Outcome: Sendable {
        var accepted = 0
        var refusal: SendResult?
        var maxPending = 0
        var sawBackpressure = false
        var openAfter = false
    }
    let outcomes = Events<Outcome>()
    let closes = Events<Seen>()
    let payload = [UInt8](repeating: 0x55, count: 64 << 10)

    func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) {
        var outcome = Outcome()
        var timer: LoopTimer?
        timer = socket.loop.scheduleTimer(after: .milliseconds(1), repeating: .milliseconds(1)) { [payload] in
            for _ in 0..<8 {
                let result = socket.send(binary: payload)
                outcome.maxPending = max(outcome.maxPending, socket.pendingWriteBytes)
                if result == .backpressure { outcome.sawBackpressure = true }
                if result.isAccepted {
                    outcome.accepted += 1
                    continue
                }
                outcome.refusal = result
                outcome.openAfter = socket.isOpen
                timer?.cancel()
                timer = nil
                self.outcomes.post(outcome)
                return
            }
        }
    }

    func webSocket(_ socket: WebSocket, didCloseWith code: CloseCode, reason: String) {
        self.closes.post(.closed(code.rawValue, reason))
    }
}

/// A raw TCP peer that upgrades, then stops reading: the kernel's buffers fill and it never drains them.
final class StalledPeer: TCPStreamDelegate, @unchecked Sendable {  // Safe: used on its loop only.
    let stream: LoopBound<TCPStream>
    private let opened: Events<Bool>
    private var seen: [UInt8] = []

    private init(stream: TCPStream, opened: Events<Bool>) {
        self.stream = LoopBound(stream, loop: stream.loop)
        self.opened = opened
    }

    static func connect(port: Int, on loop: Loop) async throws -> StalledPeer {
        let made = Events<StalledPeer?>()
        let opened = Events<Bool>()
        loop.execute {
            TCPStream.connect(on: loop, host: "127.0.0.1", port: port) { result in
                guard case .success(let stream) = result else { return made.post(nil) }
                let peer = StalledPeer(stream: stream, opened: opened)
                stream.delegate = peer
                stream.startReading()
                try? stream.write(upgradeRequest())
                made.post(peer)
            }
        }
        guard let peer = await made.next() else { throw UVError.connectionRefused }
        #expect(await opened.next())
        return peer
    }

    func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) {
        self.seen += bytes
        if self.seen.count >= 4, self.seen.suffix(4) == [13, 10, 13, 10] || self.seen.count > 100 {
            stream.stopReading()  // The 101 is in: from now on, nothing is read.
            self.opened.post(true)
        }
    }

    func close() {
        let stream = self.stream
        stream.loop.execute { stream.value.close() }
    }
}

/// An upgrade request sent all but its last CRLF, finished on demand; collects the response.
final class PartialRequest: TCPStreamDelegate, @unchecked Sendable {  // Safe: used on its loop only.
    let stream: LoopBound<TCPStream>
    private var bytes: [UInt8] = []
    private let done = Events<String>()

    private init(stream: TCPStream) { self.stream = LoopBound(stream, loop: stream.loop) }

    static func start(port: Int, on loop: Loop) async throws -> PartialRequest {
        let made = Events<PartialRequest?>()
        loop.execute {
            TCPStream.connect(on: loop, host: "127.0.0.1", port: port) { result in
                guard case .success(let stream) = result else { return made.post(nil) }
                let request = PartialRequest(stream: stream)
                stream.delegate = request
                stream.startReading()
                try? stream.write(Array(upgradeRequest().dropLast(2)))
                made.post(request)
            }
        }
        guard let request = await made.next() else { throw UVError.connectionRefused }
        return request
    }

    /// Sends the final CRLF; returns everything the server sent until it closed.
    func finish() async -> String {
        let stream = self.stream
        stream.loop.execute { try? stream.value.write([13, 10]) }
        return await self.done.next()
    }

    func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) { self.bytes += bytes }
    func stream(_ stream: TCPStream, didCloseWith error: UVError?) {
        self.done.post(String(decoding: self.bytes, as: UTF8.self))
    }
}

/// A toy extension owning RSV1: every message is sent reversed with RSV1 set, and reversed back.
final class Reverse: WebSocketExtensionFactory {
    let name = "x-reverse"
    let rsvBits: UInt8 = 0x40
    let encoded = Locked(0)
    let decoded = Locked(0)

    func answer(offers: [ExtensionOffer]) throws(ExtensionNegotiationError) -> ExtensionOffer? {
        ExtensionOffer(name: self.name)
    }
    func offers() -> [ExtensionOffer] { [ExtensionOffer(name: self.name)] }
    func accept(answer: ExtensionOffer) throws(ExtensionNegotiationError) {}
    func makeExtension(answer: ExtensionOffer, isClient: Bool, loop: Loop) -> any WebSocketExtension {
        Reversing(factory: self)
    }

    final class Reversing: WebSocketExtension {
        let factory: Reverse
        init(factory: Reverse) { self.factory = factory }
        func decode(_ payload: UnsafeMutableRawBufferPointer, opcode: Opcode, rsv: UInt8,
                    deliver: (UnsafeRawBufferPointer) -> Void) -> (code: CloseCode, reason: String)? {
            self.factory.decoded.withLock { $0 += 1 }
            Array(payload.reversed()).withUnsafeBytes(deliver)
            return nil
        }
        func encode(_ payload: UnsafeRawBufferPointer, opcode: Opcode, emit: (UnsafeRawBufferPointer, UInt8) -> Void) {
            self.factory.encoded.withLock { $0 += 1 }
            Array(payload.reversed()).withUnsafeBytes { emit($0, 0x40) }
        }
        func release() {}
    }
}

/// The server frames after the 101 response in `bytes` (unmasked, as a server sends them).
func serverFrames(after bytes: [UInt8]) -> [(byte0: UInt8, opcode: UInt8, payload: [UInt8])] {
    guard let end = (0..<max(bytes.count - 3, 0)).first(where: { bytes[$0..<$0 + 4] == [13, 10, 13, 10] }) else {
        return []
    }
    var frames: [(byte0: UInt8, opcode: UInt8, payload: [UInt8])] = []
    var p = end + 4
    while p + 2 <= bytes.count {
        var length = Int(bytes[p + 1] & 0x7F), header = 2
        if length == 126 {
            guard p + 4 <= bytes.count else { break }
            length = Int(bytes[p + 2]) << 8 | Int(bytes[p + 3])
            header = 4
        }
        guard p + header + length <= bytes.count else { break }
        frames.append((bytes[p], bytes[p] & 0x0F, Array(bytes[(p + header)..<(p + header + length)])))
        p += header + length
    }
    return frames
}
