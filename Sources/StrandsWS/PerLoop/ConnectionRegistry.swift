import Synchronization

/// The connections of one server on one loop (or the clients of one handler and configuration on one
/// loop): every one from accept or connect to close, with what they share, so a connection holds one
/// reference instead of a handler, a configuration, counters and the loop's context. Loop-confined.
///
/// It also runs the keepalive sweep: one timer per registry, never one per connection.
final class ConnectionRegistry {
    // What a message reads first.
    let handler: any WebSocketHandler
    // The counters, inline: a message bumps one without loading another object. Relaxed atomics with
    // one writer (this loop), so an increment is a load and a store, and any thread may read them.
    private let received = Atomic<Int>(0)
    private let sent = Atomic<Int>(0)
    private let handshakeErrors = Atomic<Int>(0)
    private let protocolErrors = Atomic<Int>(0)
    private let tooBigErrors = Atomic<Int>(0)
    private let sendCapErrors = Atomic<Int>(0)
    private let timeoutErrors = Atomic<Int>(0)
    private let transportErrors = Atomic<Int>(0)
    private let open = Atomic<Int>(0)
    private let opened = Atomic<Int>(0)
    let maxMessageSize: Int
    /// ``WebSocketConfiguration/maxPendingBytes``, `Int.max` when off.
    let maxPendingBytes: Int
    let dropsOverCap: Bool
    /// The loop's cork, reached without going through the loop.
    let cork: UnsafeMutablePointer<Cork>
    /// Not retained: the loop's context holds its client registries, and the loop holds the context for
    /// as long as it runs, longer than any connection on it. `Unmanaged` rather than `unowned(unsafe)`,
    /// which Swift turns into a retain and release around each use (a client's mask key per message).
    private let contextReference: Unmanaged<WebSocketLoopContext>
    var context: WebSocketLoopContext { self.contextReference.takeUnretainedValue() }

    /// The next mask key of this loop, at +0.
    @inline(__always)
    func nextMaskKey() -> UInt32 { self.contextReference._withUnsafeGuaranteedRef { $0.nextMaskKey() } }
    let configuration: WebSocketConfiguration
    let isClient: Bool
    var compression: WebSocketCompression? { self.configuration.compression }

    private var all = SocketList()
    /// Run once each when the last connection leaves (graceful shutdowns wait on them).
    private var whenEmpty: [() -> Void] = []
    /// A graceful shutdown started: new connections are marked as they arrive.
    private(set) var isShuttingDown = false

    // Keepalive, in ticks of `keepaliveTick`.
    private var keepaliveTimer: LoopTimer?
    /// Server: this loop's topic subscribers (clients have none).
    var topics: LoopTopics?
    let keepaliveTick: Duration
    let pingTicks: Int
    let idleTicks: Int

    init(handler: any WebSocketHandler, configuration: WebSocketConfiguration, context: WebSocketLoopContext,
         isClient: Bool) {
        self.handler = handler
        self.configuration = configuration
        self.contextReference = Unmanaged.passUnretained(context)
        self.cork = context.loop.cork
        self.isClient = isClient
        self.maxMessageSize = configuration.maxMessageSize
        self.maxPendingBytes = configuration.maxPendingBytes > 0 ? configuration.maxPendingBytes : Int.max
        self.dropsOverCap = configuration.sendCapPolicy == .drop
        (self.keepaliveTick, self.pingTicks, self.idleTicks) = Self.keepalive(
            ping: configuration.pingInterval.wholeMilliseconds, idle: configuration.idleTimeout.wholeMilliseconds)
    }

    // Single writer: load + store, not a read-modify-write.
    @inline(__always) private static func bump(_ counter: borrowing Atomic<Int>, by delta: Int = 1) {
        counter.store(counter.load(ordering: .relaxed) &+ delta, ordering: .relaxed)
    }
    @inline(__always) func countReceived() { Self.bump(self.received) }
    @inline(__always) func countSent() { Self.bump(self.sent) }
    func countError(_ cause: ErrorCause) {
        switch cause {
        case .handshake: Self.bump(self.handshakeErrors)
        case .protocol: Self.bump(self.protocolErrors)
        case .tooBig: Self.bump(self.tooBigErrors)
        case .sendCap: Self.bump(self.sendCapErrors)
        case .timeout: Self.bump(self.timeoutErrors)
        case .transport: Self.bump(self.transportErrors)
        }
    }
    func countOpened() {
        Self.bump(self.open)
        Self.bump(self.opened)
    }
    func countClosed() { Self.bump(self.open, by: -1) }

