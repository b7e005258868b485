/// A WebSocket connection for async code: its messages as an `AsyncSequence`, sends that suspend only
/// when the peer is not keeping up.
///
/// ```swift
/// let server = WebSocketServer(group: group) { socket in
///     for try await message in socket.messages { try await socket.send(message) }
/// }
/// ```
///
/// Each connection's task runs on the connection's loop (the loop is its executor preference), so a
/// message goes from the read to the task and its reply back to the socket without leaving the loop's
/// thread. Use it from that task; a call from anywhere else hops to the loop first.
///
/// - Reading pauses once ``maxBufferedMessages`` messages wait for the task (the rest of the read that
///   filled the queue still arrives), and resumes when it has taken half of them: a slow consumer costs
///   bounded memory, not a growing queue.
/// - Ending the task (returning or throwing) closes the connection with 1000, or 1011 if it threw
///   anything but a ``WebSocketError``; cancelling it closes with 1001.
public final class AsyncWebSocket: @unchecked Sendable {  // Safe: the state is touched on `loop` only.
    /// The loop the connection lives on.
    public let loop: Loop
    let socket: WebSocket
    /// The request that opened it (a client's: the one it sent).
    public let request: HTTPRequest
    /// Messages at most that wait for the task before reading pauses.
    public let maxBufferedMessages: Int

    // Loop-confined.
    private var queue: [InboundMessage] = []
    private var queueHead = 0
    /// The task waiting for a message, if it is.
    private var waiting: UnsafeContinuation<Result<InboundMessage?, WebSocketError>, Never>?
    private var drainWaiters: [UnsafeContinuation<Result<Void, WebSocketError>, Never>] = []
    private var ended: (code: CloseCode, reason: String)?
    private var readingPaused = false
    /// The storage of the message handed out last: reused for the next one once the task has let go.
    private var spare: MessageStorage?

    init(socket: WebSocket, request: HTTPRequest, maxBufferedMessages: Int) {
        self.loop = socket.loop
        self.socket = socket
        self.request = request
        self.maxBufferedMessages = max(1, maxBufferedMessages)
    }

    /// The subprotocol agreed in the handshake, if any.
    public var subprotocol: String? { self.onLoop { self.socket.subprotocol } }

    /// Messages received and not yet taken by the task. On the loop.
    public var bufferedMessageCount: Int { self.queue.count - self.queueHead }

    /// Whether the connection is open (not closing, not closed).
    public var isOpen: Bool { self.onLoop { self.socket.isOpen } }

    // MARK: Messages

    /// The connection's messages, in order. Iterate it from one task. It ends (`nil`) after a normal
    /// close (1000, 1001 or a close frame without a code) and throws ``WebSocketError`` with
    /// ``WebSocketError/Kind/closed`` after any other; cancelling the task closes the connection with 1001.
    public var messages: Messages { Messages(socket: self) }

    public struct Messages: AsyncSequence, Sendable {
        public typealias Element = InboundMessage
        public typealias Failure = WebSocketError
        let socket: AsyncWebSocket

        public func makeAsyncIterator() -> Iterator { Iterator(socket: self.socket) }

        public struct Iterator: AsyncIteratorProtocol {
            let socket: AsyncWebSocket

            public mutating func next() async throws(WebSocketError) -> InboundMessage? {
                try await self.socket.nextMessage()
            }

            public mutating func next(isolation actor: isolated (any Actor)?) async throws(WebSocketError) -> InboundMessage? {
                try await self.socket.nextMessage()
            }
        }
    }

