import StrandsTestSupport
import Synchronization
import Testing
@testable import StrandsWS

/// Every connection joins "room" and publishes what it sends there.
final class RoomHandler: WebSocketHandler {
    let joined = Events<Int>()
    let loops = Mutex<Set<ObjectIdentifier>>([])

    func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) {
        let subscribed = socket.subscribe("room")
        self.loops.withLock { _ = $0.insert(ObjectIdentifier(socket.loop)) }
        self.joined.post(subscribed ? 1 : 0)
    }

    func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
        _ = socket.publish(socket.subscribedTopics[0], message.opcode, message.bytes)
    }
}

@Suite("Topics", .timeLimit(.minutes(1)))
struct TopicTests {
    @Test("members on both loops receive what one publishes, then what the server publishes; a closed member is dropped")
    func roomAcrossLoops() async throws {
        let handler = RoomHandler()
        let harness = try Harness(handler: handler)
        defer { harness.shutdown() }
        let members = 16
        var probes: [Probe] = []
        var sockets: [LoopBound<WebSocket>] = []
        for _ in 0..<members {
            let probe = Probe()
            sockets.append(try await harness.connect("/ws/room", handler: probe).get())
            _ = await probe.events.next()  // Opened.
            probes.append(probe)
        }
        for _ in 0..<members { #expect(await handler.joined.next() == 1) }
        let topic = harness.server.topic("room")
        #expect(topic === harness.server.topic("room"), "one handle per name")
        #expect(topic.statistics.subscribers == members)
        // With 16 connections spread by the kernel over two loops, both hold members (1 in 32,768 not).
        #expect(handler.loops.withLock { $0.count } == 2)

        let first = sockets[0]
        first.loop.execute { first.value.send(text: "hello room") }
        for probe in probes { #expect(await probe.events.next() == .text("hello room")) }

        let leaving = sockets[3]
        leaving.loop.execute { leaving.value.close(code: .normalClosure) }
        #expect(await probes[3].events.next() == .closed(1000, ""))
        while topic.statistics.subscribers != members - 1 { await Task.yield() }

        #expect(harness.server.publish(topic, text: "from the server") >= 1)
        for (index, probe) in probes.enumerated() where index != 3 {
            #expect(await probe.events.next() == .text("from the server"))
        }
        // Each loop counts its deliveries once its writes are done, which may be after a member read them.
        while topic.statistics.delivered < members + members - 1 { await Task.yield() }
        let counts = topic.statistics
        #expect(counts.published == 2)
        #expect(counts.delivered == members + members - 1)
        #expect(counts.dropped == 0)
    }

    @Test("four threads publish at once through the lock-free inboxes: members on both loops get every message, each thread's in order")
    func publishersAtOnce() async throws {
        /// Client side: checks each publisher's sequence as it arrives.
        final class Sequences: WebSocketHandler {
            let next = Mutex<[Int]>([0, 0, 0, 0])
            let received = Atomic<Int>(0)
            let outOfOrder = Atomic<Int>(0)
            func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
                let parts = message.text.split(separator: ":")
                guard parts.count == 2, let thread = Int(parts[0]), let index = Int(parts[1]), (0..<4).contains(thread) else {
                    self.outOfOrder.add(1, ordering: .relaxed)
                    return
                }
                let inOrder = self.next.withLock { next in
                    defer { next[thread] = index + 1 }
                    return next[thread] == index
                }
                if !inOrder { self.outOfOrder.add(1, ordering: .relaxed) }
                self.received.add(1, ordering: .releasing)
            }
        }
        let handler = RoomHandler()
        let harness = try Harness(handler: handler)
        defer { harness.shutdown() }
        let members = (0..<8).map { _ in Sequences() }
        for member in members { _ = try await harness.connect("/ws/room", handler: member).get() }
        for _ in members { #expect(await handler.joined.next() == 1) }
        #expect(handler.loops.withLock { $0.count } == 2)
        let topic = harness.server.topic("room")
        let server = harness.server
        let perThread = 5_000
        await withTaskGroup(of: Void.self) { group in
            for thread in 0..<4 {
                group.addTask {
                    for index in 0..<perThread { _ = server.publish(topic, text: "\(thread):\(index)") }
                }
            }
        }
        let total = 4 * perThread
        while members.contains(where: { $0.received.load(ordering: .acquiring) < total }) { await Task.yield() }
        for member in members {
            #expect(member.received.load(ordering: .acquiring) == total)
            #expect(member.outOfOrder.load(ordering: .relaxed) == 0)
        }
        while topic.statistics.delivered < total * members.count { await Task.yield() }
        #expect(topic.statistics.published == total)
        #expect(topic.statistics.dropped == 0)
    }

    @Test("deflate subscribers get a publish deflated, the others plain, both the same text")
    func deflateOnce() async throws {
        final class Feed: WebSocketHandler {
            let joined = Events<Bool>()
            func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) { self.joined.post(socket.subscribe("feed")) }
            func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {}
        }
        var serverConfiguration = WebSocketConfiguration()
        serverConfiguration.compression = .shared
        let handler = Feed()
        let harness = try Harness(configuration: serverConfiguration, handler: handler)
        defer { harness.shutdown() }
        var deflating = WebSocketConfiguration()
        deflating.compression = .shared
        let compressed = Probe(), plain = Probe()
        let a = try await harness.connect("/ws/a", handler: compressed, configuration: deflating).get()
        let b = try await harness.connect("/ws/b", handler: plain).get()
        _ = await compressed.events.next()
        _ = await plain.events.next()
        for _ in 0..<2 { #expect(await handler.joined.next()) }
        let topic = harness.server.topic("feed")
        #expect(topic.deflateSubscribers.load(ordering: .relaxed) == 1)
        let record = "{\"type\":\"quote\",\"symbol\":\"ACME\",\"bid\":101.25,\"ask\":101.5},"
        let text = String(repeating: record, count: 400)  // 23 KiB, very compressible.
        for index in 0..<20 { harness.server.publish(topic, text: "\(index)" + text) }
        for index in 0..<20 {
            #expect(await compressed.events.next() == .text("\(index)" + text))
            #expect(await plain.events.next() == .text("\(index)" + text))
        }
        let counts = Events<(UInt64, UInt64)>()
        a.loop.execute {
            counts.post((a.value.wireByteCounts?.received ?? 0, b.value.wireByteCounts?.received ?? 0))
        }
        let (deflated, uncompressed) = await counts.next()
        #expect(uncompressed > 20 * text.utf8.count)
        #expect(deflated * 10 < uncompressed, "the deflate subscriber got \(deflated) bytes, the plain one \(uncompressed)")
    }

    @Test("a context-takeover subscriber reads its own deflated replies and the topic's deflated frames in any order")
    func deflateWithTakeover() async throws {
        /// Answers each message itself (with its own compressor's history) and publishes it to "feed".
        final class Both: WebSocketHandler {
            let joined = Events<Bool>()
            func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) { self.joined.post(socket.subscribe("feed")) }
            func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
                socket.send(text: "direct " + message.text)
                _ = socket.publish(socket.subscribedTopics[0], .text, message.bytes)
            }
        }
        var configuration = WebSocketConfiguration()
        configuration.compression = WebSocketCompression(mode: .dedicated)
        let handler = Both()
        let harness = try Harness(configuration: configuration, handler: handler)
        defer { harness.shutdown() }
        let probe = Probe()
        let socket = try await harness.connect("/ws/t", handler: probe, configuration: configuration).get()
        _ = await probe.events.next()
        #expect(await handler.joined.next())
        let body = String(repeating: "the same words again and again, ", count: 40)
        for index in 0..<30 {
            socket.loop.execute { socket.value.send(text: "\(index) " + body) }
            // Its own reply first (sent at once), then the topic's (flushed at the end of the turn).
            #expect(await probe.events.next() == .text("direct \(index) " + body))
            #expect(await probe.events.next() == .text("\(index) " + body))
        }
    }

