import StrandsWS

#if canImport(Glibc)
import Glibc
#endif

/// A queue of events posted from loop threads and awaited by a test, one at a time (StrandsLoop's
/// mailbox, public for the test targets).
public final class Events<T: Sendable>: Sendable {
    private let mailbox = AsyncMailbox<T>()

    public init() {}

    public func post(_ event: T) { self.mailbox.post(event) }

    /// The next event; a test's time limit bounds the wait.
    public func next() async -> T { await self.mailbox.next() }
}

public enum Seen: Sendable, Equatable {
    case opened(path: String, subprotocol: String?)
    case text(String)
    case binary([UInt8])
    case pong([UInt8])
    case closed(UInt16, String)
}

/// Records what a connection sees; echoes when asked to. Shared by every connection of a server.
public final class Probe: WebSocketHandler {
    public let events = Events<Seen>()
    let echo: Bool
    let upgrade: @Sendable (HTTPRequest) -> UpgradeDecision
    let http: @Sendable (HTTPRequest) -> HTTPResponse

    public init(echo: Bool = false,
         upgrade: @escaping @Sendable (HTTPRequest) -> UpgradeDecision = { _ in .accept() },
         http: @escaping @Sendable (HTTPRequest) -> HTTPResponse = { _ in .status(404) }) {
        self.echo = echo
        self.upgrade = upgrade
        self.http = http
    }

    public func shouldUpgrade(_ request: HTTPRequest) -> UpgradeDecision { self.upgrade(request) }
    public func respond(to request: HTTPRequest) -> HTTPResponse { self.http(request) }
    public func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) {
        self.events.post(.opened(path: request.target, subprotocol: socket.subprotocol))
    }
    public func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
        self.events.post(message.opcode == .text ? .text(message.text) : .binary(message.data))
        if self.echo { socket.send(message.opcode, message.bytes) }
    }
    public func webSocket(_ socket: WebSocket, didReceivePong payload: UnsafeRawBufferPointer) {
        self.events.post(.pong(Array(payload)))
    }
    public func webSocket(_ socket: WebSocket, didCloseWith code: CloseCode, reason: String) {
        self.events.post(.closed(code.rawValue, reason))
    }
}


/// Connects a client on `loop`; returns the socket (bound to its loop) or the error.
public func connectClient(
    to url: String, on loop: Loop, handler: any WebSocketHandler,
    configuration: WebSocketConfiguration = WebSocketConfiguration(),
    headers: HTTPHeaders = HTTPHeaders(), subprotocols: [String] = []
) async -> Result<LoopBound<WebSocket>, WebSocketError> {
    let outcome = Events<Result<LoopBound<WebSocket>, WebSocketError>>()
    loop.execute {
        WebSocketClient.connect(to: url, on: loop, configuration: configuration, headers: headers,
                                subprotocols: subprotocols, handler: handler) { result in
            outcome.post(result.map { LoopBound($0, loop: loop) })
        }
    }
    return await outcome.next()
}

/// Sends raw bytes over TCP from `loop` and returns everything the peer sent until it closed.
public func rawExchange(_ request: [UInt8], port: Int, on loop: Loop) async -> [UInt8] {
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

/// Deterministic test bytes.
public func pattern(_ count: Int, seed: Int = 0) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ seed &+ ($0 >> 8)) }
}

extension Result {
    public var isSuccess: Bool { if case .success = self { true } else { false } }
    public var failure: Failure? { if case .failure(let error) = self { error } else { nil } }
}
