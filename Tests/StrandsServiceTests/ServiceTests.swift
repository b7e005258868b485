import Logging
import ServiceLifecycle
import StrandsLogging
import StrandsService
import StrandsTestSupport
import StrandsWS
import Testing

/// A swift-log handler that keeps what it is given.
struct Recorder: LogHandler {
    struct Record: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
    }
    let records: Events<Record>
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let metadata = (event.metadata ?? [:]).mapValues { "\($0)" }
        self.records.post(Record(level: event.level, message: "\(event.message)", metadata: metadata))
    }
}

@Suite("swift-log and swift-service-lifecycle adapters", .timeLimit(.minutes(1)))
struct ServiceTests {
    @Test("a Logger in the configuration hears lifecycle events and connection errors, not messages")
    func logger() async throws {
        let records = Events<Recorder.Record>()
        var configuration = WebSocketConfiguration()
        configuration.logger = Logger(label: "test") { _ in Recorder(records: records) }
        #expect(configuration.logger?.label == "test")
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let server = WebSocketServer(group: group, configuration: configuration, shouldUpgrade: { request in
            request.path == "/no" ? .reject(status: 403) : .accept()
        }) { socket in
            for try await message in socket.messages { try await socket.send(message) }
        }
        let port = try server.listen(host: "127.0.0.1", port: 0).port
        let listening = await records.next()
        #expect(listening.level == .notice && listening.message == "listening on 127.0.0.1:\(port)")
        // A hundred messages: no record (the next one checked is the 400's).
        let client = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/yes", on: group.loops[0])
        var replies = client.messages.makeAsyncIterator()
        for index in 0..<100 {
            try await client.send(text: "\(index)")
            _ = try await replies.next()
        }
        // An upgrade the application rejects is no error: no record. A malformed one is: one record, at
        // info, with the peer.
        await #expect(throws: WebSocketError.self) {
            _ = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/no", on: group.loops[0])
        }
        let answer = await rawExchange(Array("GET /x HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".utf8),
                                       port: port, on: group.loops[0])
        #expect(String(decoding: answer, as: UTF8.self).hasPrefix("HTTP/1.1 400"))
        let refused = await records.next()
        #expect(refused.level == .info && refused.message == "connection error: handshake refused with 400", "\(refused)")
        #expect(refused.metadata["error"] == "handshake" && refused.metadata["peer"]?.hasPrefix("127.0.0.1:") == true)
        await client.close()
        await server.shutdownGracefully(gracePeriod: .seconds(5))
        var messages: [String] = []
        while messages.last != "every connection closed" { messages.append(await records.next().message) }
        #expect(messages.contains("stopped listening") && messages.contains { $0.hasPrefix("closing every connection with 1001") })
    }

    @Test("WebSocketService: the group's graceful shutdown closes every connection with 1001 and run() returns")
    func service() async throws {
        let group = try LoopGroup(loopCount: 1)
        let server = WebSocketServer(group: group) { socket in
            for try await message in socket.messages { try await socket.send(message) }
        }
        let port = try server.listen(host: "127.0.0.1", port: 0).port
        let probe = Probe()
        let socket = try await connectClient(to: "ws://127.0.0.1:\(port)/ws/service", on: group.loops[0], handler: probe).get()
        _ = socket
        #expect(await probe.events.next() == .opened(path: "/ws/service", subprotocol: nil))
        let services = ServiceGroup(services: [WebSocketService(server, gracePeriod: .seconds(5))], logger: Logger(label: "test"))
        let running = Task { try await services.run() }
        await services.triggerGracefulShutdown()
        try await running.value
        guard case .closed(let code, _) = await probe.events.next() else {
            Issue.record("the client saw no close")
            return
        }
        #expect(code == CloseCode.goingAway.rawValue)
        await group.shutdownGracefully()
    }
}