    /// The counts now. Safe from any thread (the one part of a registry that is): relaxed atomics.
    var statistics: WebSocketStatistics {
        var causes = WebSocketErrorCounts()
        causes.handshake = self.handshakeErrors.load(ordering: .relaxed)
        causes.protocol = self.protocolErrors.load(ordering: .relaxed)
        causes.tooBig = self.tooBigErrors.load(ordering: .relaxed)
        causes.sendCap = self.sendCapErrors.load(ordering: .relaxed)
        causes.timeout = self.timeoutErrors.load(ordering: .relaxed)
        causes.transport = self.transportErrors.load(ordering: .relaxed)
        var statistics = WebSocketStatistics(open: self.open.load(ordering: .relaxed), opened: self.opened.load(ordering: .relaxed),
                                             messagesReceived: self.received.load(ordering: .relaxed),
                                             messagesSent: self.sent.load(ordering: .relaxed), errors: causes.total)
        statistics.errorsByCause = causes
        return statistics
    }

    /// Every connection, in no particular order.
    var sockets: [WebSocket] { self.all.sockets }
    var count: Int { self.all.count }

    func add(_ socket: WebSocket) {
        self.all.insert(socket)
        if self.isShuttingDown { socket.shutdownRequested() }
        if self.keepaliveTimer == nil && self.keepaliveTick > .zero {
            self.keepaliveTimer = self.context.loop.scheduleTimer(after: self.keepaliveTick,
                                                                  repeating: self.keepaliveTick) { [unowned self] in
                self.sweepKeepalive()
            }
        }
    }

    func remove(_ socket: WebSocket) {
        guard self.all.remove(socket) else { return }
        guard self.all.isEmpty else { return }
        self.keepaliveTimer?.cancel()
        self.keepaliveTimer = nil
        let waiting = self.whenEmpty
        self.whenEmpty = []
        for completion in waiting { completion() }
        self.context.registryEmptied(self)
    }

    /// Starts a graceful shutdown of every connection (see ``ConnectionState/shutdownRequested()``);
    /// `completion` runs once none is left (at once if there is none). Each call's completion runs.
    func shutdown(code: CloseCode = .goingAway, reason: String = "server shutting down",
                  completion: @escaping () -> Void) {
        self.isShuttingDown = true
        self.shutdownClose = (code, reason)
        if self.all.isEmpty {
            completion()
            return
        }
        self.whenEmpty.append(completion)
        // Shutting one down may close it at once and change the list: iterate a copy.
        for socket in self.all.sockets { socket.shutdownRequested() }
    }

    /// The close frame a shutdown sends.
    private(set) var shutdownClose: (code: CloseCode, reason: String) = (.goingAway, "server shutting down")

    /// Every tick, each open connection that heard nothing since the last one counts one more silent
    /// tick (a read resets it): at `pingTicks` it gets a ping, at `idleTicks` it is closed.
    private func sweepKeepalive() {
        for socket in self.all.sockets { socket.keepaliveTick(pingAfter: self.pingTicks, closeAfter: self.idleTicks) }
    }

    /// The sweep's tick and the two limits in ticks. A connection counts silent ticks in one byte, so
    /// the tick is an eighth of the shorter limit (a ping goes out within 1/8 of its interval) but at
    /// least 1/250 of the longer; 10 ms at the finest. (0, 0, 0) when keepalive is off.
    static func keepalive(ping: UInt64, idle: UInt64) -> (tick: Duration, pingTicks: Int, idleTicks: Int) {
        let limits = [ping, idle].filter { $0 > 0 }
        guard let shortest = limits.min(), let longest = limits.max() else { return (.zero, 0, 0) }
        let tick = max(shortest / 8, (longest + 249) / 250, 10)
        func ticks(_ ms: UInt64) -> Int { ms == 0 ? 0 : Int(max((ms + tick / 2) / tick, 1)) }
        return (.milliseconds(tick), ticks(ping), ticks(idle))
    }
}

@available(*, unavailable)
extension ConnectionRegistry: Sendable {}
