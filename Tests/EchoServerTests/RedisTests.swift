import Foundation
import StrandsTestSupport
import StrandsWS
import Synchronization
import Testing

/// A real `redis-server` on a free loopback port, without persistence; killed when released.
final class RedisServer: @unchecked Sendable {  // Safe: `child` is replaced only by `restart`, from the test.
    let port: Int
    private var child: ServerChild

    init() throws {
        var lastError: (any Error)?
        for _ in 0..<5 {
            let port = try Self.freePort()
            do {
                self.child = try ServerChild(port: port)
                self.port = port
                return
            } catch {
                lastError = error  // Taken meanwhile by someone else: try another.
            }
        }
        throw lastError ?? ProcessError("redis-server did not start")
    }

    /// Kills it (SIGKILL, as a crash would) and starts a new one on the same port.
    func restart() throws {
        self.child.kill()
        self.child = try ServerChild(port: self.port)
    }

    func kill() { self.child.kill() }

    /// Runs `redis-cli` against it and returns its standard output.
    func cli(_ arguments: [String]) throws -> String {
        let (status, out, err) = try run(executable: URL(fileURLWithPath: "/usr/bin/redis-cli"),
                                         ["-h", "127.0.0.1", "-p", "\(self.port)"] + arguments, limit: 10)
        guard status == 0 else { throw ProcessError("redis-cli \(arguments): \(status) \(err)") }
        return out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    deinit { self.child.kill() }

    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { throw ProcessError("no free port: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// One redis-server process, ready once it says so.
    final class ServerChild {
        let process = Process()
        private let out = Pipe()

        init(port: Int) throws {
            self.process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
            self.process.arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                      "--loglevel", "notice"]
            self.process.standardOutput = self.out
            self.process.standardError = self.out
            try self.process.run()
            var text = ""
            let handle = self.out.fileHandleForReading
            while !text.contains("Ready to accept connections") {
                let data = handle.availableData
                if data.isEmpty {
                    self.process.waitUntilExit()
                    throw ProcessError("redis-server on \(port) did not start: \(text)")
                }
                text += String(decoding: data, as: UTF8.self)
            }
            // Drain the rest of its log so that it never blocks on a full pipe.
            let reader = Thread { while !handle.availableData.isEmpty {} }
            reader.start()
        }

        func kill() {
            guard self.process.isRunning else { return }
            Glibc.kill(self.process.processIdentifier, SIGKILL)
            self.process.waitUntilExit()
        }
    }
}

/// Every connection joins the room its path names (/ws/room/NAME) and publishes what it sends there.
final class Rooms: WebSocketHandler {
    let joined = Events<Bool>()
    func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) {
        self.joined.post(socket.subscribe(String(request.path.split(separator: "/").last ?? "")))
    }
    func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
        _ = socket.publish(socket.subscribedTopics[0], message.opcode, message.bytes)
    }
}

/// A server on two loops with a bridge to `redis`.
struct BridgedServer {
    let group: LoopGroup
    let server: WebSocketServer
    let bridge: RedisBridge
    let port: Int
    let rooms = Rooms()

    init(redis: RedisServer, retry: Duration = .milliseconds(50)) throws {
        self.group = try LoopGroup(loopCount: 2)
        self.server = WebSocketServer(group: self.group, handler: self.rooms)
        self.port = try self.server.listen(host: "127.0.0.1", port: 0).port
        var configuration = RedisBridgeConfiguration(host: "127.0.0.1", port: redis.port)
        configuration.firstRetryDelay = retry
        configuration.maxRetryDelay = .milliseconds(200)
        self.bridge = RedisBridge(server: self.server, configuration: configuration)
        self.bridge.start()
    }

    func shutdown() {
        self.bridge.stop()
        self.group.shutdown()
    }

    func waitFor(_ condition: (RedisBridgeStatistics) -> Bool) async {
        while !condition(self.bridge.statistics) { try? await Task.sleep(for: .milliseconds(5)) }
    }
}