    func nextMessage() async throws(WebSocketError) -> InboundMessage? {
        if self.loop.inEventLoop {
            if let message = self.takeQueued() { return message }
            if let ended = self.ended { return try Self.end(ended) }
            if Task.isCancelled {
                self.closeForCancellation()
                return nil
            }
        }
        // Wait on the loop: from a task on it, or (off it) by handing the wait to it.
        let result: Result<InboundMessage?, WebSocketError> = await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in
                if self.loop.inEventLoop {
                    self.waiting = continuation
                } else if !self.loop.execute({ self.wait(continuation) }) {
                    continuation.resume(returning: .failure(.closed(.goingAway, "the loop has shut down")))
                }
            }
        } onCancel: {
            self.loop.execute { self.closeForCancellation() }
        }
        return try result.get()
    }

    /// On the loop: answers `continuation` at once if a message or the end is there, else keeps it.
    private func wait(_ continuation: UnsafeContinuation<Result<InboundMessage?, WebSocketError>, Never>) {
        if let message = self.takeQueued() {
            continuation.resume(returning: .success(message))
        } else if let ended = self.ended {
            do throws(WebSocketError) {
                continuation.resume(returning: .success(try Self.end(ended)))
            } catch {
                continuation.resume(returning: .failure(error))
            }
        } else {
            self.waiting = continuation
        }
    }

    /// A normal end is `nil`, any other an error.
    private static func end(_ ended: (code: CloseCode, reason: String)) throws(WebSocketError) -> InboundMessage? {
        switch ended.code {
        case .normalClosure, .goingAway, .noStatusReceived: return nil
        default: throw WebSocketError.closed(ended.code, ended.reason)
        }
    }

    private func takeQueued() -> InboundMessage? {
        guard self.queueHead < self.queue.count else { return nil }
        let message = self.queue[self.queueHead]
        self.queueHead += 1
        if self.queueHead == self.queue.count {
            self.queue.removeAll(keepingCapacity: true)
            self.queueHead = 0
        }
        if self.readingPaused && self.queue.count - self.queueHead <= self.maxBufferedMessages / 2 {
            self.readingPaused = false
            self.socket.resumeReading()
        }
        return message
    }

    private func closeForCancellation() {
        if self.socket.isOpen { _ = self.socket.close(code: .goingAway, reason: "task cancelled") }
        self.finish(code: .goingAway, reason: "task cancelled")
    }

    // MARK: From the connection (loop)

    func received(_ message: WebSocketMessage) {
        let storage = self.storage(for: message.bytes.count)
        storage.fill(message.bytes)
        let owned = InboundMessage(opcode: message.opcode, storage: storage)
        if let waiting = self.waiting {
            self.waiting = nil
            waiting.resume(returning: .success(owned))
            return
        }
        self.queue.append(owned)
        if !self.readingPaused && self.queue.count - self.queueHead >= self.maxBufferedMessages {
            self.readingPaused = true
            self.socket.pauseReading()
        }
    }

    /// Storage for a message of `count` bytes: the last one handed out if the task has let it go and it
    /// is large enough, else new.
    private func storage(for count: Int) -> MessageStorage {
        if isKnownUniquelyReferenced(&self.spare), let spare = self.spare, spare.capacity >= count {
            return spare
        }
        let made = MessageStorage(capacity: max(count, 256))
        self.spare = made
        return made
    }

    func drained() {
        let waiters = self.drainWaiters
        self.drainWaiters.removeAll()
        for waiter in waiters { waiter.resume(returning: .success(())) }
    }

    func finish(code: CloseCode, reason: String) {
        guard self.ended == nil else { return }
        self.ended = (code, reason)
        if let waiting = self.waiting {
            self.waiting = nil
            do throws(WebSocketError) {
                waiting.resume(returning: .success(try Self.end((code, reason))))
            } catch {
                waiting.resume(returning: .failure(error))
            }
        }
        let waiters = self.drainWaiters
        self.drainWaiters.removeAll()
        for waiter in waiters { waiter.resume(returning: .failure(.closed(code, reason))) }
    }

    // MARK: Sending

    /// Sends a text message; suspends while the peer is not keeping up (unsent bytes over the
    /// high-water mark). Throws ``WebSocketError/Kind/closed`` once the connection is closing or closed.
    public func send(text: String) async throws(WebSocketError) {
        try await self.send { $0.send(text: text) }
    }

    /// Sends a binary message; see ``send(text:)``.
    public func send(binary bytes: [UInt8]) async throws(WebSocketError) {
        try await self.send { $0.send(binary: bytes) }
    }

    /// Sends `message` back as it came (an echo): same opcode, same bytes, no copy.
    public func send(_ message: InboundMessage) async throws(WebSocketError) {
        try await self.send { socket in message.withUnsafeBytes { socket.send(message.opcode, $0) } }
    }

    /// Runs `operation` on the loop (at once from a task there) and waits for what its result asks.
    private func send(_ operation: @escaping @Sendable (WebSocket) -> SendResult) async throws(WebSocketError) {
        if self.loop.inEventLoop {
            self.socket.holdCorkForJob()  // Replies until the task suspends leave in one write.
            let result = operation(self.socket)
            if result == .sent { return }  // The common case: no suspension.
            if let failure = self.failure(of: result) { throw failure }
            if self.ended != nil { return }
            // Backpressure: the corked bytes go first; if the kernel took them all, there is nothing to
            // wait for (and no drain would come).
            self.loop.flushJobCork()
            if self.socket.pendingWriteBytes == 0 { return }
        }
        let outcome: Result<Void, WebSocketError> = await withUnsafeContinuation { continuation in
            if self.loop.inEventLoop {
                self.drainWaiters.append(continuation)  // Backpressure, seen above.
                return
            }
            let accepted = self.loop.execute {
                let result = operation(self.socket)
                if let failure = self.failure(of: result) {
                    continuation.resume(returning: .failure(failure))
                } else if result == .backpressure && self.ended == nil {
                    self.drainWaiters.append(continuation)
                } else {
                    continuation.resume(returning: .success(()))
                }
            }
            if !accepted { continuation.resume(returning: .failure(.closed(.goingAway, "the loop has shut down"))) }
        }
        try outcome.get()
    }

    /// The error a refused send is, or nil for one accepted.
    private func failure(of result: SendResult) -> WebSocketError? {
        switch result {
        case .sent, .backpressure:
            return nil
        case .notOpen:
            let ended = self.ended ?? (.noStatusReceived, "closing")
            return .closed(ended.code, ended.reason)
        case .overCap, .invalid:
            return .sendRefused(result)
        }
    }

    /// Starts the close handshake with `code`; the messages end when it completes.
    public func close(code: CloseCode = .normalClosure, reason: String = "") async {
        if self.loop.inEventLoop {
            _ = self.socket.close(code: code, reason: reason)
            return
        }
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let accepted = self.loop.execute {
                _ = self.socket.close(code: code, reason: reason)
                continuation.resume()
            }
            if !accepted { continuation.resume() }
        }
    }

    // MARK: Reads from elsewhere

    private func onLoop<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        if self.loop.inEventLoop { return body() }
        return self.loop.runAndWait(body) ?? body()
    }
}