    @Test("a member that never reads costs at most its send cap and is closed; the others get all 256 MiB")
    func stuckMember() async throws {
        /// Server side: every connection joins "feed"; the one on /ws/stuck is kept to be watched.
        final class Feed: WebSocketHandler {
            let joined = Events<Int>()
            let stuck = Mutex<LoopBound<WebSocket>?>(nil)
            func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) {
                socket.subscribe("feed")
                if request.path == "/ws/stuck" { self.stuck.withLock { $0 = LoopBound(socket, loop: socket.loop) } }
                self.joined.post(1)
            }
            func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {}
        }
        /// Client side: counts what arrives without keeping it.
        final class Counter: WebSocketHandler {
            let bytes = Atomic<Int>(0)
            let messages = Atomic<Int>(0)
            func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
                self.bytes.add(message.bytes.count, ordering: .relaxed)
                self.messages.add(1, ordering: .releasing)
            }
        }
        var configuration = WebSocketConfiguration()
        configuration.closeTimeout = .milliseconds(300)
        let handler = Feed()
        let harness = try Harness(configuration: configuration, handler: handler)
        defer { harness.shutdown() }
        let readers = [Counter(), Counter()]
        var clientConfiguration = WebSocketConfiguration()
        clientConfiguration.maxMessageSize = 1 << 20
        for reader in readers { _ = try await harness.connect("/ws/feed", handler: reader, configuration: clientConfiguration).get() }
        let stuckClient = try await harness.connect("/ws/stuck", handler: Counter(), configuration: clientConfiguration).get()
        stuckClient.loop.execute { stuckClient.value.pauseReading() }
        for _ in 0..<3 { _ = await handler.joined.next() }
        let stuck = try #require(handler.stuck.withLock { $0 })
        // The handler holds the connection, which holds the server's registry, which holds the handler:
        // let the cycle go at the end (LeakSanitizer finds it otherwise).
        defer { handler.stuck.withLock { $0 = nil } }
        let topic = harness.server.topic("feed")

        let payload = [UInt8](repeating: 0x5A, count: 64 << 10)
        let total = 4096  // 256 MiB
        let cap = WebSocketConfiguration().maxPendingBytes
        let largest = Mutex(0)
        for batch in stride(from: 0, to: total, by: 64) {
            for _ in 0..<64 { payload.withUnsafeBytes { _ = harness.server.publish(topic, .binary, $0) } }
            // Paced by the readers: the next batch goes once they have this one.
            while readers.contains(where: { $0.messages.load(ordering: .acquiring) < batch + 64 }) { await Task.yield() }
            stuck.loop.execute { largest.withLock { $0 = max($0, stuck.value.pendingWriteBytes) } }
        }
        for reader in readers {
            #expect(reader.messages.load(ordering: .acquiring) == total)
            #expect(reader.bytes.load(ordering: .relaxed) == total * payload.count)
        }
        #expect(largest.withLock { $0 } <= cap + 64, "the stuck member held more than its cap")
        // Closed with 1008 over its cap, then dropped at the close timeout, since it reads nothing.
        while topic.statistics.subscribers != 2 { await Task.yield() }
        #expect(topic.statistics.dropped >= 1)
        #expect(topic.statistics.delivered >= 2 * total)
    }

    @Test("rooms that peers name and leave do not pile up; a handle stays while held; another server's handle is refused")
    func roomsGo() async throws {
        /// Joins the room its path names, as echoserver -pubsub does.
        final class Named: WebSocketHandler {
            let joined = Events<Bool>()
            func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) { self.joined.post(socket.subscribe(String(request.path))) }
            func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {}
        }
        let handler = Named()
        let harness = try Harness(handler: handler)
        defer { harness.shutdown() }
        let table = harness.server.topicTable
        var probes: [Probe] = []
        var sockets: [LoopBound<WebSocket>] = []
        for index in 0..<50 {
            let probe = Probe()
            sockets.append(try await harness.connect("/ws/room-\(index)", handler: probe).get())
            _ = await probe.events.next()
            #expect(await handler.joined.next())
            probes.append(probe)
        }
        #expect(table.counts == (names: 50, ids: 50))
        var kept: Topic? = harness.server.topic("/ws/room-7")
        for (socket, probe) in zip(sockets, probes) {
            socket.loop.execute { socket.value.close(code: .normalClosure) }
            _ = await probe.events.next()
        }
        // Each room goes with its last member's close; the one this test holds stays, and is the same.
        while table.counts != (names: 1, ids: 1) { await Task.yield() }
        #expect(kept === harness.server.topic("/ws/room-7"))
        kept = nil
        #expect(table.counts == (names: 0, ids: 0))
        // Ids are reused: a new room takes a freed one rather than growing every loop's list.
        let fresh = harness.server.topic("new")
        #expect(fresh.id < 50)

        // A handle from another server's table is refused by this server's connections.
        final class Foreign: WebSocketHandler {
            let topic: Topic
            let result = Events<Bool>()
            init(_ topic: Topic) { self.topic = topic }
            func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) { self.result.post(socket.subscribe(self.topic)) }
            func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {}
        }
        let foreign = Foreign(harness.server.topic("elsewhere"))
        let other = try Harness(handler: foreign)
        defer { other.shutdown() }
        let probe = Probe()
        _ = try await other.connect("/ws/x", handler: probe).get()
        #expect(await foreign.result.next() == false)
        #expect(foreign.topic.statistics.subscribers == 0)
    }

    @Test("subscribe twice, unsubscribe, and a client connection cannot subscribe")
    func subscribeRules() async throws {
        let probe = Probe()
        let subscribed = Events<[Bool]>()
        final class Rules: WebSocketHandler {
            let results: Events<[Bool]>
            init(_ results: Events<[Bool]>) { self.results = results }
            func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) {
                let a = socket.subscribe("t"), b = socket.subscribe("t"), c = socket.unsubscribe(socket.subscribedTopics[0])
                let d = socket.unsubscribe(socket.server_topic("t")), e = socket.subscribedTopics.isEmpty
                self.results.post([a, b, c, d, e])
            }
            func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {}
        }
        let harness = try Harness(handler: Rules(subscribed))
        defer { harness.shutdown() }
        let socket = try await harness.connect(handler: probe).get()
        #expect(await subscribed.next() == [true, false, true, false, true])
        let client = Events<Bool>()
        socket.loop.execute { client.post(socket.value.subscribe("t")) }
        #expect(await client.next() == false)
        #expect(harness.server.topic("t").statistics.subscribers == 0)
    }
}

extension WebSocket {
    /// The server's handle for `name`, through this connection's loop (tests only).
    func server_topic(_ name: String) -> Topic { self.registry.topics!.table.topic(name) }
}
