#if canImport(Glibc)
import Glibc
#endif
import StrandsTestSupport
import StrandsWS
import Synchronization
import Testing

@Suite("async/await API", .timeLimit(.minutes(1)))
struct AsyncTests {
    @Test("an async server and client exchange texts and binaries; the client's end closes both with 1000")
    func exchange() async throws {
        let group = try LoopGroup(loopCount: 2)
        defer { group.shutdown() }
        let closedWith = Events<CloseCode?>()
        let server = WebSocketServer(group: group) { socket in
            #expect(socket.loop.inEventLoop, "the connection's task runs on its loop")
            do {
                for try await message in socket.messages { try await socket.send(message) }
                closedWith.post(.normalClosure)
            } catch {
                closedWith.post((error as? WebSocketError)?.closeCode)
            }
        }
        let port = try server.listen(host: "127.0.0.1", port: 0).port
        let client = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/ws/async", on: group.loops[1])
        #expect(client.request.target == "/ws/async")
        var replies = client.messages.makeAsyncIterator()
        for index in 0..<100 {
            try await client.send(text: "message \(index)")
            let reply = try #require(try await replies.next())
            #expect(reply.isText && reply.text == "message \(index)")
        }
        let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try await client.send(binary: big)
        let reply = try #require(try await replies.next())
        #expect(!reply.isText && reply.data == big)
        await client.close()
        #expect(try await replies.next() == nil, "the messages end after a normal close")
        #expect(await closedWith.next() == .normalClosure)
        // A send after the close is refused with the close code.
        await #expect(throws: WebSocketError.self) { try await client.send(text: "late") }
    }