/// A message that arrived, owned: its bytes stay valid for as long as it is kept. The connection reuses
/// the storage of the last message it handed out once nobody holds it, so a task that handles one
/// message at a time causes no allocation per message.
public struct InboundMessage: @unchecked Sendable {  // Safe: the storage is not written while shared.
    public let opcode: Opcode
    let storage: MessageStorage

    /// The payload's length in bytes.
    public var count: Int { self.storage.count }

    /// Calls `body` with the payload's bytes, valid during the call.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: self.storage.base, count: self.storage.count))
    }

    /// The payload as UTF-8 text (a text message is valid UTF-8; a binary one is decoded with repairs).
    public var text: String { self.withUnsafeBytes { String(decoding: $0, as: UTF8.self) } }

    /// The payload, copied into an array.
    public var data: [UInt8] { self.withUnsafeBytes { Array($0) } }

    public var isText: Bool { self.opcode == .text }
}

/// A message's bytes, in memory of its own.
final class MessageStorage {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    private(set) var count = 0

    init(capacity: Int) {
        self.base = .allocate(byteCount: capacity, alignment: 16)
        self.capacity = capacity
    }

    func fill(_ bytes: UnsafeRawBufferPointer) {
        if let source = bytes.baseAddress { self.base.copyMemory(from: source, byteCount: bytes.count) }
        self.count = bytes.count
    }

    deinit { self.base.deallocate() }
}

