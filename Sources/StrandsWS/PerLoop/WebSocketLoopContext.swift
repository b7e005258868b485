import Synchronization

/// What every WebSocket on one loop shares: mask-key randomness, the cork buffer, the deadline sweep,
/// and the counters of client connections. One per loop (``Loop/local(_:make:)``). Loop-confined.
final class WebSocketLoopContext {
    let loop: Loop

    // MARK: Mask keys

    /// Keystream made 4 KiB at a time, so a client frame costs no system call for its mask key.
    private let random = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
    private var randomOffset = 4096
    /// Keyed from the kernel's CSPRNG on first use, not when the loop's first connection is made.
    private lazy var keystream = ChaCha20()

    /// A mask key from a ChaCha20 keystream keyed by the kernel's CSPRNG (RFC 6455 §5.3 wants it
    /// unpredictable; see ``ChaCha20`` for why the generator runs here).
    @inline(__always)
    func nextMaskKey() -> UInt32 {
        if self.randomOffset + 4 > self.random.count { self.refillRandom() }
        let key = self.random.loadUnaligned(fromByteOffset: self.randomOffset, as: UInt32.self)
        self.randomOffset += 4
        return key
    }

    @inline(never)
    private func refillRandom() {
        self.keystream.fill(self.random)
        self.randomOffset = 0
    }

    // MARK: Cork

    // Loop-confined and never reached in overlapping accesses (a frame is appended, or the buffer
    // written out, and nothing else happens meanwhile): Swift's dynamic exclusivity checks, paid on every
    // frame, buy nothing here. The owner is only compared, never called: its address is enough, and
    // costs no retain and release per frame.

    /// Frames a connection sends while it handles one read collect here and leave in one write.
    @exclusivity(unchecked) var cork = RawBuffer()
    /// The connection whose read is being handled; frames of any other connection go out directly.
    @exclusivity(unchecked) var corkOwner: UnsafeMutableRawPointer?
    /// Scratch space for a client's masked frame outside a cork.
    @exclusivity(unchecked) var scratch = RawBuffer()

    // MARK: Deadlines

    /// Connections with a deadline: in the handshake, or closing. Usually few; swept every tick.
    private var timed = SocketList(slot: \.timedIndex)
    private var sweepTimer: LoopTimer?
    /// Sweep granularity. Deadlines are coarse by design: one timer per loop, not one per connection.
    static let tick: Duration = .milliseconds(50)

    /// Client connections made on this loop.
    let clients = ConnectionRegistry()

    init(loop: Loop) {
        self.loop = loop
    }

    deinit {
        self.random.deallocate()
        self.cork.free()
        self.scratch.free()
    }

    static func on(_ loop: Loop) -> WebSocketLoopContext {
        loop.local(WebSocketLoopContext.self) { WebSocketLoopContext(loop: loop) }
    }

    /// Gives `socket` a deadline `after` from now, replacing any it had.
    func setDeadline(_ socket: WebSocket, after: Duration) {
        socket.deadline = self.loop.now + after.wholeMilliseconds
        self.timed.insert(socket)
        if self.sweepTimer == nil {
            self.sweepTimer = self.loop.scheduleTimer(after: Self.tick, repeating: Self.tick) { [unowned self] in
                self.sweep()
            }
        }
    }

    func clearDeadline(_ socket: WebSocket) {
        guard self.timed.remove(socket) else { return }
        socket.deadline = 0
        if self.timed.isEmpty {
            self.sweepTimer?.cancel()
            self.sweepTimer = nil
        }
    }

    private func sweep() {
        let now = self.loop.now
        var expired: [WebSocket] = []
        for socket in self.timed.sockets where socket.deadline <= now { expired.append(socket) }
        for socket in expired {
            self.clearDeadline(socket)
            socket.deadlinePassed()
        }
    }
}

extension Duration {
    var wholeMilliseconds: UInt64 {
        let (seconds, attoseconds) = self.components
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds) * 1000 + UInt64(attoseconds / 1_000_000_000_000_000)
    }
}

/// Counts of a server's (or a loop's clients') connections, messages and errors on one loop.
///
/// Each counter has one writer, the loop, and is a relaxed atomic: an increment is a plain load and
/// store (no locked instruction, no contention), and any thread may read a recent value at any time,
/// which is what a `/health` endpoint on another loop needs.
public final class WebSocketCounters: Sendable {
    private let _open = Atomic<Int>(0)
    private let _opened = Atomic<Int>(0)
    private let _received = Atomic<Int>(0)
    private let _sent = Atomic<Int>(0)
    private let _errors = Atomic<Int>(0)

    public init() {}

    /// Connections open now.
    public var open: Int { self._open.load(ordering: .relaxed) }
    /// Connections opened since start.
    public var opened: Int { self._opened.load(ordering: .relaxed) }
    /// Messages received.
    public var messagesReceived: Int { self._received.load(ordering: .relaxed) }
    /// Messages sent.
    public var messagesSent: Int { self._sent.load(ordering: .relaxed) }
    /// Failed handshakes, protocol violations, timeouts and transport errors.
    public var errors: Int { self._errors.load(ordering: .relaxed) }

    // Single writer: load + store, not a read-modify-write.
    @inline(__always) private static func bump(_ counter: borrowing Atomic<Int>, by delta: Int = 1) {
        counter.store(counter.load(ordering: .relaxed) &+ delta, ordering: .relaxed)
    }
    func countOpened() {
        Self.bump(self._open)
        Self.bump(self._opened)
    }
    func countClosed() { Self.bump(self._open, by: -1) }
    func countReceived() { Self.bump(self._received) }
    func countSent() { Self.bump(self._sent) }
    func countError() { Self.bump(self._errors) }

    public var snapshot: WebSocketStatistics {
        WebSocketStatistics(open: self.open, opened: self.opened, messagesReceived: self.messagesReceived,
                            messagesSent: self.messagesSent, errors: self.errors)
    }
}

/// The open connections of one server (or of one loop's clients) on one loop, and their counters.
/// Loop-confined.
final class ConnectionRegistry {
    let counters = WebSocketCounters()
    private var open = SocketList(slot: \.registryIndex)
    var sockets: [WebSocket] { self.open.sockets }
    /// Runs once when the last registered connection closes (graceful shutdown waits on it).
    var whenEmpty: (() -> Void)?

    func add(_ socket: WebSocket) {
        self.open.insert(socket)
        self.counters.countOpened()
    }

    func remove(_ socket: WebSocket) {
        guard self.open.remove(socket) else { return }
        self.counters.countClosed()
        if self.open.isEmpty, let whenEmpty = self.whenEmpty {
            self.whenEmpty = nil
            whenEmpty()
        }
    }
}

@available(*, unavailable)
extension ConnectionRegistry: Sendable {}

/// A copy of counters, summed over loops.
public struct WebSocketStatistics: Sendable, Equatable {
    public var open = 0
    public var opened = 0
    public var messagesReceived = 0
    public var messagesSent = 0
    public var errors = 0

    public init(open: Int = 0, opened: Int = 0, messagesReceived: Int = 0, messagesSent: Int = 0, errors: Int = 0) {
        self.open = open
        self.opened = opened
        self.messagesReceived = messagesReceived
        self.messagesSent = messagesSent
        self.errors = errors
    }

    static func + (a: WebSocketStatistics, b: WebSocketStatistics) -> WebSocketStatistics {
        WebSocketStatistics(open: a.open + b.open, opened: a.opened + b.opened,
                            messagesReceived: a.messagesReceived + b.messagesReceived,
                            messagesSent: a.messagesSent + b.messagesSent, errors: a.errors + b.errors)
    }
}
