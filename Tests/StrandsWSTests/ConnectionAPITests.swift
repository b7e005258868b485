import StrandsTestSupport
import Testing
@testable import StrandsWS

/// What an application does with a connection besides sending: pausing, draining, its own state,
/// where its loop runs, closing from another thread.
@Suite("Connection API", .serialized, .timeLimit(.minutes(1)))
struct ConnectionAPITests {
    @Test("pauseReading stops reading from the peer until resumeReading; nothing is lost meanwhile")
    func pauseAndResume() async throws {
        final class Pausing: WebSocketHandler {
            let events = Events<String>()
            func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) { socket.pauseReading() }
            func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
                self.events.post(message.text)
                socket.send(message.opcode, message.bytes)
            }
        }
        let serverSide = Pausing()
        let harness = try Harness(handler: serverSide)
        defer { harness.shutdown() }
        let client = Probe()
        let socket = try await harness.connect(handler: client).get()
        _ = await client.events.next()
        socket.loop.execute {
            for i in 0..<3 { socket.value.send(text: "m\(i)") }
        }
        // The server's connection is not reading; resuming it delivers what waited in the kernel.
        let paused = Events<Bool>()
        for loop in harness.serverGroup.loops {
            loop.execute {
                for socket in WebSocketServerTestAccess.sockets(harness.server, on: loop) where socket.isOpen {
                    paused.post(!socket.tcpIsReading)
                    socket.resumeReading()
                }
            }
        }
        #expect(await paused.next())
        for i in 0..<3 { #expect(await serverSide.events.next() == "m\(i)") }
        for i in 0..<3 { #expect(await client.events.next() == .text("m\(i)")) }
    }

    @Test("the handler hears the drain once a backlog is written; pendingWriteBytes counts the backlog")
    func drain() async throws {
        final class Drains: WebSocketHandler, @unchecked Sendable {  // Safe: touched on the client's loop only.
            let events = Events<String>()
            func webSocketDidDrain(_ socket: WebSocket) { self.events.post("drained \(socket.pendingWriteBytes)") }
            func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
                self.events.post("echo \(message.bytes.count)")
            }
        }
        var large = WebSocketConfiguration()
        large.maxMessageSize = 16 << 20
        large.maxPendingBytes = 16 << 20
        let harness = try Harness(configuration: large, handler: Probe(echo: true))
        defer { harness.shutdown() }
        let client = Drains()
        let socket = try await harness.connect(handler: client, configuration: large).get()
        let pending = Events<Int>()
        socket.loop.execute {
            // Far more than the kernel takes at once: part of it is queued.
            let big = [UInt8](repeating: 7, count: 8 << 20)
            let result = socket.value.send(binary: big)
            pending.post(result == .backpressure ? socket.value.pendingWriteBytes : -1)
        }
        let queued = await pending.next()
        #expect(queued > 1 << 20 && queued <= 8 << 20, "\(queued)")  // Above the 1 MiB high-water mark.
        #expect(await client.events.next() == "drained 0")
        #expect(await client.events.next() == "echo \(8 << 20)")
    }

    @Test("context holds the application's state from open to close and is let go after")
    func context() async throws {
        final class Session { let name: String; init(name: String) { self.name = name } }
        final class Keeps: WebSocketHandler, @unchecked Sendable {  // Safe: touched on the server's loops only.
            let events = Events<String>()
            weak var session: Session?
            func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) {
                let session = Session(name: String(request.path.dropFirst(4)))
                self.session = session
                socket.context = session
                socket.userData = 42
            }
            func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
                self.events.post("\((socket.context as? Session)?.name ?? "-") \(socket.userData)")
            }
            func webSocket(_ socket: WebSocket, didCloseWith code: CloseCode, reason: String) {
                socket.loop.execute { self.events.post(self.session == nil ? "released" : "kept") }
            }
        }
        let serverSide = Keeps()
        let harness = try Harness(handler: serverSide)
        defer { harness.shutdown() }
        let client = Probe()
        let socket = try await harness.connect("/ws/alice", handler: client).get()
        _ = await client.events.next()
        socket.loop.execute { socket.value.send(text: "hi") }
        #expect(await serverSide.events.next() == "alice 42")
        socket.loop.execute { socket.value.close() }
        #expect(await serverSide.events.next() == "released")
    }

    @Test("a loop group pins each loop's thread to its own CPU, or leaves it free")
    func loopPinning() async throws {
        let cpus = System.allowedCPUs
        let pinned = try LoopGroup(loopCount: 1, pinning: .cpus([cpus.last!]))
        let free = try LoopGroup(loopCount: 1, pinning: .none)
        defer {
            pinned.shutdown()
            free.shutdown()
        }
        let seen = Events<[Int]>()
        pinned.loops[0].execute { seen.post(System.allowedCPUs) }
        #expect(await seen.next() == [cpus.last!])
        free.loops[0].execute { seen.post(System.allowedCPUs) }
        #expect(await seen.next() == cpus)
    }

    @Test("sender.close from another thread closes with its code and reason")
    func senderClose() async throws {
        let serverSide = Probe()
        let harness = try Harness(handler: serverSide)
        defer { harness.shutdown() }
        let client = Probe()
        let socket = try await harness.connect(handler: client).get()
        _ = await serverSide.events.next()
        let sender = await withCheckedContinuation { continuation in
            socket.loop.execute { continuation.resume(returning: socket.value.sender) }
        }
        sender.close(code: CloseCode(4001), reason: "from afar")  // from this (non-loop) thread
        #expect(await serverSide.events.next() == .closed(4001, "from afar"))
        #expect(await client.events.next() == .opened(path: "/ws/test", subprotocol: nil))
        #expect(await client.events.next() == .closed(4001, ""))
    }
}

/// Reaches a server's connections on one loop, for tests.
enum WebSocketServerTestAccess {
    static func sockets(_ server: WebSocketServer, on loop: Loop) -> [WebSocket] {
        server.registries[loop.index].value.sockets
    }
}