@Suite("Redis bridge", .serialized, .timeLimit(.minutes(2)))
struct RedisTests {
    let clients: LoopGroup
    init() throws { self.clients = try LoopGroup(loopCount: 1) }
    var loop: Loop { self.clients.loops[0] }

    func member(_ server: BridgedServer, room: String) async throws -> (LoopBound<WebSocket>, Probe) {
        let probe = Probe()
        let socket = try await connectClient(to: "ws://127.0.0.1:\(server.port)/ws/room/\(room)", on: self.loop, handler: probe).get()
        _ = await probe.events.next()  // Opened.
        #expect(await server.rooms.joined.next())
        return (socket, probe)
    }

    @Test("two servers on one Redis: a room spans both, each ignores its own echo, a foreign PUBLISH arrives, other rooms stay apart")
    func twoServers() async throws {
        let redis = try RedisServer()
        let a = try BridgedServer(redis: redis), b = try BridgedServer(redis: redis)
        defer { self.clients.shutdown(); a.shutdown(); b.shutdown() }
        await a.waitFor { $0.state == .connected }
        await b.waitFor { $0.state == .connected }

        let (onA, probeA) = try await self.member(a, room: "lobby")
        let (_, probeB) = try await self.member(b, room: "lobby")
        let (otherSocket, elsewhere) = try await self.member(b, room: "other")
        await a.waitFor { $0.channels == 1 }
        await b.waitFor { $0.channels == 2 }
        // Redis confirms subscriptions asynchronously: wait until it counts one per server on the channel.
        while try redis.cli(["PUBSUB", "NUMSUB", "strands:lobby"]).split(separator: "\n").last != "2" {
            try await Task.sleep(for: .milliseconds(5))
        }

        onA.loop.execute { onA.value.send(text: "hello from a ✓") }
        #expect(await probeA.events.next() == .text("hello from a ✓"))  // Locally, the sender too.
        #expect(await probeB.events.next() == .text("hello from a ✓"))  // Through Redis.
        onA.loop.execute { onA.value.send(binary: pattern(70_000)) }
        #expect(await probeA.events.next() == .binary(pattern(70_000)))
        #expect(await probeB.events.next() == .binary(pattern(70_000)))
        await a.waitFor { $0.ownEchoes == 2 }
        #expect(a.bridge.statistics.published == 2)
        #expect(b.bridge.statistics.received == 2)
        // Not delivered twice on a: its own echo was ignored.
        #expect(a.server.topic("lobby").statistics.delivered == 2)

        _ = try redis.cli(["PUBLISH", "strands:lobby", "from redis-cli"])
        #expect(await probeA.events.next() == .text("from redis-cli"))
        #expect(await probeB.events.next() == .text("from redis-cli"))
        // A broken envelope is refused, not delivered.
        _ = try redis.cli(["PUBLISH", "strands:lobby", "STR1" + String(repeating: "x", count: 16) + "garbage"])
        await b.waitFor { $0.invalid == 1 }
        // The other room heard none of it: its first message is its own.
        otherSocket.loop.execute { otherSocket.value.send(text: "own room") }
        #expect(await elsewhere.events.next() == .text("own room"))
    }

