import Synchronization

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
