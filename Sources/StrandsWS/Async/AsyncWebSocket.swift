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
    /// The storages of the messages handed out, oldest first (a ring): the task takes messages in order,
    /// so the oldest is the first it lets go, and is reused for the next message once it has.
    private var handedOut: [MessageStorage?]
    private var handedOutHead = 0
    private var handedOutCount = 0

    init(socket: WebSocket, request: HTTPRequest, maxBufferedMessages: Int) {
        self.loop = socket.loop
        self.socket = socket
        self.request = request
        self.maxBufferedMessages = max(1, maxBufferedMessages)
        self.handedOut = Array(repeating: nil, count: 4)  // Grows with bursts, up to `handedOutLimit`.
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
                    self.trimHandedOut()
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
            self.trimHandedOut()
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

    /// Storage for a message of `count` bytes: the oldest handed out if the task has let it go and it is
    /// large enough, else new. A task that keeps up (or catches up) causes no allocation per message.
    private func storage(for count: Int) -> MessageStorage {
        let size = self.handedOut.count
        if self.handedOutCount > 0 {
            let head = self.handedOutHead
            if isKnownUniquelyReferenced(&self.handedOut[head]), let oldest = self.handedOut[head] {
                self.handedOut[head] = nil
                self.handedOutHead = (head + 1) % size
                self.handedOutCount -= 1
                if oldest.capacity >= count {
                    self.track(oldest)
                    return oldest
                }  // Let go and too small: freed, and a larger one made below.
            }
        }
        let made = MessageStorage(capacity: max(count, 256))
        if self.handedOutCount == size && size < self.handedOutLimit {
            // A burst: room for more (linearized from the oldest).
            var grown = [MessageStorage?](repeating: nil, count: min(size * 2, self.handedOutLimit))
            for index in 0..<self.handedOutCount { grown[index] = self.handedOut[(self.handedOutHead + index) % size] }
            self.handedOut = grown
            self.handedOutHead = 0
        } else if self.handedOutCount == size {
            // Every one tracked is still held (or too small): stop tracking the oldest.
            self.handedOut[self.handedOutHead] = nil
            self.handedOutHead = (self.handedOutHead + 1) % size
            self.handedOutCount -= 1
        }
        self.track(made)
        return made
    }

    /// The task has caught up (it waits for a message): keep only the newest storage for the next one,
    /// so that a burst's storages do not stay with an idle connection.
    private func trimHandedOut() {
        guard self.handedOutCount > 1 else { return }
        let size = self.handedOut.count
        while self.handedOutCount > 1 {
            self.handedOut[self.handedOutHead] = nil
            self.handedOutHead = (self.handedOutHead + 1) % size
            self.handedOutCount -= 1
        }
    }

    /// The queue's bound, the rest of one read, and a few the task may hold.
    private var handedOutLimit: Int { self.maxBufferedMessages + 16 }

    private func track(_ storage: MessageStorage) {
        self.handedOut[(self.handedOutHead + self.handedOutCount) % self.handedOut.count] = storage
        self.handedOutCount += 1
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
        if self.loop.inEventLoop {
            self.socket.holdCorkForJob()  // Replies until the task suspends leave in one write.
            let result = self.socket.send(text: text)
            if result != .sent { try await self.settle(result) }  // The common case: no suspension.
            return
        }
        try await self.sendFromElsewhere { $0.send(text: text) }
    }

    /// Sends a binary message; see ``send(text:)``.
    public func send(binary bytes: [UInt8]) async throws(WebSocketError) {
        if self.loop.inEventLoop {
            self.socket.holdCorkForJob()
            let result = self.socket.send(binary: bytes)
            if result != .sent { try await self.settle(result) }
            return
        }
        try await self.sendFromElsewhere { $0.send(binary: bytes) }
    }

    /// Sends `message` back as it came (an echo): same opcode, same bytes, no copy.
    public func send(_ message: InboundMessage) async throws(WebSocketError) {
        if self.loop.inEventLoop {
            self.socket.holdCorkForJob()
            let result = message.withUnsafeBytes { self.socket.send(message.opcode, $0) }
            if result != .sent { try await self.settle(result) }
            return
        }
        try await self.sendFromElsewhere { socket in message.withUnsafeBytes { socket.send(message.opcode, $0) } }
    }

    /// On the loop, after a send that was not simply sent: a refusal throws; backpressure waits for the
    /// socket to drain, once the corked bytes have gone (if the kernel took them all, there is nothing to
    /// wait for, and no drain would come).
    private func settle(_ result: SendResult) async throws(WebSocketError) {
        if let failure = self.failure(of: result) { throw failure }
        if self.ended != nil { return }
        self.loop.flushJobCork()
        if self.socket.pendingWriteBytes == 0 { return }
        let drained: Result<Void, WebSocketError> = await withUnsafeContinuation { continuation in
            self.drainWaiters.append(continuation)
        }
        try drained.get()
    }

    /// A send from a task off the loop: `operation` runs on the loop, and the wait (if any) is set up there.
    private func sendFromElsewhere(_ operation: @escaping @Sendable (WebSocket) -> SendResult) async throws(WebSocketError) {
        let outcome: Result<Void, WebSocketError> = await withUnsafeContinuation { continuation in
            let accepted = self.loop.execute {
                let result = operation(self.socket)
                if let failure = self.failure(of: result) {
                    continuation.resume(returning: .failure(failure))
                } else if result == .backpressure && self.ended == nil && self.socket.pendingWriteBytes > 0 {
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

