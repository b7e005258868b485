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
    @exclusivity(unchecked) private var queue = MessageRing()
    /// The task waiting for a message, if it is.
    @exclusivity(unchecked) private var waiting: UnsafeContinuation<Result<InboundMessage?, WebSocketError>, Never>?
    @exclusivity(unchecked) private var drainWaiters: [UnsafeContinuation<Result<Void, WebSocketError>, Never>] = []
    @exclusivity(unchecked) private var ended: (code: CloseCode, reason: String)?
    @exclusivity(unchecked) private var readingPaused = false
    /// The task serving the connection while it runs (the server's), whose cancellation closes it.
    @exclusivity(unchecked) var coveredTask: UnsafeCurrentTask?
    /// The chunk the next message's bytes go into. Messages share a chunk, each at its own offset; the
    /// chunk is written only past the bytes already handed out, and starts over once the task has let
    /// go of every message in it (it is then referenced from here alone).
    @exclusivity(unchecked) private var chunk: MessageStorage?
    /// While ``forEachMessage(_:)`` runs: the body each message goes to, in place of the queue.
    @exclusivity(unchecked) private var borrowingBody: ((WebSocketMessage) -> Void)?
    @exclusivity(unchecked) private var borrowingEnd: UnsafeContinuation<Void, Never>?

    /// A socket handed to code that will use it on its loop (this connection's initializer, a task that
    /// answers its handshake later).
    struct HandOff: @unchecked Sendable {
        let socket: WebSocket

        /// Runs `body` with the socket on its loop: at once if called there, else when the loop next
        /// runs (not at all if it has shut down).
        func onLoop(_ body: @escaping @Sendable (WebSocket) -> Void) {
            let socket = self.socket
            if socket.loop.inEventLoop { body(socket) } else { _ = socket.loop.execute { body(self.socket) } }
        }
    }

    /// Takes the socket over, on its loop: its events come here (through its context).
    init(handOff: HandOff, request: HTTPRequest, maxBufferedMessages: Int) {
        let socket = handOff.socket
        self.loop = socket.loop
        self.socket = socket
        self.request = request
        self.maxBufferedMessages = max(1, maxBufferedMessages)
        socket.context = self  // Keeps the pair alive while the socket is.
        // And for the bridge's per-message calls, the same reference without a retain and a release.
        socket.userData = UInt64(UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque()))
    }

    /// The subprotocol agreed in the handshake, if any.
    public var subprotocol: String? { self.onLoop { self.socket.subprotocol } }

    /// Messages received and not yet taken by the task. On the loop.
    public var bufferedMessageCount: Int { self.queue.count }

    /// Whether the connection is open (not closing, not closed).
    public var isOpen: Bool { self.onLoop { self.socket.isOpen } }

    // MARK: Messages

    /// The connection's messages, in order. Iterate it from one task. It ends (`nil`) after a normal
    /// close (1000, 1001 or a close frame without a code) and throws ``WebSocketError`` with
    /// ``WebSocketError/Kind/closed`` after any other; cancelling the task closes the connection with 1001.
    public var messages: Messages { Messages(socket: self) }

    // `next` and `send` are inlinable down to a call that takes a queued message or sends at once: a
    // message that is there already, and a reply the socket takes, then cost the task no async call
    // (no frame from the task's allocator, no executor check). The rest stays in the library.
    public struct Messages: AsyncSequence, Sendable {
        public typealias Element = InboundMessage
        public typealias Failure = WebSocketError
        @usableFromInline let socket: AsyncWebSocket

        init(socket: AsyncWebSocket) { self.socket = socket }

        @inlinable
        public func makeAsyncIterator() -> Iterator { Iterator(socket: self.socket) }

        public struct Iterator: AsyncIteratorProtocol {
            @usableFromInline let socket: AsyncWebSocket

            @inlinable
            init(socket: AsyncWebSocket) { self.socket = socket }

            @inlinable
            nonisolated(nonsending) public mutating func next() async throws(WebSocketError) -> InboundMessage? {
                if let message = self.socket.takeQueuedOnLoop() { return message }
                return try await self.socket.nextMessage()
            }

            /// What `for try await` calls on this type: the same, with the caller's isolation. Not the
            /// protocol's `isolated` form, whose hop to `actor` at entry is an executor switch per
            /// message (and, in a task with an executor preference, a trip through the task's status
            /// lock); generic code still gets the protocol's default, which calls ``next()``.
            @inlinable
            nonisolated(nonsending) public mutating func next(isolation actor: (any Actor)?) async throws(WebSocketError) -> InboundMessage? {
                if let message = self.socket.takeQueuedOnLoop() { return message }
                return try await self.socket.nextMessage()
            }
        }
    }

    /// A queued message if there is one and this is the loop's thread.
    @usableFromInline
    func takeQueuedOnLoop() -> InboundMessage? {
        self.loop.inEventLoop && self.queue.count > 0 ? self.takeQueued() : nil
    }

    @usableFromInline
    nonisolated(nonsending) func nextMessage() async throws(WebSocketError) -> InboundMessage? {
        if self.loop.inEventLoop {
            if let message = self.takeQueued() { return message }
            if let ended = self.ended { return try Self.end(ended) }
            if Task.isCancelled {
                self.closeForCancellation()
                return nil
            }
        }
        // Wait on the loop: from a task on it, or (off it) by handing the wait to it. The connection's
        // own task has one cancellation handler for its whole life (a handler per wait costs two
        // trips through the task's status lock); any other task gets one for this wait.
        if self.loop.inEventLoop, let covered = self.coveredTask,
           withUnsafeCurrentTask(body: { $0 == covered }) {
            let result: Result<InboundMessage?, WebSocketError> = await withUnsafeContinuation { continuation in
                self.trimChunk()
                self.waiting = continuation
            }
            return try result.get()
        }
        let result: Result<InboundMessage?, WebSocketError> = await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in
                if self.loop.inEventLoop {
                    self.trimChunk()
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
            self.trimChunk()
            self.waiting = continuation
        }
    }

    /// The zero-copy form of ``messages``: `body` gets each message as it is parsed, its bytes still in
    /// the loop's read buffer (valid during the call, copied nowhere), and answers with ``sendNow(_:)``
    /// or ``sendNow(text:)``, whose frames leave with the read's one write. Messages already queued for
    /// ``messages`` come first. `body` runs on the loop between I/O callbacks: it must not block.
    /// Returns after a normal close and throws ``WebSocketError/Kind/closed`` after any other, as
    /// ``messages`` ends; cancelling the task closes the connection with 1001. From a task on the
    /// connection's loop (the server's own task is); iterate ``messages`` or use this, not both at once.
    ///
    /// ```swift
    /// try await socket.forEachMessage { message in _ = socket.sendNow(message) }
    /// ```
    nonisolated(nonsending) public func forEachMessage(_ body: @escaping (WebSocketMessage) -> Void) async throws(WebSocketError) {
        precondition(self.loop.inEventLoop, "forEachMessage runs on the connection's loop")
        while let queued = self.takeQueued() { queued.withUnsafeBytes { body(WebSocketMessage(opcode: queued.opcode, bytes: $0)) } }
        if self.ended == nil {
            self.borrowingBody = body
            await withTaskCancellationHandler {
                await withUnsafeContinuation { continuation in
                    if self.ended != nil { continuation.resume() } else { self.borrowingEnd = continuation }
                }
            } onCancel: {
                _ = self.loop.execute { self.closeForCancellation() }
            }
            self.borrowingBody = nil
            if self.readingPaused {
                self.readingPaused = false
                self.socket.resumeReading()
            }
        }
        if let ended = self.ended { _ = try Self.end(ended) }
    }

    /// Sends at once, on the loop (from ``forEachMessage(_:)``'s body, say): the result says whether it
    /// was sent, queued over the high-water mark (``SendResult/backpressure``) or refused.
    @discardableResult
    public func sendNow(_ message: WebSocketMessage) -> SendResult {
        precondition(self.loop.inEventLoop, "sendNow runs on the connection's loop")
        return self.socket.send(message.opcode, message.bytes)
    }

    @discardableResult
    public func sendNow(text: String) -> SendResult {
        precondition(self.loop.inEventLoop, "sendNow runs on the connection's loop")
        return self.socket.send(text: text)
    }

    @discardableResult
    public func sendNow(binary bytes: [UInt8]) -> SendResult {
        precondition(self.loop.inEventLoop, "sendNow runs on the connection's loop")
        return self.socket.send(binary: bytes)
    }

    /// A normal end is `nil`, any other an error.
    private static func end(_ ended: (code: CloseCode, reason: String)) throws(WebSocketError) -> InboundMessage? {
        switch ended.code {
        case .normalClosure, .goingAway, .noStatusReceived: return nil
        default: throw WebSocketError.closed(ended.code, ended.reason)
        }
    }

    private func takeQueued() -> InboundMessage? {
        guard let message = self.queue.pop() else { return nil }
        if _slowPath(self.readingPaused) && self.queue.count <= self.maxBufferedMessages / 2 {
            self.readingPaused = false
            self.socket.resumeReading()
        }
        return message
    }

    func closeForCancellation() {
        if self.socket.isOpen { _ = self.socket.close(code: .goingAway, reason: "task cancelled") }
        self.finish(code: .goingAway, reason: "task cancelled")
    }

    // MARK: From the connection (loop)

    func received(_ message: WebSocketMessage) {
        if let body = self.borrowingBody {
            body(message)
            return
        }
        let owned = self.store(message)
        if let waiting = self.waiting {
            self.waiting = nil
            waiting.resume(returning: .success(owned))
            return
        }
        self.queue.push(owned)
        if _slowPath(self.queue.count >= self.maxBufferedMessages) && !self.readingPaused {
            self.readingPaused = true
            self.socket.pauseReading()
        }
    }

    /// Copies `message` into the chunk: the current one if it has room (after starting over, if nobody
    /// else holds it), else a new one, twice as large as the one that filled up (up to 64 KiB) and at
    /// least as large as the message. A task that keeps up, whether it takes one message per read or
    /// sixteen, causes no allocation per message.
    @inline(__always)
    private func store(_ message: WebSocketMessage) -> InboundMessage {
        let count = message.bytes.count
        if self.chunk == nil, let spare = self.loop.spareChunks.popLast() {
            self.chunk = unsafeDowncast(spare, to: MessageStorage.self)
        } else if isKnownUniquelyReferenced(&self.chunk) {
            self.chunk.unsafelyUnwrapped.used = 0
        }
        var chunk: MessageStorage
        if let current = self.chunk, current.capacity - current.used >= count {
            chunk = current
        } else {
            let previous = self.chunk?.capacity ?? 0
            chunk = MessageStorage(capacity: max(count, 256, min(previous * 2, 65_536)))
            self.chunk = chunk
        }
        let offset = chunk.append(message.bytes)
        return InboundMessage(opcode: message.opcode, storage: chunk, offset: offset, count: count)
    }

    /// The task has caught up (it waits for a message): a chunk it has let go of goes back to the loop
    /// for whichever connection reads next (one grown past 4 KiB by a burst or a large message goes
    /// altogether), so that waiting connections hold none.
    private func trimChunk() {
        guard let chunk = self.chunk, isKnownUniquelyReferenced(&self.chunk) else { return }
        self.chunk = nil
        if chunk.capacity <= 4096 && self.loop.spareChunks.count < 8 {
            chunk.used = 0
            self.loop.spareChunks.append(chunk)
        }
    }

    func drained() {
        let waiters = self.drainWaiters
        self.drainWaiters.removeAll()
        for waiter in waiters { waiter.resume(returning: .success(())) }
    }

    func finish(code: CloseCode, reason: String) {
        guard self.ended == nil else { return }
        self.ended = (code, reason)
        if let end = self.borrowingEnd {
            self.borrowingEnd = nil
            self.borrowingBody = nil
            end.resume()
        }
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
    @inlinable
    nonisolated(nonsending) public func send(text: String) async throws(WebSocketError) {
        let result = self.sendOnLoop(text: text)
        if result != .sent { try await self.sendSlowly(after: result) { $0.send(text: text) } }
    }

    /// Sends a binary message; see ``send(text:)``.
    @inlinable
    nonisolated(nonsending) public func send(binary bytes: [UInt8]) async throws(WebSocketError) {
        let result = self.sendOnLoop(binary: bytes)
        if result != .sent { try await self.sendSlowly(after: result) { $0.send(binary: bytes) } }
    }

    /// Sends at once if this is the loop's thread (nil if not).
    @usableFromInline
    func sendOnLoop(text: String) -> SendResult? {
        guard self.loop.inEventLoop else { return nil }
        self.socket.holdCorkForJob()  // Replies until the task suspends leave in one write.
        return self.socket.send(text: text)
    }

    @usableFromInline
    func sendOnLoop(binary bytes: [UInt8]) -> SendResult? {
        guard self.loop.inEventLoop else { return nil }
        self.socket.holdCorkForJob()
        return self.socket.send(binary: bytes)
    }

    /// After a send that was not simply sent: settles what the send on the loop did (`result`), or, off
    /// the loop (nil), sends with `operation` there.
    @usableFromInline
    nonisolated(nonsending) func sendSlowly(after result: SendResult?,
                                            _ operation: @escaping @Sendable (WebSocket) -> SendResult) async throws(WebSocketError) {
        if let result {
            try await self.settle(result)
        } else {
            try await self.sendFromElsewhere(operation)
        }
    }

    /// Sends `message` back as it came (an echo): same opcode, same bytes, no copy.
    @inlinable
    nonisolated(nonsending) public func send(_ message: InboundMessage) async throws(WebSocketError) {
        let result = self.sendOnLoop(message)
        if result != .sent {
            try await self.sendSlowly(after: result) { socket in message.withUnsafeBytes { socket.send(message.opcode, $0) } }
        }
    }

    /// Sends `message` at once if this is the loop's thread (nil if not).
    @usableFromInline
    func sendOnLoop(_ message: InboundMessage) -> SendResult? {
        guard self.loop.inEventLoop else { return nil }
        self.socket.holdCorkForJob()
        return message.withUnsafeBytes { self.socket.send(message.opcode, $0) }
    }

    /// On the loop, after a send that was not simply sent: a refusal throws; backpressure waits for the
    /// socket to drain, once the corked bytes have gone (if the kernel took them all, there is nothing to
    /// wait for, and no drain would come).
    nonisolated(nonsending) private func settle(_ result: SendResult) async throws(WebSocketError) {
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
    nonisolated(nonsending) private func sendFromElsewhere(_ operation: @escaping @Sendable (WebSocket) -> SendResult) async throws(WebSocketError) {
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
    nonisolated(nonsending) public func close(code: CloseCode = .normalClosure, reason: String = "") async {
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

/// A message that arrived, owned: its bytes stay valid for as long as it is kept. Messages share the
/// connection's chunks of memory, reused once the task lets go of them, so a task that handles its
/// messages as they come causes no allocation per message. (Keeping one message keeps its chunk, up to
/// 64 KiB: copy what you keep for long with ``data`` or ``text``.)
public struct InboundMessage: @unchecked Sendable {  // Safe: the bytes are not written while shared.
    public let opcode: Opcode
    let storage: MessageStorage
    let offset: Int
    /// The payload's length in bytes.
    public let count: Int

    init(opcode: Opcode, storage: MessageStorage, offset: Int, count: Int) {
        self.opcode = opcode
        self.storage = storage
        self.offset = offset
        self.count = count
    }

    /// Calls `body` with the payload's bytes, valid during the call.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: self.storage.base + self.offset, count: self.count))
    }

    /// The payload as UTF-8 text (a text message is valid UTF-8; a binary one is decoded with repairs).
    public var text: String { self.withUnsafeBytes { String(decoding: $0, as: UTF8.self) } }

    /// The payload, copied into an array.
    public var data: [UInt8] { self.withUnsafeBytes { Array($0) } }

    public var isText: Bool { self.opcode == .text }
}

/// Memory that messages' bytes are appended to, each message at its own offset. Written on the
/// connection's loop only, and only past what has been handed out.
/// The messages waiting for the task: a ring that moves them in and out (no retain or release per
/// message, no shifting), grown by doubling.
struct MessageRing: ~Copyable {
    private var base: UnsafeMutablePointer<InboundMessage>?
    private var mask = -1
    private var head = 0
    private(set) var count = 0

    init() {}

    @inline(__always)
    mutating func push(_ message: consuming InboundMessage) {
        if _slowPath(self.count == self.mask &+ 1) { self.grow() }
        (self.base.unsafelyUnwrapped + ((self.head &+ self.count) & self.mask)).initialize(to: message)
        self.count &+= 1
    }

    @inline(__always)
    mutating func pop() -> InboundMessage? {
        guard self.count > 0 else { return nil }
        let message = (self.base.unsafelyUnwrapped + self.head).move()
        self.head = (self.head &+ 1) & self.mask
        self.count &-= 1
        return message
    }

    private mutating func grow() {
        let capacity = max(16, (self.mask &+ 1) * 2)
        let grown = UnsafeMutablePointer<InboundMessage>.allocate(capacity: capacity)
        if let base = self.base {
            for index in 0..<self.count { (grown + index).initialize(to: (base + ((self.head + index) & self.mask)).move()) }
            base.deallocate()
        }
        self.base = grown
        self.mask = capacity - 1
        self.head = 0
    }

    deinit {
        guard let base = self.base else { return }
        for index in 0..<self.count { (base + ((self.head + index) & self.mask)).deinitialize(count: 1) }
        base.deallocate()
    }
}

final class MessageStorage {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    @exclusivity(unchecked) var used = 0

    init(capacity: Int) {
        self.base = .allocate(byteCount: capacity, alignment: 8)
        self.capacity = capacity
    }

    /// Copies `bytes` after those already there; returns their offset.
    @inline(__always)
    func append(_ bytes: UnsafeRawBufferPointer) -> Int {
        let offset = self.used
        if let source = bytes.baseAddress { (self.base + offset).copyMemory(from: source, byteCount: bytes.count) }
        self.used = offset + bytes.count
        return offset
    }

    deinit { self.base.deallocate() }
}
