/// What every WebSocket on one loop shares: mask-key randomness, a scratch buffer, the deadline sweep,
/// and the registries of client connections. One per loop (``Loop/local(_:make:)``). Loop-confined.
///
/// The cork is not here: it belongs to the transport (`TCPConnection`, one per loop in `Loop`).
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

    /// Scratch space for a client's masked frame outside a cork. Loop-confined, never reached in
    /// overlapping accesses.
    @exclusivity(unchecked) var scratch = RawBuffer()

    /// permessage-deflate's streams and buffers, made for the loop's first connection that agrees it.
    private var deflateStorage: DeflateLoopState?
    var deflateState: DeflateLoopState {
        if let state = self.deflateStorage { return state }
        let made = DeflateLoopState(loop: self.loop)
        self.deflateStorage = made
        return made
    }

    // MARK: Deadlines

    /// Connections with a deadline: in the handshake, or closing. Usually few; swept every tick.
    private var timed = DeadlineList()
    private var sweepTimer: LoopTimer?
    /// Sweep granularity. Deadlines are coarse by design: one timer per loop, not one per connection.
    static let tick: Duration = .milliseconds(50)

    init(loop: Loop) {
        self.loop = loop
    }

    deinit {
        self.random.deallocate()
        self.scratch.free()
    }

    static func on(_ loop: Loop) -> WebSocketLoopContext {
        loop.local(WebSocketLoopContext.self) { WebSocketLoopContext(loop: loop) }
    }

    /// Gives `socket` a deadline `after` from now, replacing any it had.
    func setDeadline(_ socket: WebSocket, after: Duration) {
        self.timed.set(socket, socket.coldState, deadline: self.loop.freshNow + after.wholeMilliseconds)
        if self.sweepTimer == nil {
            self.sweepTimer = self.loop.scheduleTimer(after: Self.tick, repeating: Self.tick) { [unowned self] in
                self.sweep()
            }
        }
    }

    func clearDeadline(_ socket: WebSocket) {
        guard let cold = socket.cold, self.timed.remove(cold) else { return }
        if self.timed.isEmpty {
            self.sweepTimer?.cancel()
            self.sweepTimer = nil
        }
    }

    private func sweep() {
        let now = self.loop.now
        var expired: [WebSocket] = []
        for entry in self.timed.entries where entry.deadline <= now { expired.append(entry.socket) }
        for socket in expired {
            self.clearDeadline(socket)
            socket.deadlinePassed()
        }
    }

    // MARK: Clients

    /// Registries of this loop's client connections, one per handler and configuration in use, so that
    /// clients that share them share one keepalive timer. A registry leaves when its last connection does.
    private var clientRegistries: [ConnectionRegistry] = []

    func clientRegistry(handler: any WebSocketHandler, configuration: WebSocketConfiguration) -> ConnectionRegistry {
        if let existing = self.clientRegistries.first(where: {
            $0.handler === handler && $0.configuration == configuration
        }) {
            return existing
        }
        let registry = ConnectionRegistry(handler: handler, configuration: configuration, context: self,
                                          isClient: true)
        self.clientRegistries.append(registry)
        return registry
    }

    func registryEmptied(_ registry: ConnectionRegistry) {
        guard registry.isClient else { return }
        self.clientRegistries.removeAll { $0 === registry }
    }
}

extension Duration {
    var wholeMilliseconds: UInt64 {
        let (seconds, attoseconds) = self.components
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds) * 1000 + UInt64(attoseconds / 1_000_000_000_000_000)
    }
}