    @Test("Redis killed and restarted mid-run: the bridges reconnect, subscribe again, and deliver; what was sent meanwhile is counted lost")
    func restart() async throws {
        let redis = try RedisServer()
        let a = try BridgedServer(redis: redis), b = try BridgedServer(redis: redis)
        defer { self.clients.shutdown(); a.shutdown(); b.shutdown() }
        let (onA, probeA) = try await self.member(a, room: "r")
        let (_, probeB) = try await self.member(b, room: "r")
        await a.waitFor { $0.state == .connected && $0.channels == 1 }
        await b.waitFor { $0.state == .connected && $0.channels == 1 }
        while try redis.cli(["PUBSUB", "NUMSUB", "strands:r"]).split(separator: "\n").last != "2" {
            try await Task.sleep(for: .milliseconds(5))
        }
        onA.loop.execute { onA.value.send(text: "before") }
        #expect(await probeA.events.next() == .text("before"))
        #expect(await probeB.events.next() == .text("before"))

        redis.kill()
        await a.waitFor { $0.state != .connected }
        onA.loop.execute { onA.value.send(text: "during") }
        #expect(await probeA.events.next() == .text("during"))  // Local members still get it.
        await a.waitFor { $0.lost >= 1 }

        try redis.restart()
        await a.waitFor { $0.state == .connected && $0.connects >= 2 }
        await b.waitFor { $0.state == .connected && $0.connects >= 2 }
        while try redis.cli(["PUBSUB", "NUMSUB", "strands:r"]).split(separator: "\n").last != "2" {
            try await Task.sleep(for: .milliseconds(5))
        }
        onA.loop.execute { onA.value.send(text: "after") }
        #expect(await probeA.events.next() == .text("after"))
        #expect(await probeB.events.next() == .text("after"))  // Not "during": at most once.
        #expect(a.bridge.statistics.lastError != nil)
    }

    @Test("a Redis channel is held only while the process has a subscriber to its topic")
    func channelLifetime() async throws {
        let redis = try RedisServer()
        let a = try BridgedServer(redis: redis)
        defer { self.clients.shutdown(); a.shutdown() }
        await a.waitFor { $0.state == .connected }
        let (socket, probe) = try await self.member(a, room: "brief")
        await a.waitFor { $0.channels == 1 }
        while try redis.cli(["PUBSUB", "NUMSUB", "strands:brief"]).split(separator: "\n").last != "1" {
            try await Task.sleep(for: .milliseconds(5))
        }
        socket.loop.execute { socket.value.close(code: .normalClosure) }
        _ = await probe.events.next()
        await a.waitFor { $0.channels == 0 }
        while try redis.cli(["PUBSUB", "NUMSUB", "strands:brief"]).split(separator: "\n").last != "0" {
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test("two echoserver processes with -pubsub -redis: a room spans both; /metrics shows the bridge")
    func twoEchoservers() async throws {
        let redis = try RedisServer()
        let a = try ServerProcess(["-pubsub", "-redis", "127.0.0.1:\(redis.port)", "-quiet"])
        let b = try ServerProcess(["-pubsub", "-redis", "127.0.0.1:\(redis.port)", "-quiet"])
        defer { self.clients.shutdown(); a.stop(); b.stop() }
        let probeA = Probe(), probeB = Probe()
        let onA = try await connectClient(to: "ws://127.0.0.1:\(a.port)/ws/room/hall", on: self.loop, handler: probeA).get()
        _ = try await connectClient(to: "ws://127.0.0.1:\(b.port)/ws/room/hall", on: self.loop, handler: probeB).get()
        _ = await probeA.events.next()
        _ = await probeB.events.next()
        while try redis.cli(["PUBSUB", "NUMSUB", "strands:hall"]).split(separator: "\n").last != "2" {
            try await Task.sleep(for: .milliseconds(5))
        }
        onA.loop.execute { onA.value.send(text: "across processes") }
        #expect(await probeA.events.next() == .text("across processes"))
        #expect(await probeB.events.next() == .text("across processes"))
        let metrics = String(decoding: await rawExchange(Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8), port: b.port, on: self.loop),
                             as: UTF8.self)
        #expect(metrics.contains("strands_redis_connected 1"))
        #expect(metrics.contains("strands_redis_received_total 1"))
        #expect(metrics.contains("strands_redis_channels 1"))
    }

    @Test("-redis without -pubsub, or not HOST:PORT, is refused with exit 2")
    func badFlags() throws {
        for arguments in [["-redis", "127.0.0.1:6379"], ["-pubsub", "-redis", "nowhere"], ["-pubsub", "-redis", "h:0"]] {
            let (status, _, errors) = try run("echoserver", arguments + ["-port", "0"], limit: 20)
            #expect(status == 2, "\(arguments)")
            #expect(errors.contains("-redis"), "\(arguments): \(errors)")
        }
    }
}
