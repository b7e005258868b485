import StrandsWS

/// A queue of events posted from loop threads and awaited by a test, one at a time.
final class Events<T: Sendable>: Sendable {
    private struct State {
        var buffered: [T] = []
        var waiter: CheckedContinuation<T, Never>?
    }
    private let state = Locked(State())

    func post(_ event: T) {
        let waiter = self.state.withLock { state -> CheckedContinuation<T, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.buffered.append(event)
            return nil
        }
        waiter?.resume(returning: event)
    }

    /// The next event; a test's time limit bounds the wait.
    func next() async -> T {
        await withCheckedContinuation { continuation in
            let ready = self.state.withLock { state -> T? in
                if !state.buffered.isEmpty { return state.buffered.removeFirst() }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

enum Seen: Sendable, Equatable {
    case opened(path: String, subprotocol: String?)
    case text(String)
    case binary([UInt8])
    case pong([UInt8])
    case closed(UInt16, String)
}

/// Records what a connection sees; echoes when asked to. Shared by every connection of a server.
final class Probe: WebSocketHandler {
    let events = Events<Seen>()
    let echo: Bool
    let upgrade: @Sendable (HTTPRequest) -> UpgradeDecision
    let http: @Sendable (HTTPRequest) -> HTTPResponse

    init(echo: Bool = false,
         upgrade: @escaping @Sendable (HTTPRequest) -> UpgradeDecision = { _ in .accept() },
         http: @escaping @Sendable (HTTPRequest) -> HTTPResponse = { _ in .status(404) }) {
        self.echo = echo
        self.upgrade = upgrade
        self.http = http
    }

    func shouldUpgrade(_ request: HTTPRequest) -> UpgradeDecision { self.upgrade(request) }
    func respond(to request: HTTPRequest) -> HTTPResponse { self.http(request) }
    func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) {
        self.events.post(.opened(path: request.target, subprotocol: socket.subprotocol))
    }
    func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
        self.events.post(message.opcode == .text ? .text(message.text) : .binary(message.data))
        if self.echo { socket.send(message.opcode, message.bytes) }
    }
    func webSocket(_ socket: WebSocket, didReceivePong payload: UnsafeRawBufferPointer) {
        self.events.post(.pong(Array(payload)))
    }
    func webSocket(_ socket: WebSocket, didCloseWith code: CloseCode, reason: String) {
        self.events.post(.closed(code.rawValue, reason))
    }
}

/// A server on two loops and a client loop, torn down after `body`.
struct Harness {
    let serverGroup: LoopGroup
    let clientGroup: LoopGroup
    let server: WebSocketServer
    let port: Int

    init(configuration: WebSocketConfiguration = WebSocketConfiguration(), handler: any WebSocketHandler) throws {
        self.serverGroup = try LoopGroup(loopCount: 2)
        self.clientGroup = try LoopGroup(loopCount: 1)
        self.server = WebSocketServer(group: self.serverGroup, configuration: configuration, handler: handler)
        self.port = try self.server.listen(host: "127.0.0.1", port: 0).port
    }

    var loop: Loop { self.clientGroup.loops[0] }
    var url: String { "ws://127.0.0.1:\(self.port)" }

    func shutdown() {
        self.clientGroup.shutdown()
        self.serverGroup.shutdown()
    }

    /// Connects a client; returns the socket (bound to its loop) or the error.
    func connect(_ path: String = "/ws/test", handler: any WebSocketHandler,
                 configuration: WebSocketConfiguration = WebSocketConfiguration(),
                 headers: HTTPHeaders = HTTPHeaders(), subprotocols: [String] = []) async -> Result<LoopBound<WebSocket>, WebSocketError> {
        let loop = self.loop
        let url = path.hasPrefix("ws") ? path : self.url + path
        let outcome = Events<Result<LoopBound<WebSocket>, WebSocketError>>()
        loop.execute {
            WebSocketClient.connect(to: url, on: loop, configuration: configuration, headers: headers,
                                    subprotocols: subprotocols, handler: handler) { result in
                outcome.post(result.map { LoopBound($0, loop: loop) })
            }
        }
        return await outcome.next()
    }

    /// Sends raw bytes over TCP and returns everything the server sent until it closed, as text.
    func raw(_ request: [UInt8]) async -> String {
        String(decoding: await self.rawBytes(request), as: UTF8.self)
    }

    /// Sends raw bytes over TCP and returns everything the server sent until it closed.
    func rawBytes(_ request: [UInt8]) async -> [UInt8] {
        let loop = self.loop
        let port = self.port
        let done = Events<[UInt8]>()
        final class Collect: TCPStreamDelegate {
            var bytes: [UInt8] = []
            let done: Events<[UInt8]>
            init(done: Events<[UInt8]>) { self.done = done }
            func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) { self.bytes += bytes }
            func stream(_ stream: TCPStream, didCloseWith error: UVError?) { self.done.post(self.bytes) }
        }
        loop.execute {
            TCPStream.connect(on: loop, host: "127.0.0.1", port: port) { result in
                guard case .success(let stream) = result else { return done.post(Array("connect failed".utf8)) }
                stream.delegate = Collect(done: done)
                stream.startReading()
                if !request.isEmpty { try? stream.write(request) }
            }
        }
        return await done.next()
    }
}

/// A well-formed upgrade request with one part changed.
func upgradeRequest(method: String = "GET", target: String = "/ws/x", version: String = "HTTP/1.1",
                    headers: [(String, String)]? = nil, extra: [(String, String)] = []) -> [UInt8] {
    let fields = headers ?? [
        ("Host", "localhost"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"),
    ]
    var text = "\(method) \(target) \(version)\r\n"
    for (name, value) in fields + extra { text += "\(name): \(value)\r\n" }
    return Array((text + "\r\n").utf8)
}