    @Test("cancelling the server's task closes the connection with 1001; the client's messages end")
    func cancellation() async throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let started = Events<Bool>()
        let server = WebSocketServer(group: group) { socket in
            // Waits for messages that never come, until cancelled from inside (as a timeout would).
            let waiter = Task(executorPreference: socket.loop.taskExecutor) { for try await _ in socket.messages {} }
            started.post(true)
            waiter.cancel()
            _ = await waiter.result
        }
        let port = try server.listen(host: "127.0.0.1", port: 0).port
        let probe = Probe()
        let socket = try await connectClient(to: "ws://127.0.0.1:\(port)/ws/x", on: group.loops[0], handler: probe).get()
        _ = socket
        #expect(await started.next())
        #expect(await probe.events.next() == .opened(path: "/ws/x", subprotocol: nil))
        guard case .closed(let code, _) = await probe.events.next() else {
            Issue.record("not closed")
            return
        }
        #expect(code == 1001)
    }

    @Test("a consumer that lags pauses reading: no more than the bound (and the rest of one read) waits, and none is lost")
    func slowConsumer() async throws {
        let group = try LoopGroup(loopCount: 2)
        defer { group.shutdown() }
        let done = Events<(received: Int, highest: Int)>()
        let server = WebSocketServer(group: group, maxBufferedMessages: 8) { socket in
            // Not reading until the bound is reached: the connection must have paused its reading.
            while socket.bufferedMessageCount < 8 { await Task.yield() }
            var highest = socket.bufferedMessageCount
            var received = 0
            for try await _ in socket.messages {
                received += 1
                highest = max(highest, socket.bufferedMessageCount)
                if received % 16 == 0 { await Task.yield() }  // Slower than the sender.
            }
            done.post((received, highest))
        }
        let port = try server.listen(host: "127.0.0.1", port: 0).port
        let client = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/ws/slow", on: group.loops[1])
        let payload = [UInt8](repeating: 1, count: 16 << 10)
        for _ in 0..<2000 { try await client.send(binary: payload) }  // 32 MiB, far past the socket buffers.
        await client.close()
        let (received, highest) = await done.next()
        #expect(received == 2000)
        // A 64 KiB read holds up to four of these messages: the ones after the eighth still arrive.
        #expect(highest <= 8 + 4, "messages waiting: \(highest)")
    }

    @Test("connecting to nothing fails with a typed error")
    func typedError() async throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        do {
            _ = try await WebSocketClient.connect(to: "ws://127.0.0.1:1/", on: group.loops[0])
            Issue.record("connected to port 1")
        } catch {
            #expect(error.kind == .connectFailed)
        }
    }

    @Test("forEachMessage: messages borrowed from the read buffer, answered with sendNow; queued ones first; a normal close returns")
    func borrowing() async throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let ended = Events<String>()
        let server = WebSocketServer(group: group) { socket in
            // The first message through the sequence, the rest borrowed.
            var messages = socket.messages.makeAsyncIterator()
            guard let first = try await messages.next() else { return }
            try await socket.send(first)
            var count = 0
            do {
                try await socket.forEachMessage { message in
                    count += 1
                    #expect(socket.sendNow(message) == .sent)
                }
                ended.post("returned after \(count)")
            } catch {
                ended.post("threw \(error)")
            }
        }
        let port = try server.listen(host: "127.0.0.1", port: 0).port
        let client = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/ws/borrow", on: group.loops[0])
        var replies = client.messages.makeAsyncIterator()
        for index in 0..<200 { try await client.send(text: "m\(index)") }  // Some queue before forEachMessage starts.
        for index in 0..<200 { #expect(try await replies.next()?.text == "m\(index)") }
        try await client.send(binary: pattern(70_000))
        #expect(try await replies.next()?.data == pattern(70_000))
        await client.close()
        #expect(try await replies.next() == nil)
        #expect(await ended.next() == "returned after 200")
    }

    @Test("topics from async code: what one connection publishes reaches every subscriber on every loop, itself included")
    func topics() async throws {
        let group = try LoopGroup(loopCount: 2)
        defer { group.shutdown() }
        let server = WebSocketServer(group: group) { socket in
            let room = try #require(await socket.topic("room"))
            #expect(await socket.subscribe(room))
            #expect(await socket.subscribedTopics.map(\.name) == ["room"])
            try await socket.send(text: "joined")
            for try await message in socket.messages { await socket.publish(room, message) }
        }
        let port = try server.listen(host: "127.0.0.1", port: 0).port
        var clients: [AsyncWebSocket] = []
        var inboxes: [AsyncWebSocket.Messages.Iterator] = []
        for index in 0..<4 {  // Two on each loop (the server's connections are spread likewise).
            let client = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/ws/room", on: group.loops[index % 2])
            var inbox = client.messages.makeAsyncIterator()
            #expect(try await inbox.next()?.text == "joined")
            clients.append(client)
            inboxes.append(inbox)
        }
        #expect(await clients[0].topic("room") == nil, "a client connection has no server topics")
        try await clients[0].send(text: "hello, room")
        try await clients[3].send(binary: [1, 2, 3])
        for index in inboxes.indices {
            // Per subscriber, one publisher's messages keep their order; across publishers, any.
            var seen: [String] = []
            for _ in 0..<2 {
                let message = try #require(try await inboxes[index].next())
                seen.append(message.isText ? message.text : "\(message.data)")
            }
            #expect(seen.sorted() == ["[1, 2, 3]", "hello, room"], "client \(index) got \(seen)")
        }
        for client in clients { await client.close() }
    }

    @Test("an upgrade decision that awaits holds that handshake only: others on the loop go on; a refusal is a 403")
    func asyncUpgradeDecision() async throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let gate = Events<Bool>()
        let asked = Events<String>()
        let server = WebSocketServer(group: group, shouldUpgrade: { request in
            asked.post(String(request.path))
            if request.path == "/slow" { return await gate.next() ? .accept() : .reject(status: 403) }
            return request.headers.first("Authorization") == "Bearer good" ? .accept() : .reject(status: 403)
        }) { socket in
            for try await message in socket.messages { try await socket.send(message) }
        }
        let port = try server.listen(host: "127.0.0.1", port: 0).port
        let loop = group.loops[0]
        let slow = Task { try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/slow", on: loop) }
        #expect(await asked.next() == "/slow")
        // While that decision waits, another connection on the same loop is decided, opens and echoes.
        let fast = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/fast", on: loop,
                                                     headers: ["Authorization": "Bearer good"])
        #expect(await asked.next() == "/fast")
        try await fast.send(text: "while the other waits")
        var replies = fast.messages.makeAsyncIterator()
        #expect(try await replies.next()?.text == "while the other waits")
        gate.post(true)
        let opened = try await slow.value
        try await opened.send(text: "late but in")
        var late = opened.messages.makeAsyncIterator()
        #expect(try await late.next()?.text == "late but in")
        // Refused, now and later: the client sees the 403.
        for (path, headers) in [("/fast", HTTPHeaders([("Authorization", "Bearer bad")])), ("/slow", HTTPHeaders())] {
            let refused = Task { try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)\(path)", on: loop, headers: headers) }
            #expect(await asked.next() == path)
            if path == "/slow" { gate.post(false) }
            do {
                _ = try await refused.value
                Issue.record("\(path) was accepted")
            } catch let error as WebSocketError {
                #expect(error.kind == .handshakeFailed && "\(error)".contains("403"), "\(error)")
            }
        }
        await fast.close()
        await opened.close()
    }

    @Test("HTTP routes beside the WebSocket: an async handler gets method, path, query, headers and body")
    func httpRoutes() async throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let server = WebSocketServer(group: group, respond: { request in
            await Task.yield()  // An async handler: it may await before answering.
            switch (request.method, request.path) {
            case ("GET", "/rooms"):
                return HTTPResponse(status: 200, contentType: "application/json", body: "{\"rooms\":[],\"q\":\"\(request.query ?? "")\"}")
            case ("POST", "/echo"):
                let type = request.headers.first("Content-Type") ?? "?"
                return HTTPResponse(status: 201, headers: ["Content-Type": type], body: request.body)
            default:
                return .status(404)
            }
        }) { socket in
            for try await message in socket.messages { try await socket.send(message) }
        }
        let port = try server.listen(host: "127.0.0.1", port: 0).port
        let loop = group.loops[0]
        func exchange(_ request: String, body: [UInt8] = []) async -> String {
            String(decoding: await rawExchange(Array(request.utf8) + body, port: port, on: loop), as: UTF8.self)
        }
        let rooms = await exchange("GET /rooms?x=1 HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(rooms.hasPrefix("HTTP/1.1 200") && rooms.hasSuffix("{\"rooms\":[],\"q\":\"x=1\"}"), "\(rooms)")
        let body = pattern(100_000)  // Larger than one read.
        let posted = await exchange("POST /echo HTTP/1.1\r\nHost: h\r\nContent-Type: application/octet-stream\r\nContent-Length: \(body.count)\r\n\r\n", body: body)
        #expect(posted.hasPrefix("HTTP/1.1 201"), "\(posted.prefix(40))")
        let echoed = await rawExchange(Array("POST /echo HTTP/1.1\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body, port: port, on: loop)
        #expect(Array(echoed.suffix(body.count)) == body, "the body comes back whole")
        #expect(await exchange("GET /nothing HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 404"))
        #expect(await exchange("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").hasPrefix("HTTP/1.1 411"))
        #expect(await exchange("POST /echo HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n").hasPrefix("HTTP/1.1 413"))
        #expect(await exchange("POST /echo HTTP/1.1\r\nContent-Length: 12x\r\n\r\n").hasPrefix("HTTP/1.1 400"))
        // The WebSocket beside them still works.
        let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/ws", on: loop)
        try await socket.send(text: "still here")
        var replies = socket.messages.makeAsyncIterator()
        #expect(try await replies.next()?.text == "still here")
        await socket.close()
    }

    @Test("serve() returns on SIGTERM after closing every connection with 1001; the async group shutdown joins the loops")
    func runReturnsOnSignal() async throws {
        let group = try LoopGroup(loopCount: 1)
        let server = WebSocketServer(group: group) { socket in
            for try await message in socket.messages { try await socket.send(message) }
        }
        let port = try server.listen(host: "127.0.0.1", port: 0).port
        let probe = Probe()
        let socket = try await connectClient(to: "ws://127.0.0.1:\(port)/ws/run", on: group.loops[0], handler: probe).get()
        _ = socket
        #expect(await probe.events.next() == .opened(path: "/ws/run", subprotocol: nil))
        #expect(!handlesSIGTERM(), "nothing else in the process watches SIGTERM")
        let running = Task { await server.serve(gracePeriod: .seconds(5)) }
        // The watcher is on the loop once SIGTERM has a handler (bounded: 5 s).
        for _ in 0..<5000 where !handlesSIGTERM() { try await Task.sleep(for: .milliseconds(1)) }
        #expect(handlesSIGTERM())
        kill(getpid(), SIGTERM)
        #expect(await running.value == SIGTERM)
        guard case .closed(let code, _) = await probe.events.next() else {
            Issue.record("the client saw no close")
            return
        }
        #expect(code == CloseCode.goingAway.rawValue)
        #expect(!handlesSIGTERM(), "serve() gives SIGTERM back when it returns")
        await group.shutdownGracefully()
        #expect(!group.loops[0].execute {}, "the loops have ended")
    }
}

/// Whether SIGTERM has a handler (not the default action) in this process.
private func handlesSIGTERM() -> Bool {
    var action = sigaction()
    sigaction(SIGTERM, nil, &action)
    return unsafeBitCast(action.__sigaction_handler.sa_handler, to: Int.self) != 0
}
